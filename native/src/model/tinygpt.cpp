#include "tinygpt.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>

#include "config.h"
#include "core/philox.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace napo::model {

namespace {

constexpr float kInitStd = 0.02f;

// Deterministic N(0, std) from Philox keyed by the seed, counter (element pair, parameter index).
void normalFill(float* out, int64_t count, float std, uint64_t seed, uint32_t stream) {
  parallelFor((count + 1) / 2, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const Philox4 r = philox4x32_10(
          Philox4{{uint32_t(pair), uint32_t(uint64_t(pair) >> 32), stream, 0x6e61706fu}},
          uint32_t(seed), uint32_t(seed >> 32));
      const double u1 = (double(r.v[0] >> 8) + 1.0) * (1.0 / 16777217.0);  // (0, 1]
      const double u2 = double(r.v[1] >> 8) * (1.0 / 16777216.0);
      const double radius = std::sqrt(-2.0 * std::log(u1));
      const double angle = 6.283185307179586 * u2;
      out[2 * pair] = float(std * radius * std::cos(angle));
      if (2 * pair + 1 < count) out[2 * pair + 1] = float(std * radius * std::sin(angle));
    }
  });
}

bool hostReadable(const napo_tensor& t) { return t.device.kind == NAPO_CPU; }

}  // namespace

TinyGPT::TinyGPT(const napo_model_config& config) : config_(config), device_(config.device) {
  const int64_t V = config.vocab_size, C = config.context_length, D = config.d_model;
  int64_t offset = 0;
  auto add = [&](const std::string& name, int32_t ndim, int64_t d0, int64_t d1, bool decay) {
    ParamSpec spec{name, ndim, {d0, ndim == 2 ? d1 : 0}, offset, ndim == 2 ? d0 * d1 : d0, decay};
    // Every parameter starts on a 64-byte boundary.
    offset += (spec.numel + 15) / 16 * 16;
    specs_.push_back(spec);
    return spec.offset;
  };
  wte_ = add("wte.weight", 2, V, D, true);
  wpe_ = add("wpe.weight", 2, C, D, true);
  for (int l = 0; l < config.n_layers; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    LayerOffsets o;
    o.ln1w = add(p + "ln_1.weight", 1, D, 0, false);
    o.ln1b = add(p + "ln_1.bias", 1, D, 0, false);
    o.qkvw = add(p + "attn.c_attn.weight", 2, D, 3 * D, true);
    o.qkvb = add(p + "attn.c_attn.bias", 1, 3 * D, 0, false);
    o.projw = add(p + "attn.c_proj.weight", 2, D, D, true);
    o.projb = add(p + "attn.c_proj.bias", 1, D, 0, false);
    o.ln2w = add(p + "ln_2.weight", 1, D, 0, false);
    o.ln2b = add(p + "ln_2.bias", 1, D, 0, false);
    o.fcw = add(p + "mlp.c_fc.weight", 2, D, 4 * D, true);
    o.fcb = add(p + "mlp.c_fc.bias", 1, 4 * D, 0, false);
    o.fc2w = add(p + "mlp.c_proj.weight", 2, 4 * D, D, true);
    o.fc2b = add(p + "mlp.c_proj.bias", 1, D, 0, false);
    layers_.push_back(o);
  }
  lnfw_ = add("ln_f.weight", 1, D, 0, false);
  lnfb_ = add("ln_f.bias", 1, D, 0, false);
  paramCount_ = offset;
}

napo_status TinyGPT::init() {
  NAPO_TRY(params_.reserve(device_, size_t(paramCount_), true));
  float* p = params_.data();
  // GPT-2: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2 nLayers), zero biases,
  // LayerNorm weight 1.
  const float residualStd = kInitStd / std::sqrt(2.0f * float(config_.n_layers));
  for (size_t i = 0; i < specs_.size(); ++i) {
    const ParamSpec& s = specs_[i];
    const bool isLnWeight = s.name.find("ln_") != std::string::npos && s.name.find(".weight") != std::string::npos;
    if (isLnWeight) {
      for (int64_t j = 0; j < s.numel; ++j) p[s.offset + j] = 1.0f;
    } else if (s.ndim == 2) {
      const bool residual = s.name.find("c_proj.weight") != std::string::npos;
      normalFill(p + s.offset, s.numel, residual ? residualStd : kInitStd, config_.seed, uint32_t(i));
    }
  }
  return NAPO_OK;
}

napo_status TinyGPT::copyParametersFrom(const TinyGPT& other) {
  NAPO_TRY(params_.reserve(device_, size_t(paramCount_)));
  return napo_memcpy(device_, params_.data(), other.device_, other.params_.data(),
                     size_t(paramCount_) * sizeof(float));
}

int64_t TinyGPT::cachePosition(int64_t row) const {
  if (row < 0 || row >= cacheBatch_) return -1;
  return positions_[size_t(row)];
}

int64_t TinyGPT::parameterTotal() const {
  int64_t total = 0;
  for (const ParamSpec& s : specs_) total += s.numel;
  return total;
}

