/**
 * Built-in answer verifiers for tasks from data: each maps (completion, ground-truth answer) to 1
 * or 0 and never throws, whatever the completion looks like (a policy's output is often malformed).
 *
 *   exact    the completion's final answer (after `Answer:`, else in `\boxed{}`, else after `####`,
 *            else the whole completion) equals the answer once both are trimmed and their
 *            whitespace collapsed.
 *   numeric  the last number in the completion equals the answer's number within a 1e-6 relative
 *            tolerance. Numbers may have a sign, thousands separators (1,234), decimals, a simple
 *            fraction (3/4) and a trailing % (50% matches 50 and 0.5).
 *   gsm8k    the number after the last `####` (GSM8K's convention), on both sides: the dataset's
 *            answer may be a bare number or a whole GSM8K solution ending in `#### 42`.
 *   boxed    the content of the last `\boxed{...}` / `\fbox{...}` (balanced braces), compared after
 *            light LaTeX normalisation, and numerically when both sides read as numbers. The
 *            answer may itself hold a `\boxed{}` (a MATH solution) or be the bare answer.
 */

export const verifierNames = ['exact', 'numeric', 'gsm8k', 'boxed'] as const;
export type VerifierName = (typeof verifierNames)[number];

export type Verifier = (completion: string, answer: string) => number;

/** Relative tolerance of numeric comparisons. */
export const numericTolerance = 1e-6;

// A number as written in text. The sign only counts when it does not follow a word character or
// a closing bracket ("5-3" holds 5 and 3, not -3); the digits must not continue another number.
const numberSource =
  String.raw`(?:(?<![\w)\]}])[-+\u2212])?(?<![\d.])` +
  String.raw`(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)` +
  String.raw`(?:\/(?:\d+(?:\.\d+)?|\.\d+))?(?:\s*%)?`;
const numberPattern = new RegExp(numberSource, 'g');
const wholeNumberPattern = new RegExp(String.raw`^\s*\$?\s*(${numberSource})\s*\.?\s*$`);

/** `Answer:`, `Final answer:`, `**Answer:**`, `**Final Answer**:` (any case). */
const answerMarkPattern = /\b(?:final\s+)?answer(?:\*\*)?\s*:(?:\*\*)?/gi;
const gsm8kMark = '####';

/** The value of one number as matched by numberPattern (or written alone); null when it is not one. */
interface NumberValue {
  value: number;
  percent: boolean;
}

function readNumber(text: string): NumberValue | null {
  let s = text.trim().replace(/\u2212/g, '-');
  const percent = s.endsWith('%');
  if (percent) s = s.slice(0, -1).trim();
  const slash = s.indexOf('/');
  if (slash >= 0) {
    const numerator = readPlain(s.slice(0, slash));
    const denominator = readPlain(s.slice(slash + 1));
    if (numerator === null || denominator === null || denominator === 0) return null;
    return finite(numerator / denominator, percent);
  }
  const plain = readPlain(s);
  return plain === null ? null : finite(plain, percent);
}

function readPlain(s: string): number | null {
  const t = s.trim();
  if (!/^[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)$/.test(t)) return null;
  return Number(t.replace(/,/g, ''));
}

function finite(value: number, percent: boolean): NumberValue | null {
  return Number.isFinite(value) ? { value, percent } : null;
}

/** A whole string as a number: `42`, `-1,234.5`, `$18`, `3/4`, `50%`, `\frac{3}{4}`, `-\dfrac12`; null otherwise. */
export function parseNumber(text: string): number | null {
  return parseNumberValue(text)?.value ?? null;
}

function parseNumberValue(text: string): NumberValue | null {
  const plain = wholeNumberPattern.exec(text);
  if (plain) return readNumber(plain[1] as string);
  // LaTeX fractions, after normalisation: \frac{a}{b}, \frac ab (single digits), with a sign.
  const latex = normaliseLatex(text);
  const frac = /^([-+]?)\\frac(?:\{([^{}]+)\}|(\d))(?:\{([^{}]+)\}|(\d))$/.exec(latex);
  if (frac) {
    const numerator = parseNumberValue(frac[2] ?? frac[3] ?? '');
    const denominator = parseNumberValue(frac[4] ?? frac[5] ?? '');
    if (numerator === null || denominator === null || denominator.value === 0) return null;
    return finite((frac[1] === '-' ? -1 : 1) * (numerator.value / denominator.value), false);
  }
  const again = wholeNumberPattern.exec(latex.replace(/\\%/g, '%'));
  return again ? readNumber(again[1] as string) : null;
}

/** Both values equal within the relative tolerance; a percentage also matches its fraction (50% = 0.5). */
function sameNumber(a: NumberValue, b: NumberValue): boolean {
  if (close(a.value, b.value)) return true;
  if (a.percent && close(a.value / 100, b.value)) return true;
  return b.percent && close(a.value, b.value / 100);
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= numericTolerance * Math.max(Math.abs(a), Math.abs(b));
}

/** The last number written in `text` (as written, e.g. "1,234" or "-3/4"); null when there is none. */
function lastNumber(text: string): string | null {
  let last: string | null = null;
  for (const match of text.matchAll(numberPattern)) last = match[0];
  return last;
}

