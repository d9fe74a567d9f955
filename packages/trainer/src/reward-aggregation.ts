/**
 * TRL's multi_objective_aggregation 'normalize_then_sum' (GDPO, arXiv 2601.05242): each reward
 * function's values normalised within their group first, (r - mean) / (std + 1e-4) ignoring the
 * rollouts it does not apply to (NaN; its own std unbiased, as TRL's nanstd), then the weighted
 * sum (a NaN counts 0). The trainer then scales that sum over the batch (groupAdvantages, one
 * group, scale 'batch'), as TRL does.
 */
export interface WeightedValues {
  weight: number;
  /** One value per rollout, groupSize consecutive rollouts per prompt; NaN where it does not apply. */
  values: readonly number[];
}

export function normalizeThenSum(functions: readonly WeightedValues[], groupSize: number): number[] {
  const rollouts = functions[0]?.values.length ?? 0;
  const total = new Array<number>(rollouts).fill(0);
  for (const { weight, values } of functions) {
    for (let start = 0; start < rollouts; start += groupSize) {
      const group = values.slice(start, start + groupSize);
      const { mean, std } = nanMoments(group);
      group.forEach((value, i) => {
        const normalised = (value - mean) / (std + 1e-4);
        if (!Number.isNaN(normalised)) total[start + i] = (total[start + i] as number) + weight * normalised;
      });
    }
  }
  return total;
}

/** Mean and unbiased standard deviation of the values that are not NaN (std NaN for fewer than two). */
function nanMoments(values: readonly number[]): { mean: number; std: number } {
  const present = values.filter((value) => !Number.isNaN(value));
  const mean = present.reduce((sum, value) => sum + value, 0) / present.length;
  const squares = present.reduce((sum, value) => sum + (value - mean) ** 2, 0);
  return { mean, std: present.length > 1 ? Math.sqrt(squares / (present.length - 1)) : Number.NaN };
}