napo_status TinyGPT::readOptimizerState(float* expAvg, float* expAvgSq, int64_t* steps) const {
  constexpr const char* op = "TinyGPT.getOptimizerState";
  if (!expAvg || !expAvgSq || !steps) return fail(NAPO_ERR_TYPE, "%s: expAvg, expAvgSq and steps are required", op);
  const napo_device host{NAPO_CPU, 0};
  int64_t at = 0;
  for (const ParamSpec& s : specs_) {
    const size_t bytes = sizeof(float) * size_t(s.numel);
    // The moments exist from the first step on; before it they are zero.
    if (m_.empty()) std::memset(expAvg + at, 0, bytes);
    else NAPO_TRY(napo_memcpy(host, expAvg + at, device_, m_.data() + s.offset, bytes));
    if (v_.empty()) std::memset(expAvgSq + at, 0, bytes);
    else NAPO_TRY(napo_memcpy(host, expAvgSq + at, device_, v_.data() + s.offset, bytes));
    at += s.numel;
  }
  *steps = steps_;
  return NAPO_OK;
}

napo_status TinyGPT::writeOptimizerState(const float* expAvg, const float* expAvgSq, int64_t steps) {
  constexpr const char* op = "TinyGPT.setOptimizerState";
  if (!expAvg || !expAvgSq) return fail(NAPO_ERR_TYPE, "%s: expAvg and expAvgSq are required", op);
  if (steps < 0) return fail(NAPO_ERR_RANGE, "%s: steps = %lld must be >= 0", op, (long long)steps);
  // Everything is checked before anything is written, so a bad state changes nothing.
  int64_t at = 0;
  for (const ParamSpec& s : specs_) {
    for (int64_t j = 0; j < s.numel; ++j) {
      const float m = expAvg[at + j], v = expAvgSq[at + j];
      if (!std::isfinite(m)) {
        return fail(NAPO_ERR_RANGE, "%s: expAvg[%lld] = %g is not finite (%s[%lld])", op, (long long)(at + j), double(m),
                    s.name.c_str(), (long long)j);
      }
      if (!std::isfinite(v) || v < 0.0f) {
        return fail(NAPO_ERR_RANGE, "%s: expAvgSq[%lld] = %g must be finite and >= 0 (%s[%lld])", op, (long long)(at + j),
                    double(v), s.name.c_str(), (long long)j);
      }
    }
    at += s.numel;
  }
  // Zeroed on allocation, so the padding between parameters stays 0.
  if (m_.empty()) NAPO_TRY(m_.reserve(device_, size_t(paramCount_), true));
  if (v_.empty()) NAPO_TRY(v_.reserve(device_, size_t(paramCount_), true));
  const napo_device host{NAPO_CPU, 0};
  at = 0;
  for (const ParamSpec& s : specs_) {
    const size_t bytes = sizeof(float) * size_t(s.numel);
    NAPO_TRY(napo_memcpy(device_, m_.data() + s.offset, host, expAvg + at, bytes));
    NAPO_TRY(napo_memcpy(device_, v_.data() + s.offset, host, expAvgSq + at, bytes));
    at += s.numel;
  }
  steps_ = steps;
  return NAPO_OK;
}

napo_status TinyGPT::ensureGrads() {
  if (!grads_.empty()) return NAPO_OK;
  return grads_.reserve(device_, size_t(paramCount_), true);
}

napo_status TinyGPT::checkBatch(const char* op, const napo_tensor* tokens, const napo_tensor* lengths,
                                int64_t* batch, int64_t* time) {
  if (!tokens) return fail(NAPO_ERR_TYPE, "%s: tokens is missing", op);
  if (tokens->dtype != NAPO_INT32) return fail(NAPO_ERR_TYPE, "%s: tokens must be int32, got %s", op, dtypeName(tokens->dtype));
  if (!hostReadable(*tokens)) return fail(NAPO_ERR_TYPE, "%s: tokens must be on the cpu", op);
  if (tokens->ndim != 2) return fail(NAPO_ERR_RANGE, "%s: tokens must be [batch, time], got %s", op, shapeText(*tokens).c_str());
  const int64_t B = tokens->shape[0], T = tokens->shape[1];
  if (B < 1) return fail(NAPO_ERR_RANGE, "%s: the batch is empty (tokens %s)", op, shapeText(*tokens).c_str());
  if (T < 1) return fail(NAPO_ERR_RANGE, "%s: sequences are empty (tokens %s)", op, shapeText(*tokens).c_str());
  if (T > config_.context_length)
    return fail(NAPO_ERR_RANGE, "%s: sequence length %lld is longer than contextLength %d", op, (long long)T, config_.context_length);
  NAPO_TRY(tokens_.reserve(napo_device{NAPO_CPU, 0}, size_t(B * T)));
  NAPO_TRY(lengths_.reserve(napo_device{NAPO_CPU, 0}, size_t(B)));
  if (lengths) {
    if (lengths->dtype != NAPO_INT32) return fail(NAPO_ERR_TYPE, "%s: lengths must be int32, got %s", op, dtypeName(lengths->dtype));
    if (!hostReadable(*lengths)) return fail(NAPO_ERR_TYPE, "%s: lengths must be on the cpu", op);
    if (lengths->ndim != 1 || lengths->shape[0] != B)
      return fail(NAPO_ERR_RANGE, "%s: lengths must be [%lld], got %s", op, (long long)B, shapeText(*lengths).c_str());
    const int32_t* len = dataAs<int32_t>(*lengths);
    for (int64_t b = 0; b < B; ++b) {
      if (len[b] < 1 || len[b] > T)
        return fail(NAPO_ERR_RANGE, "%s: lengths[%lld] = %d must be in [1, %lld]", op, (long long)b, len[b], (long long)T);
      lengths_.data()[b] = len[b];
    }
  } else {
    for (int64_t b = 0; b < B; ++b) lengths_.data()[b] = int32_t(T);
  }
  const int32_t* tok = dataAs<int32_t>(*tokens);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const int32_t id = tok[b * T + t];
      if (t < lengths_.data()[b] && (id < 0 || id >= config_.vocab_size))
        return fail(NAPO_ERR_RANGE, "%s: tokens[%lld, %lld] = %d is out of range for vocab %d", op, (long long)b, (long long)t, id, config_.vocab_size);
      tokens_.data()[b * T + t] = t < lengths_.data()[b] ? id : 0;
    }
  }
  *batch = B;
  *time = T;
  return NAPO_OK;
}

