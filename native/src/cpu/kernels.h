// The CPU kernels of one instruction set: what src/cpu/*.cpp define, inside this copy's own
// namespace (isa.h). Their types and roles are documented in backend.h.
#pragma once

#include "backend.h"
#include "isa.h"

namespace napo::cpu {
NAPO_CPU_ISA_BEGIN

SampleKernel sample;
TokenLogprobsKernel tokenLogprobs;
TokenLogprobsBackwardKernel tokenLogprobsBackward;
GroupAdvantagesKernel groupAdvantages;
PolicyLossKernel policyLoss;
RepetitionPenaltyKernel repetitionPenalty;
MaskedRowSumKernel maskedRowSum;
MaskedRowSumBackwardKernel maskedRowSumBackward;
LinearLogprobsKernel linearLogprobs;
LinearLogprobsBackwardKernel linearLogprobsBackward;
MatmulKernel matmul;
GemmKernel gemm;
AddBiasKernel addBias;
BiasBackwardKernel biasBackward;
LayerNormForwardKernel layerNormForward;
LayerNormBackwardKernel layerNormBackward;
RmsNormForwardKernel rmsNormForward;
RmsNormBackwardKernel rmsNormBackward;
RopeRotateKernel ropeRotate;
GeluForwardKernel geluForward;
GeluBackwardKernel geluBackward;
SwigluForwardKernel swigluForward;
SwigluBackwardKernel swigluBackward;
EmbeddingForwardKernel embeddingForward;
EmbeddingBackwardKernel embeddingBackward;
AttentionForwardKernel attentionForward;
AttentionBackwardKernel attentionBackward;
KvCacheWriteKernel kvCacheWrite;
AdamWStepKernel adamwStep;
SumSquaresKernel sumSquares;
ProbeReadBandwidthKernel probeReadBandwidth;
ProbeUnfusedLogprobsKernel probeUnfusedLogprobs;
ProbeSortedSampleKernel probeSortedSample;
FmaPeakGflopsKernel fmaPeakGflops;

// This copy's table, for cpuBackend() (src/core/cpu_isa.cpp).
extern const CpuBackend backendTable;

NAPO_CPU_ISA_END
}  // namespace napo::cpu
