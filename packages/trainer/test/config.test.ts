import { describe, expect, it } from 'vitest';

import { trainConfig } from '../src/config.js';

describe('train config', () => {
  it('fills in the defaults (the paper\'s beta_expo 0.04, TRL\'s clip 0.2)', () => {
    const config = trainConfig();
    expect(config.betaExpo).toBe(0.04);
    expect(config.epsLow).toBe(0.2);
    expect(config.algorithm).toBe('expo');
  });

  it('names the field in every message', () => {
    expect(() => trainConfig({ groupSize: 1 })).toThrow('groupSize must be >= 2');
    expect(() => trainConfig({ temperature: 0 })).toThrow('temperature must be > 0');
    expect(() => trainConfig({ steps: 1.5 })).toThrow('steps must be an integer');
    expect(() => trainConfig({ algorithm: 'ppo' as 'grpo' })).toThrow('algorithm must be one of grpo, expo, grpo-sft, expo-dpo');
    expect(() => trainConfig({ levels: [] })).toThrow('levels must have at least 1 entry');
    expect(() => trainConfig({ groupSize: 1, topP: 2 })).toThrow(/groupSize must be >= 2; topP must be <= 1/);
    expect(() => trainConfig({ gropuSize: 4 } as never)).toThrow('unknown field gropuSize');
  });
});