/** Where the last `\boxed{...}` or `\fbox{...}` of `text` is, with its content; null when there is none or it is unclosed. */
export function lastBoxed(text: string): { start: number; end: number; content: string } | null {
  const starts = [text.lastIndexOf('\\boxed'), text.lastIndexOf('\\fbox')];
  const start = Math.max(...starts);
  if (start < 0) return null;
  let at = start + (start === starts[0] ? '\\boxed'.length : '\\fbox'.length);
  const spaced = text[at] === ' ';
  while (text[at] === ' ') at++;
  if (text[at] !== '{') {
    // `\boxed 5` (no braces): the content runs to the next space, `$` or end.
    const token = spaced ? /^[^\s$]+/.exec(text.slice(at)) : null;
    return token ? { start, end: at + token[0].length, content: token[0] } : null;
  }
  let depth = 0;
  for (let i = at; i < text.length; i++) {
    const char = text[i];
    if (char === '\\') {
      i++; // an escaped brace (\{ or \}) does not open or close
      continue;
    }
    if (char === '{') depth++;
    else if (char === '}' && --depth === 0) return { start, end: i + 1, content: text.slice(at + 1, i) };
  }
  return null;
}

/** The last `Answer:`-style mark in `text` (its start and end), or null. */
export function lastAnswerMark(text: string): { start: number; end: number } | null {
  let found: { start: number; end: number } | null = null;
  for (const match of text.matchAll(answerMarkPattern)) found = { start: match.index, end: match.index + match[0].length };
  return found;
}

/** The number after the last `####`, as written; null when there is no mark or no number after it. */
function gsm8kAnswer(text: string): string | null {
  const mark = text.lastIndexOf(gsm8kMark);
  if (mark < 0) return null;
  const after = text.slice(mark + gsm8kMark.length).trimStart().split('\n', 1)[0] ?? '';
  const match = new RegExp(numberSource).exec(after.replace(/^\$\s*/, ''));
  return match ? match[0] : null;
}

/**
 * The final answer a verifier of `kind` reads in `text`, as written there; null when there is none.
 *   exact: the text after the last `Answer:` mark (markdown `**` stripped), else the last box's
 *          content, else the text after the last `####`.
 *   numeric: the last number. gsm8k: the number after the last `####`. boxed: the last box's content.
 */
export function extractAnswer(kind: VerifierName, text: string): string | null {
  if (typeof text !== 'string') return null;
  switch (kind) {
    case 'exact': {
      const mark = lastAnswerMark(text);
      if (mark) return nonEmpty(text.slice(mark.end).replace(/^[\s*]+|[\s*]+$/g, ''));
      const box = lastBoxed(text);
      if (box) return nonEmpty(box.content.trim());
      const hashes = text.lastIndexOf(gsm8kMark);
      return hashes >= 0 ? nonEmpty(text.slice(hashes + gsm8kMark.length).trim()) : null;
    }
    case 'numeric':
      return lastNumber(text);
    case 'gsm8k':
      return gsm8kAnswer(text);
    case 'boxed': {
      const box = lastBoxed(text);
      return box ? nonEmpty(box.content.trim()) : null;
    }
    default:
      return null;
  }
}

function nonEmpty(text: string): string | null {
  return text.length > 0 ? text : null;
}

/** Trimmed, with every run of whitespace one space. */
export function collapseWhitespace(text: string): string {
  return text.trim().replace(/\s+/g, ' ');
}

/**
 * Light LaTeX normalisation for comparing boxed answers: no surrounding `$`, no `\left` / `\right`,
 * no thin spaces (`\!`, `\,`, `\;`, `\:`, `\ `), no `\$`, `{,}` read as `,`, `\dfrac` / `\tfrac` read
 * as `\frac`, no whitespace, no trailing `.`.
 */
export function normaliseLatex(text: string): string {
  let s = text.trim();
  s = s.replace(/^\$+|\$+$/g, '');
  s = s.replace(/\\(?:left|right)(?![a-zA-Z])/g, '');
  s = s.replace(/\\[!,;: ]/g, '');
  s = s.replace(/\\\$/g, '');
  s = s.replace(/\{,\}/g, ',');
  s = s.replace(/\\[dt]frac(?![a-zA-Z])/g, '\\frac');
  s = s.replace(/\s+/g, '');
  s = s.replace(/\.+$/, '');
  return s.replace(/^\$+|\$+$/g, '');
}

function safely(verifier: Verifier): Verifier {
  return (completion, answer) => {
    if (typeof completion !== 'string' || typeof answer !== 'string') return 0;
    try {
      return verifier(completion, answer) === 1 ? 1 : 0;
    } catch {
      return 0;
    }
  };
}

function numbersMatch(completion: string | null, answer: string | null): number {
  if (completion === null || answer === null) return 0;
  const a = parseNumberValue(completion);
  const b = parseNumberValue(answer);
  return a !== null && b !== null && sameNumber(a, b) ? 1 : 0;
}

/** The number a dataset answer stands for, as written: the whole answer, or its last number. */
function answerNumber(answer: string): string | null {
  return parseNumberValue(answer) !== null ? answer : lastNumber(answer);
}

export const verifiers: Readonly<Record<VerifierName, Verifier>> = Object.freeze({
  exact: safely((completion, answer) => {
    const given = extractAnswer('exact', completion) ?? completion;
    return collapseWhitespace(given) === collapseWhitespace(answer) ? 1 : 0;
  }),
  numeric: safely((completion, answer) => numbersMatch(extractAnswer('numeric', completion), answerNumber(answer))),
  gsm8k: safely((completion, answer) => {
    const expected = answer.includes(gsm8kMark) ? extractAnswer('gsm8k', answer) : answerNumber(answer);
    return numbersMatch(extractAnswer('gsm8k', completion), expected);
  }),
  boxed: safely((completion, answer) => {
    const given = extractAnswer('boxed', completion);
    if (given === null) return 0;
    const expected = lastBoxed(answer)?.content ?? answer;
    const a = normaliseLatex(given);
    const b = normaliseLatex(expected);
    if (a.length === 0 || b.length === 0) return 0;
    if (a === b) return 1;
    return numbersMatch(a, b);
  }),
});

export function isVerifierName(name: string): name is VerifierName {
  return (verifierNames as readonly string[]).includes(name);
}