napo_status TinyGPT::checkOutput(const char* op, const napo_tensor* out, int ndim, const int64_t* shape) {
  if (!out || !out->data) return fail(NAPO_ERR_TYPE, "%s: logits output is missing", op);
  if (out->dtype != NAPO_FLOAT32) return fail(NAPO_ERR_TYPE, "%s: logits must be float32", op);
  if (!sameDevice(out->device, device_))
    return fail(NAPO_ERR_TYPE, "%s: logits must be on %s, got %s", op, deviceText(device_).c_str(), deviceText(out->device).c_str());
  bool ok = out->ndim == ndim;
  for (int i = 0; ok && i < ndim; ++i) ok = out->shape[i] == shape[i];
  if (!ok) return fail(NAPO_ERR_RANGE, "%s: logits output has shape %s", op, shapeText(*out).c_str());
  return NAPO_OK;
}

TinyGPT::LayerActs TinyGPT::layerActs(int64_t rows, int64_t batch, int64_t time) const {
  const int64_t D = config_.d_model, H = config_.n_heads;
  LayerActs a{};
  int64_t o = 0;
  auto take = [&](int64_t n) { const int64_t at = o; o += (n + 15) / 16 * 16; return at; };
  a.resid = take(rows * D);
  a.ln1 = take(rows * D);
  a.ln1Mean = take(rows);
  a.ln1Rstd = take(rows);
  a.qkv = take(rows * 3 * D);
  a.probs = take(batch * H * time * time);
  a.att = take(rows * D);
  a.mid = take(rows * D);
  a.ln2 = take(rows * D);
  a.ln2Mean = take(rows);
  a.ln2Rstd = take(rows);
  a.fc = take(rows * 4 * D);
  a.gelu = take(rows * 4 * D);
  a.size = o;
  return a;
}

napo_status TinyGPT::trunk(int64_t B, int64_t T) {
  const int64_t D = config_.d_model, H = config_.n_heads, L = config_.n_layers, rows = B * T;
  const LayerActs a = layerActs(rows, B, T);
  const int64_t finalSize = 2 * rows * D + 2 * ((rows + 15) / 16 * 16);
  NAPO_TRY(acts_.reserve(device_, size_t(L * a.size + finalSize)));
  actBatch_ = B;
  actTime_ = T;
  const float* P = params_.data();
  const int32_t* len = lengths_.data();
  cpuBackend().embeddingForward(B, T, D, tokens_.data(), len, P + wte_, P + wpe_, layerBase(0, a) + a.resid);
  for (int64_t l = 0; l < L; ++l) {
    const LayerOffsets& o = layers_[size_t(l)];
    float* base = layerBase(l, a);
    float* out = l + 1 < L ? layerBase(l + 1, a) + a.resid : acts_.data() + L * a.size;
    cpuBackend().layerNormForward(rows, D, base + a.resid, P + o.ln1w, P + o.ln1b, base + a.ln1, base + a.ln1Mean, base + a.ln1Rstd);
    cpuBackend().matmul(false, false, rows, 3 * D, D, 1.0f, base + a.ln1, D, P + o.qkvw, 3 * D, 0.0f, base + a.qkv, 3 * D);
    cpuBackend().addBias(rows, 3 * D, P + o.qkvb, base + a.qkv);
    cpuBackend().attentionForward(B, T, D, H, len, base + a.qkv, base + a.probs, base + a.att);
    std::memcpy(base + a.mid, base + a.resid, sizeof(float) * size_t(rows * D));
    cpuBackend().matmul(false, false, rows, D, D, 1.0f, base + a.att, D, P + o.projw, D, 1.0f, base + a.mid, D);
    cpuBackend().addBias(rows, D, P + o.projb, base + a.mid);
    cpuBackend().layerNormForward(rows, D, base + a.mid, P + o.ln2w, P + o.ln2b, base + a.ln2, base + a.ln2Mean, base + a.ln2Rstd);
    cpuBackend().matmul(false, false, rows, 4 * D, D, 1.0f, base + a.ln2, D, P + o.fcw, 4 * D, 0.0f, base + a.fc, 4 * D);
    cpuBackend().addBias(rows, 4 * D, P + o.fcb, base + a.fc);
    cpuBackend().geluForward(rows * 4 * D, base + a.fc, base + a.gelu);
    std::memcpy(out, base + a.mid, sizeof(float) * size_t(rows * D));
    cpuBackend().matmul(false, false, rows, D, 4 * D, 1.0f, base + a.gelu, 4 * D, P + o.fc2w, D, 1.0f, out, D);
    cpuBackend().addBias(rows, D, P + o.fc2b, out);
  }
  float* fin = acts_.data() + L * a.size;
  float* lnf = fin + rows * D;
  float* mean = lnf + rows * D;
  float* rstd = mean + (rows + 15) / 16 * 16;
  cpuBackend().layerNormForward(rows, D, fin, P + lnfw_, P + lnfb_, lnf, mean, rstd);
  return NAPO_OK;
}

