/**
 * The entropy bonus's coefficient over a run, as TRL's GRPOTrainer keeps it: constant
 * (`entropyCoef`), or adaptive (Skywork-OR1, `useAdaptiveEntropy`): applied only while the last
 * optimizer step's entropy was at or below `entropyTarget`, and moved by `entropyCoefDelta` after
 * every optimizer step, up at or below the target and down above it, within
 * [entropyCoefMin, entropyCoefMax].
 */
import type { TrainConfig } from './config.js';

type EntropyBonusConfig = Pick<
  TrainConfig,
  'entropyCoef' | 'useAdaptiveEntropy' | 'entropyCoefMin' | 'entropyCoefMax' | 'entropyCoefDelta' | 'entropyTarget'
>;

/** What a checkpoint keeps of the controller; lastEntropy null before the first optimizer step. */
export interface EntropyBonusState {
  coef: number;
  lastEntropy: number | null;
}

export class EntropyBonus {
  private coefficient: number;
  /** The entropy of the last optimizer step; none yet (TRL's inf: the first step applies no bonus). */
  private lastEntropy: number | null = null;

  constructor(private readonly config: EntropyBonusConfig) {
    this.coefficient = config.entropyCoef;
  }

  /** Whether the loss carries the bonus term at all (its coefficient may be 0 this step). */
  get enabled(): boolean {
    return this.config.entropyCoef !== 0 || this.config.useAdaptiveEntropy;
  }

  /** The coefficient as it stands (TRL's entropy_coef metric). */
  get coef(): number {
    return this.coefficient;
  }

  /** The coefficient the next optimizer step applies. */
  applied(): number {
    if (!this.config.useAdaptiveEntropy) return this.coefficient;
    return this.lastEntropy !== null && this.lastEntropy <= this.config.entropyTarget ? this.coefficient : 0;
  }

  /** After an optimizer step: its mean entropy over the trained tokens moves the adaptive coefficient. */
  update(entropy: number): void {
    if (!this.config.useAdaptiveEntropy) return;
    const { entropyTarget, entropyCoefDelta, entropyCoefMin, entropyCoefMax } = this.config;
    this.coefficient =
      entropy <= entropyTarget
        ? Math.min(this.coefficient + entropyCoefDelta, entropyCoefMax)
        : Math.max(this.coefficient - entropyCoefDelta, entropyCoefMin);
    this.lastEntropy = entropy;
  }

  state(): EntropyBonusState {
    return { coef: this.coefficient, lastEntropy: this.lastEntropy };
  }

  restore(state: EntropyBonusState): void {
    this.coefficient = state.coef;
    this.lastEntropy = state.lastEntropy;
  }
}
