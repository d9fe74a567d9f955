// repetitionPenalty on a CUDA device: the two launches of repetition_penalty.cuh; a bad history
// entry comes back as the CPU backend's message.
#include "../core/cuda_ops.h"
#include "../core/tensor.h"
#include "../core/validate.h"
#include "device_call.h"
#include "repetition_penalty.cuh"

namespace napo::cuda {

namespace {

template <typename Logit>
napo_status penalise(const napo_tensor& logits, const napo_tensor& history, float penalty, napo_tensor& out,
                     void* stream) {
  constexpr const char* op = "repetitionPenalty";
  DeviceCall call(op, logits.device, stream);
  NAPO_TRY(call.begin(0));
  const RepetitionPenaltyArgs<Logit> args{dataAs<const Logit>(logits), dataAs<const int32_t>(history), logits.shape[0],
                                          logits.shape[1], history.shape[1], penalty, dataAs<Logit>(out),
                                          call.errors()};
  launchRepetitionPenalty(launchOn(call.stream()), args);
  NAPO_TRY(call.launched());
  KernelErrors found;
  NAPO_TRY(call.finish(&found));
  if (found.badIndex == kNothingFound) return NAPO_OK;
  int32_t token = 0;
  NAPO_TRY(call.download(&token, dataAs<const int32_t>(history) + found.badIndex, sizeof token));
  return historyTokenError(op, history, int64_t(found.badIndex), token, logits.shape[1]);
}

}  // namespace

napo_status repetitionPenalty(const napo_tensor& logits, const napo_tensor& history, float penalty, napo_tensor& out,
                              void* stream) {
  if (logits.dtype == NAPO_BFLOAT16) return penalise<uint16_t>(logits, history, penalty, out, stream);
  return penalise<float>(logits, history, penalty, out, stream);
}

}  // namespace napo::cuda