napo_status TinyGPT::forward(const napo_tensor* tokens, const napo_tensor* lengths, napo_tensor* logits) {
  constexpr const char* op = "TinyGPT.forward";
  int64_t B, T;
  actsForBackward_ = false;
  NAPO_TRY(checkBatch(op, tokens, lengths, &B, &T));
  const int64_t V = config_.vocab_size, D = config_.d_model, rows = B * T;
  const int64_t shape[3] = {B, T, V};
  NAPO_TRY(checkOutput(op, logits, 3, shape));
  NAPO_TRY(trunk(B, T));
  const LayerActs a = layerActs(rows, B, T);
  const float* lnf = acts_.data() + config_.n_layers * a.size + rows * D;
  float* out = dataAs<float>(*logits);
  cpuBackend().matmul(false, true, rows, V, D, 1.0f, lnf, D, params_.data() + wte_, D, 0.0f, out, V);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = lengths_.data()[b];
    if (len < T) std::memset(out + (b * T + len) * V, 0, sizeof(float) * size_t((T - len) * V));
  }
  actsForBackward_ = true;
  return NAPO_OK;
}

napo_status TinyGPT::backward(const napo_tensor* gradLogits) {
  constexpr const char* op = "TinyGPT.backward";
  if (!actsForBackward_)
    return fail(NAPO_ERR_RANGE, "%s: no activations to differentiate; call forward first (prefill and decode do not keep them)", op);
  if (!gradLogits || !gradLogits->data) return fail(NAPO_ERR_TYPE, "%s: gradLogits is missing", op);
  if (gradLogits->dtype != NAPO_FLOAT32) return fail(NAPO_ERR_TYPE, "%s: gradLogits must be float32, got %s", op, dtypeName(gradLogits->dtype));
  const int64_t B = actBatch_, T = actTime_, V = config_.vocab_size, D = config_.d_model;
  const int64_t H = config_.n_heads, L = config_.n_layers, rows = B * T;
  if (gradLogits->ndim != 3 || gradLogits->shape[0] != B || gradLogits->shape[1] != T || gradLogits->shape[2] != V)
    return fail(NAPO_ERR_RANGE, "%s: gradLogits must be [%lld, %lld, %lld] like the last forward's logits, got %s", op,
                (long long)B, (long long)T, (long long)V, shapeText(*gradLogits).c_str());
  NAPO_TRY(ensureGrads());
  const LayerActs a = layerActs(rows, B, T);
  // Workspace: dlogits [rows, V], dresid [rows, D], dtmp [rows, D], dqkv [rows, 3D], dbig [rows, 4D].
  const int64_t dlogitsAt = 0, dresidAt = rows * V, dtmpAt = dresidAt + rows * D, dqkvAt = dtmpAt + rows * D,
                dbigAt = dqkvAt + rows * 3 * D, total = dbigAt + rows * 4 * D;
  NAPO_TRY(work_.reserve(device_, size_t(total)));
  float* W = work_.data();
  float* dlogits = W + dlogitsAt;
  float* dresid = W + dresidAt;
  float* dtmp = W + dtmpAt;
  float* dqkv = W + dqkvAt;
  float* dbig = W + dbigAt;
  NAPO_TRY(napo_memcpy(device_, dlogits, gradLogits->device, gradLogits->data, sizeof(float) * size_t(rows * V)));
  const int32_t* len = lengths_.data();
  for (int64_t b = 0; b < B; ++b) {
    if (len[b] < T) std::memset(dlogits + (b * T + len[b]) * V, 0, sizeof(float) * size_t((T - len[b]) * V));
  }
  const float* P = params_.data();
  float* G = grads_.data();
  float* fin = acts_.data() + L * a.size;
  float* lnf = fin + rows * D;
  float* mean = lnf + rows * D;
  float* rstd = mean + (rows + 15) / 16 * 16;
  // logits = lnf wte^T
  cpuBackend().matmul(true, false, V, D, rows, 1.0f, dlogits, V, lnf, D, 1.0f, G + wte_, D);
  cpuBackend().matmul(false, false, rows, D, V, 1.0f, dlogits, V, P + wte_, D, 0.0f, dtmp, D);
  cpuBackend().layerNormBackward(rows, D, fin, P + lnfw_, mean, rstd, dtmp, dresid, G + lnfw_, G + lnfb_, false);
  for (int64_t l = L - 1; l >= 0; --l) {
    const LayerOffsets& o = layers_[size_t(l)];
    float* base = layerBase(l, a);
    // out = mid + gelu W2 + b2
    cpuBackend().matmul(true, false, 4 * D, D, rows, 1.0f, base + a.gelu, 4 * D, dresid, D, 1.0f, G + o.fc2w, D);
    cpuBackend().biasBackward(rows, D, dresid, G + o.fc2b);
    cpuBackend().matmul(false, true, rows, 4 * D, D, 1.0f, dresid, D, P + o.fc2w, D, 0.0f, dbig, 4 * D);
    cpuBackend().geluBackward(rows * 4 * D, base + a.fc, dbig, dbig);
    cpuBackend().matmul(true, false, D, 4 * D, rows, 1.0f, base + a.ln2, D, dbig, 4 * D, 1.0f, G + o.fcw, 4 * D);
    cpuBackend().biasBackward(rows, 4 * D, dbig, G + o.fcb);
    cpuBackend().matmul(false, true, rows, D, 4 * D, 1.0f, dbig, 4 * D, P + o.fcw, 4 * D, 0.0f, dtmp, D);
    cpuBackend().layerNormBackward(rows, D, base + a.mid, P + o.ln2w, base + a.ln2Mean, base + a.ln2Rstd, dtmp, dresid,
                               G + o.ln2w, G + o.ln2b, true);
    // mid = resid + att Wp + bp
    cpuBackend().matmul(true, false, D, D, rows, 1.0f, base + a.att, D, dresid, D, 1.0f, G + o.projw, D);
    cpuBackend().biasBackward(rows, D, dresid, G + o.projb);
    cpuBackend().matmul(false, true, rows, D, D, 1.0f, dresid, D, P + o.projw, D, 0.0f, dtmp, D);
    cpuBackend().attentionBackward(B, T, D, H, len, base + a.qkv, base + a.probs, dtmp, dqkv);
    cpuBackend().matmul(true, false, D, 3 * D, rows, 1.0f, base + a.ln1, D, dqkv, 3 * D, 1.0f, G + o.qkvw, 3 * D);
    cpuBackend().biasBackward(rows, 3 * D, dqkv, G + o.qkvb);
    cpuBackend().matmul(false, true, rows, D, 3 * D, 1.0f, dqkv, 3 * D, P + o.qkvw, 3 * D, 0.0f, dtmp, D);
    cpuBackend().layerNormBackward(rows, D, base + a.resid, P + o.ln1w, base + a.ln1Mean, base + a.ln1Rstd, dtmp, dresid,
                               G + o.ln1w, G + o.ln1b, true);
  }
  cpuBackend().embeddingBackward(B, T, D, tokens_.data(), len, dresid, G + wte_, G + wpe_);
  return NAPO_OK;
}

