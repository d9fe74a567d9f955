/**
 * Pure-TypeScript references of napo's ops (docs/ops.md): the ground truth the native CPU and
 * CUDA kernels are tested against, usable without a native build.
 */
export { sample, filteredDistribution, type RowFilterOptions } from './sample.js';
export { tokenLogprobs, tokenLogprobsBackward } from './logprobs.js';
export { linearLogprobs, linearLogprobsBackward } from './linearLogprobs.js';
export { groupAdvantages } from './advantages.js';
export { policyLoss, type PolicyLossInputs, type PolicyLossResult } from './policyLoss.js';
export { maskedRowSum, maskedRowSumBackward } from './maskedRowSum.js';
export { repetitionPenalty } from './repetitionPenalty.js';
export { philox4x32, philoxUniform, toUint64 } from './philox.js';
export { bf16ToFloat32, float32ToBf16, widenRow, type LogitsTensor } from './bf16.js';
