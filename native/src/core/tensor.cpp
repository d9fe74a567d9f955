#include "tensor.h"

namespace napo {

std::string shapeText(const napo_tensor& t) {
  std::string text = "[";
  for (int i = 0; i < t.ndim; ++i) {
    if (i) text += ", ";
    text += std::to_string(t.shape[i]);
  }
  return text + "]";
}

std::string deviceText(napo_device device) {
  return device.kind == NAPO_CPU ? "cpu" : "cuda:" + std::to_string(device.index);
}

}  // namespace napo