napo_status TinyGPT::zeroGrad() {
  if (grads_.empty()) return NAPO_OK;
  std::memset(grads_.data(), 0, sizeof(float) * size_t(paramCount_));
  return NAPO_OK;
}

napo_status TinyGPT::step(const napo_adamw_options& o, napo_adamw_result* result) {
  constexpr const char* op = "TinyGPT.step";
  if (!(o.lr >= 0.0f) || !std::isfinite(o.lr)) return fail(NAPO_ERR_RANGE, "%s: lr = %g must be a finite number >= 0", op, double(o.lr));
  if (!(o.beta1 >= 0.0f && o.beta1 < 1.0f)) return fail(NAPO_ERR_RANGE, "%s: beta1 = %g must be in [0, 1)", op, double(o.beta1));
  if (!(o.beta2 >= 0.0f && o.beta2 < 1.0f)) return fail(NAPO_ERR_RANGE, "%s: beta2 = %g must be in [0, 1)", op, double(o.beta2));
  if (!(o.eps > 0.0f)) return fail(NAPO_ERR_RANGE, "%s: eps = %g must be > 0", op, double(o.eps));
  if (!(o.weight_decay >= 0.0f)) return fail(NAPO_ERR_RANGE, "%s: weightDecay = %g must be >= 0", op, double(o.weight_decay));
  if (std::isnan(o.max_grad_norm)) return fail(NAPO_ERR_RANGE, "%s: maxGradNorm is NaN", op);
  NAPO_TRY(ensureGrads());
  if (m_.empty()) NAPO_TRY(m_.reserve(device_, size_t(paramCount_), true));
  if (v_.empty()) NAPO_TRY(v_.reserve(device_, size_t(paramCount_), true));
  const double norm = std::sqrt(cpuBackend().sumSquares(paramCount_, grads_.data()));
  if (!std::isfinite(norm)) return fail(NAPO_ERR_RANGE, "%s: the gradient norm is %g; the step was skipped", op, norm);
  double scale = 1.0;
  if (o.max_grad_norm > 0.0f && norm > double(o.max_grad_norm)) scale = double(o.max_grad_norm) / (norm + 1e-6);
  std::vector<cpu::AdamWRange> ranges;
  for (const ParamSpec& s : specs_) ranges.push_back({s.offset, s.numel, s.decay});
  ++steps_;
  cpuBackend().adamwStep(params_.data(), grads_.data(), m_.data(), v_.data(), ranges.data(), int64_t(ranges.size()),
                     steps_, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, float(scale));
  if (result) {
    result->grad_norm = norm;
    result->clip_scale = scale;
    result->step = steps_;
  }
  return NAPO_OK;
}

