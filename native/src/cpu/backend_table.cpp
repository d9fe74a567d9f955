// This copy's table of kernels (backend.h), picked by cpuBackend() when this machine runs its
// instruction set.
#include "kernels.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

extern const CpuBackend backendTable = {
    .isa = NAPO_CPU_ISA_NAME,
    .sample = &sample,
    .tokenLogprobs = &tokenLogprobs,
    .tokenLogprobsBackward = &tokenLogprobsBackward,
    .groupAdvantages = &groupAdvantages,
    .policyLoss = &policyLoss,
    .repetitionPenalty = &repetitionPenalty,
    .maskedRowSum = &maskedRowSum,
    .maskedRowSumBackward = &maskedRowSumBackward,
    .linearLogprobs = &linearLogprobs,
    .linearLogprobsBackward = &linearLogprobsBackward,
    .matmul = &matmul,
    .gemm = &gemm,
    .addBias = &addBias,
    .biasBackward = &biasBackward,
    .layerNormForward = &layerNormForward,
    .layerNormBackward = &layerNormBackward,
    .rmsNormForward = &rmsNormForward,
    .rmsNormBackward = &rmsNormBackward,
    .ropeRotate = &ropeRotate,
    .geluForward = &geluForward,
    .geluBackward = &geluBackward,
    .swigluForward = &swigluForward,
    .swigluBackward = &swigluBackward,
    .embeddingForward = &embeddingForward,
    .embeddingBackward = &embeddingBackward,
    .attentionForward = &attentionForward,
    .attentionBackward = &attentionBackward,
    .kvCacheWrite = &kvCacheWrite,
    .adamwStep = &adamwStep,
    .sumSquares = &sumSquares,
    .probeReadBandwidth = &probeReadBandwidth,
    .probeUnfusedLogprobs = &probeUnfusedLogprobs,
    .probeSortedSample = &probeSortedSample,
    .fmaPeakGflops = &fmaPeakGflops,
};

NAPO_CPU_ISA_END
}  // namespace napo::cpu
