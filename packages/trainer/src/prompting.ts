/**
 * How a task's prompt text becomes the tokens a policy sees: through the tokenizer's chat template
 * (a user message, optionally after a system message, with the generation prompt) when it has one
 * and the config asks for it — what a chat model was post-trained on — else the plain text.
 */
import { HFTokenizer, type ChatMessage, type Tokenizer } from '@napo/policy';

export interface PromptFormat {
  chatTemplate: boolean;
  systemPrompt?: string | undefined;
  /** Extra chat-template variables, e.g. `{ enable_thinking: false }` for Qwen3. */
  chatTemplateArgs: Record<string, unknown>;
}

export function encodePrompt(tokenizer: Tokenizer, text: string, format: PromptFormat): number[] {
  if (!format.chatTemplate || !(tokenizer instanceof HFTokenizer) || !tokenizer.hasChatTemplate) return tokenizer.encode(text);
  const messages: ChatMessage[] = format.systemPrompt ? [{ role: 'system', content: format.systemPrompt }] : [];
  messages.push({ role: 'user', content: text });
  return tokenizer.encode(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, extra: format.chatTemplateArgs }));
}