napo_status TinyGPT::prefill(const napo_tensor* tokens, const napo_tensor* lengths, napo_tensor* logits) {
  constexpr const char* op = "TinyGPT.prefill";
  int64_t B, T;
  actsForBackward_ = false;
  NAPO_TRY(checkBatch(op, tokens, lengths, &B, &T));
  const int64_t V = config_.vocab_size, D = config_.d_model, H = config_.n_heads, L = config_.n_layers;
  const int64_t C = config_.context_length, hd = D / H, rows = B * T;
  const int64_t shape[2] = {B, V};
  NAPO_TRY(checkOutput(op, logits, 2, shape));
  NAPO_TRY(trunk(B, T));
  const LayerActs a = layerActs(rows, B, T);
  // Cache layout: layer l: k [B, H, C, hd], then v [B, H, C, hd].
  const int64_t perLayer = 2 * B * H * C * hd;
  NAPO_TRY(kvCache_.reserve(device_, size_t(L * perLayer)));
  cacheBatch_ = B;
  positions_.assign(size_t(B), 0);
  const int32_t* len = lengths_.data();
  for (int64_t l = 0; l < L; ++l) {
    const float* qkv = layerBase(l, a) + a.qkv;
    float* kc = kvCache_.data() + l * perLayer;
    float* vc = kc + B * H * C * hd;
    parallelFor(B * H, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / H, h = task % H;
        for (int64_t t = 0; t < len[b]; ++t) {
          const float* row = qkv + (b * T + t) * 3 * D;
          std::memcpy(kc + (task * C + t) * hd, row + D + h * hd, sizeof(float) * size_t(hd));
          std::memcpy(vc + (task * C + t) * hd, row + 2 * D + h * hd, sizeof(float) * size_t(hd));
        }
      }
    });
  }
  for (int64_t b = 0; b < B; ++b) positions_[size_t(b)] = len[b];
  // Logits of each row's last prompt token.
  const float* lnf = acts_.data() + L * a.size + rows * D;
  NAPO_TRY(work_.reserve(device_, size_t(B * D)));
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(work_.data() + b * D, lnf + (b * T + len[b] - 1) * D, sizeof(float) * size_t(D));
  cpuBackend().matmul(false, true, B, V, D, 1.0f, work_.data(), D, params_.data() + wte_, D, 0.0f, dataAs<float>(*logits), V);
  return NAPO_OK;
}

napo_status TinyGPT::decodeStep(const napo_tensor* tokens, napo_tensor* logits) {
  constexpr const char* op = "TinyGPT.decodeStep";
  if (cacheBatch_ == 0) return fail(NAPO_ERR_RANGE, "%s: the KV cache is empty; call prefill first", op);
  if (!tokens) return fail(NAPO_ERR_TYPE, "%s: tokens is missing", op);
  if (tokens->dtype != NAPO_INT32) return fail(NAPO_ERR_TYPE, "%s: tokens must be int32, got %s", op, dtypeName(tokens->dtype));
  if (!hostReadable(*tokens)) return fail(NAPO_ERR_TYPE, "%s: tokens must be on the cpu", op);
  const int64_t B = cacheBatch_, V = config_.vocab_size, D = config_.d_model, H = config_.n_heads;
  const int64_t L = config_.n_layers, C = config_.context_length, hd = D / H;
  if (tokens->ndim != 1 || tokens->shape[0] != B)
    return fail(NAPO_ERR_RANGE, "%s: tokens must be [%lld] (the prefilled batch), got %s", op, (long long)B, shapeText(*tokens).c_str());
  const int64_t shape[2] = {B, V};
  NAPO_TRY(checkOutput(op, logits, 2, shape));
  const int32_t* tok = dataAs<int32_t>(*tokens);
  std::vector<int32_t> pos(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const int32_t id = tok[b];
    if (id == -1) {
      pos[size_t(b)] = -1;
      continue;
    }
    if (id < 0 || id >= config_.vocab_size)
      return fail(NAPO_ERR_RANGE, "%s: tokens[%lld] = %d is out of range for vocab %d", op, (long long)b, id, config_.vocab_size);
    if (positions_[size_t(b)] >= C)
      return fail(NAPO_ERR_RANGE, "%s: row %lld already holds %d tokens, the contextLength", op, (long long)b, positions_[size_t(b)]);
    pos[size_t(b)] = positions_[size_t(b)];
  }
  // Workspace: x [B,D], ln [B,D], qkv [B,3D], att [B,D], big [B,4D], gelu [B,4D].
  const int64_t xAt = 0, lnAt = B * D, qkvAt = 2 * B * D, attAt = 5 * B * D, bigAt = 6 * B * D, geluAt = 10 * B * D;
  NAPO_TRY(work_.reserve(device_, size_t(14 * B * D)));
  float* W = work_.data();
  float *x = W + xAt, *ln = W + lnAt, *qkv = W + qkvAt, *att = W + attAt, *big = W + bigAt, *gel = W + geluAt;
  const float* P = params_.data();
  for (int64_t b = 0; b < B; ++b) {
    float* row = x + b * D;
    if (pos[size_t(b)] < 0) {
      std::memset(row, 0, sizeof(float) * size_t(D));
      continue;
    }
    const float* te = P + wte_ + int64_t(tok[b]) * D;
    const float* pe = P + wpe_ + int64_t(pos[size_t(b)]) * D;
    for (int64_t j = 0; j < D; ++j) row[j] = te[j] + pe[j];
  }
  const int64_t perLayer = 2 * B * H * C * hd;
  for (int64_t l = 0; l < L; ++l) {
    const LayerOffsets& o = layers_[size_t(l)];
    cpuBackend().layerNormForward(B, D, x, P + o.ln1w, P + o.ln1b, ln, nullptr, nullptr);
    cpuBackend().matmul(false, false, B, 3 * D, D, 1.0f, ln, D, P + o.qkvw, 3 * D, 0.0f, qkv, 3 * D);
    cpuBackend().addBias(B, 3 * D, P + o.qkvb, qkv);
    float* kc = kvCache_.data() + l * perLayer;
    float* vc = kc + B * H * C * hd;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t p = pos[size_t(b)];
      if (p < 0) continue;
      for (int64_t h = 0; h < H; ++h) {
        std::memcpy(kc + ((b * H + h) * C + p) * hd, qkv + b * 3 * D + D + h * hd, sizeof(float) * size_t(hd));
        std::memcpy(vc + ((b * H + h) * C + p) * hd, qkv + b * 3 * D + 2 * D + h * hd, sizeof(float) * size_t(hd));
      }
    }
    cpuBackend().attentionDecode(B, D, H, C, qkv, kc, vc, pos.data(), att);
    cpuBackend().matmul(false, false, B, D, D, 1.0f, att, D, P + o.projw, D, 1.0f, x, D);
    cpuBackend().addBias(B, D, P + o.projb, x);
    cpuBackend().layerNormForward(B, D, x, P + o.ln2w, P + o.ln2b, ln, nullptr, nullptr);
    cpuBackend().matmul(false, false, B, 4 * D, D, 1.0f, ln, D, P + o.fcw, 4 * D, 0.0f, big, 4 * D);
    cpuBackend().addBias(B, 4 * D, P + o.fcb, big);
    cpuBackend().geluForward(B * 4 * D, big, gel);
    cpuBackend().matmul(false, false, B, D, 4 * D, 1.0f, gel, 4 * D, P + o.fc2w, D, 1.0f, x, D);
    cpuBackend().addBias(B, D, P + o.fc2b, x);
  }
  cpuBackend().layerNormForward(B, D, x, P + lnfw_, P + lnfb_, ln, nullptr, nullptr);
  float* out = dataAs<float>(*logits);
  cpuBackend().matmul(false, true, B, V, D, 1.0f, ln, D, P + wte_, D, 0.0f, out, V);
  for (int64_t b = 0; b < B; ++b) {
    if (pos[size_t(b)] < 0) std::memset(out + b * V, 0, sizeof(float) * size_t(V));
    else ++positions_[size_t(b)];
  }
  return NAPO_OK;
}

}  // namespace napo::model

// ---- the C ABI --------------------------------------------------------------------------------

using napo::fail;
using napo::model::TinyGPT;

struct napo_model {
  std::unique_ptr<TinyGPT> impl;
};

namespace {

napo_status guard(napo_model* model, const char* op) {
  if (!model || !model->impl) return fail(NAPO_ERR_TYPE, "%s: model is missing", op);
  return NAPO_OK;
}

// Turns an exception escaping the C++ side (bad_alloc) into a status.
template <typename F>
napo_status shielded(const char* op, F&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(NAPO_ERR_OUT_OF_MEMORY, "%s: out of host memory", op);
  } catch (const std::exception& e) {
    return fail(NAPO_ERR_INTERNAL, "%s: %s", op, e.what());
  }
}

}  // namespace

extern "C" {

napo_status napo_model_create(const napo_model_config* config, napo_model** out) {
  if (!config || !out) return fail(NAPO_ERR_TYPE, "TinyGPT: config and out are required");
  *out = nullptr;
  NAPO_TRY(napo::model::validateConfig(*config));
  if (config->device.kind == NAPO_CUDA) {
    return fail(NAPO_ERR_UNAVAILABLE, "TinyGPT: the model has no CUDA kernels yet; create it on 'cpu'");
  }
  if (config->device.kind != NAPO_CPU) return fail(NAPO_ERR_TYPE, "TinyGPT: unknown device kind %d", int(config->device.kind));
  return shielded("TinyGPT", [&]() -> napo_status {
    auto model = std::make_unique<napo_model>();
    model->impl = std::make_unique<TinyGPT>(*config);
    NAPO_TRY(model->impl->init());
    *out = model.release();
    return NAPO_OK;
  });
}

void napo_model_destroy(napo_model* model) { delete model; }

napo_status napo_model_config_get(const napo_model* model, napo_model_config* out) {
  if (!model || !model->impl || !out) return fail(NAPO_ERR_TYPE, "TinyGPT.config: model and out are required");
  *out = model->impl->config();
  return NAPO_OK;
}

napo_status napo_model_clone(const napo_model* model, napo_model** out) {
  if (!model || !model->impl || !out) return fail(NAPO_ERR_TYPE, "TinyGPT.clone: model and out are required");
  *out = nullptr;
  return shielded("TinyGPT.clone", [&]() -> napo_status {
    auto copy = std::make_unique<napo_model>();
    copy->impl = std::make_unique<TinyGPT>(model->impl->config());
    NAPO_TRY(copy->impl->copyParametersFrom(*model->impl));
    *out = copy.release();
    return NAPO_OK;
  });
}

napo_status napo_model_forward(napo_model* model, const napo_tensor* tokens, const napo_tensor* lengths, napo_tensor* logits) {
  NAPO_TRY(guard(model, "TinyGPT.forward"));
  return shielded("TinyGPT.forward", [&] { return model->impl->forward(tokens, lengths, logits); });
}

napo_status napo_model_backward(napo_model* model, const napo_tensor* grad_logits) {
  NAPO_TRY(guard(model, "TinyGPT.backward"));
  return shielded("TinyGPT.backward", [&] { return model->impl->backward(grad_logits); });
}

napo_status napo_model_zero_grad(napo_model* model) {
  NAPO_TRY(guard(model, "TinyGPT.zeroGrad"));
  return model->impl->zeroGrad();
}

napo_status napo_model_step(napo_model* model, const napo_adamw_options* options, napo_adamw_result* result) {
  NAPO_TRY(guard(model, "TinyGPT.step"));
  if (!options) return fail(NAPO_ERR_TYPE, "TinyGPT.step: options are required");
  return shielded("TinyGPT.step", [&] { return model->impl->step(*options, result); });
}

napo_status napo_model_prefill(napo_model* model, const napo_tensor* tokens, const napo_tensor* lengths, napo_tensor* logits) {
  NAPO_TRY(guard(model, "TinyGPT.prefill"));
  return shielded("TinyGPT.prefill", [&] { return model->impl->prefill(tokens, lengths, logits); });
}

napo_status napo_model_decode_step(napo_model* model, const napo_tensor* tokens, napo_tensor* logits) {
  NAPO_TRY(guard(model, "TinyGPT.decodeStep"));
  return shielded("TinyGPT.decodeStep", [&] { return model->impl->decodeStep(tokens, logits); });
}

int64_t napo_model_cache_position(const napo_model* model, int64_t row) {
  return model && model->impl ? model->impl->cachePosition(row) : -1;
}

int64_t napo_model_parameter_count(const napo_model* model) {
  return model && model->impl ? int64_t(model->impl->specs().size()) : 0;
}

static napo_status paramIndex(const napo_model* model, int64_t index, const char* op) {
  if (!model || !model->impl) return fail(NAPO_ERR_TYPE, "%s: model is missing", op);
  const int64_t count = int64_t(model->impl->specs().size());
  if (index < 0 || index >= count)
    return fail(NAPO_ERR_RANGE, "%s: index = %lld must be in [0, %lld)", op, (long long)index, (long long)count);
  return NAPO_OK;
}

napo_status napo_model_parameter_info_get(const napo_model* model, int64_t index, napo_model_parameter_info* out) {
  NAPO_TRY(paramIndex(model, index, "TinyGPT.parameterInfo"));
  if (!out) return fail(NAPO_ERR_TYPE, "TinyGPT.parameterInfo: out is missing");
  const auto& s = model->impl->specs()[size_t(index)];
  std::memset(out, 0, sizeof *out);
  std::snprintf(out->name, sizeof out->name, "%s", s.name.c_str());
  out->ndim = s.ndim;
  out->shape[0] = s.shape[0];
  out->shape[1] = s.shape[1];
  out->numel = s.numel;
  return NAPO_OK;
}

napo_status napo_model_parameter_read(const napo_model* model, int64_t index, float* dst) {
  NAPO_TRY(paramIndex(model, index, "TinyGPT.getParameter"));
  const auto& s = model->impl->specs()[size_t(index)];
  const napo_device device = model->impl->config().device;
  return napo_memcpy({NAPO_CPU, 0}, dst, device, model->impl->params() + s.offset, sizeof(float) * size_t(s.numel));
}

napo_status napo_model_parameter_write(napo_model* model, int64_t index, const float* src) {
  NAPO_TRY(paramIndex(model, index, "TinyGPT.setParameter"));
  const auto& s = model->impl->specs()[size_t(index)];
  for (int64_t i = 0; i < s.numel; ++i) {
    if (!std::isfinite(src[i]))
      return fail(NAPO_ERR_RANGE, "TinyGPT.setParameter: %s[%lld] = %g is not finite", s.name.c_str(), (long long)i, double(src[i]));
  }
  const napo_device device = model->impl->config().device;
  return napo_memcpy(device, model->impl->params() + s.offset, {NAPO_CPU, 0}, src, sizeof(float) * size_t(s.numel));
}

napo_status napo_model_gradient_read(const napo_model* model, int64_t index, float* dst) {
  NAPO_TRY(paramIndex(model, index, "TinyGPT.getGradient"));
  const auto& s = model->impl->specs()[size_t(index)];
  const float* grads = model->impl->grads();
  if (!grads) {
    std::memset(dst, 0, sizeof(float) * size_t(s.numel));
    return NAPO_OK;
  }
  const napo_device device = model->impl->config().device;
  return napo_memcpy({NAPO_CPU, 0}, dst, device, grads + s.offset, sizeof(float) * size_t(s.numel));
}

int64_t napo_model_optimizer_steps(const napo_model* model) {
  return model && model->impl ? model->impl->steps() : 0;
}

int64_t napo_model_parameter_total(const napo_model* model) {
  return model && model->impl ? model->impl->parameterTotal() : 0;
}

napo_status napo_model_optimizer_state_read(const napo_model* model, float* exp_avg, float* exp_avg_sq, int64_t* steps) {
  if (!model || !model->impl) return fail(NAPO_ERR_TYPE, "TinyGPT.getOptimizerState: model is missing");
  return model->impl->readOptimizerState(exp_avg, exp_avg_sq, steps);
}

napo_status napo_model_optimizer_state_write(napo_model* model, const float* exp_avg, const float* exp_avg_sq, int64_t steps) {
  NAPO_TRY(guard(model, "TinyGPT.setOptimizerState"));
  return shielded("TinyGPT.setOptimizerState", [&] { return model->impl->writeOptimizerState(exp_avg, exp_avg_sq, steps); });
}

}  // extern "C"
