#include "causal_lm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/philox.h"
#include "core/thread_pool.h"

namespace napo::model {

namespace {

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

int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

// transformers' rotary inverse frequencies, with linear or Llama 3 scaling.
double inverseFrequency(const napo_model_config& c, int64_t i) {
  const double base = 1.0 / std::pow(c.rope_theta, double(2 * i) / double(c.head_dim));
  if (c.rope_scaling == NAPO_ROPE_LINEAR) return base / double(c.rope_factor);
  if (c.rope_scaling != NAPO_ROPE_LLAMA3) return base;
  const double pi = 3.141592653589793;
  const double wavelength = 2.0 * pi / base;
  const double original = double(c.rope_original_max_positions);
  const double lowWavelength = original / double(c.rope_low_freq_factor);
  const double highWavelength = original / double(c.rope_high_freq_factor);
  if (wavelength < highWavelength) return base;
  if (wavelength > lowWavelength) return base / double(c.rope_factor);
  const double smooth = (original / wavelength - double(c.rope_low_freq_factor)) /
                        (double(c.rope_high_freq_factor) - double(c.rope_low_freq_factor));
  return (1.0 - smooth) * base / double(c.rope_factor) + smooth * base;
}

}  // namespace

CausalLM::CausalLM(const napo_model_config& config) : CausalLM(config, layerKernelsFor(config.device)) {}

CausalLM::CausalLM(const napo_model_config& config, std::unique_ptr<LayerKernels> kernels)
    : config_(config),
      kernels_(std::move(kernels)),
      arch_(architectureOf(napo_model_family(config.family))),
      registry_(buildRegistry(config)),
      device_(config.device),
      qkvWidth_(int64_t(config.num_heads + 2 * config.num_kv_heads) * config.head_dim),
      qWidth_(int64_t(config.num_heads) * config.head_dim),
      kvWidth_(int64_t(config.num_kv_heads) * config.head_dim) {}

// Computed on the host: in place on the CPU, else in a host copy uploaded at the end.
napo_status CausalLM::initialize() {
  NAPO_TRY(params_.reserve(device_, size_t(registry_.floats)));
  std::vector<float> staging(device_.kind == NAPO_CPU ? 0 : size_t(registry_.floats));
  float* p = staging.empty() ? params_.data() : staging.data();
  std::fill(p, p + registry_.floats, 0.0f);
  const float std = config_.initializer_range;
  for (size_t i = 0; i < registry_.specs.size(); ++i) {
    const ParamSpec& s = registry_.specs[i];
    if (s.ndim == 2) normalFill(p + s.offset, s.numel, std, config_.seed, uint32_t(i));
  }
  auto ones = [&](const Norm& n) {
    if (n.weight >= 0) std::fill(p + n.weight, p + n.weight + config_.hidden_size, 1.0f);
  };
  for (const LayerParams& layer : registry_.layers) {
    ones(layer.attentionNorm);
    ones(layer.mlpNorm);
    for (const Norm& n : {layer.qNorm, layer.kNorm}) {
      if (n.weight >= 0) std::fill(p + n.weight, p + n.weight + config_.head_dim, 1.0f);
    }
    // GPT-2 scales the residual projections by 1 / sqrt(2 * layers).
    if (config_.family == NAPO_MODEL_GPT2) {
      const float scale = 1.0f / std::sqrt(2.0f * float(config_.num_layers));
      for (const Linear* l : {&layer.output, &layer.mlpOut}) {
        for (int64_t j = 0; j < l->out * l->in; ++j) p[l->weight + j] *= scale;
      }
    }
  }
  ones(registry_.finalNorm);
  if (!staging.empty()) NAPO_TRY(kernels_->upload(params_.data(), p, sizeof(float) * staging.size()));
  return NAPO_OK;
}

napo_status CausalLM::copyParametersFrom(const CausalLM& other) {
  NAPO_TRY(params_.reserve(device_, size_t(registry_.floats)));
  return napo_memcpy(device_, params_.data(), other.device_, other.params_.data(),
                     size_t(registry_.floats) * sizeof(float));
}

int64_t CausalLM::parameterTotal() const {
  int64_t total = 0;
  for (const ParamSpec& s : registry_.specs) total += s.numel;
  return total;
}

int64_t CausalLM::cachePosition(int64_t row) const {
  if (row < 0 || row >= cacheBatch_) return -1;
  return cachePositions_[size_t(row)];
}

napo_status CausalLM::reserveZeroed(Buffer<float>& buffer, int64_t count) {
  NAPO_TRY(buffer.reserve(device_, size_t(count)));
  kernels_->zero(buffer.data(), count);
  return NAPO_OK;
}

napo_status CausalLM::ensureGrads() {
  if (!grads_.empty()) return NAPO_OK;
  return reserveZeroed(grads_, registry_.floats);
}

napo_status CausalLM::zeroGrad() {
  if (!grads_.empty()) kernels_->zero(grads_.data(), registry_.floats);
  return NAPO_OK;
}

// Grown to a power of two, so a generation does not rebuild the table every step.
int64_t CausalLM::ropeRows(int64_t positions) const {
  int64_t grown = 64;
  while (grown < positions) grown *= 2;
  return std::min<int64_t>(grown, config_.max_positions);
}

napo_status CausalLM::ensureRope(int64_t positions) {
  if (arch_.learnedPositions || positions <= ropePositions_) return NAPO_OK;
  const int64_t half = config_.head_dim / 2;
  const int64_t grown = ropeRows(positions);
  NAPO_TRY(ropeCos_.reserve(device_, size_t(grown * half)));
  NAPO_TRY(ropeSin_.reserve(device_, size_t(grown * half)));
  std::vector<float> cosTable(size_t(grown * half)), sinTable(size_t(grown * half));
  for (int64_t i = 0; i < half; ++i) {
    const double frequency = inverseFrequency(config_, i);
    for (int64_t p = 0; p < grown; ++p) {
      cosTable[size_t(p * half + i)] = float(std::cos(double(p) * frequency));
      sinTable[size_t(p * half + i)] = float(std::sin(double(p) * frequency));
    }
  }
  NAPO_TRY(kernels_->upload(ropeCos_.data(), cosTable.data(), sizeof(float) * cosTable.size()));
  NAPO_TRY(kernels_->upload(ropeSin_.data(), sinTable.data(), sizeof(float) * sinTable.size()));
  ropePositions_ = grown;
  return NAPO_OK;
}

// ---- layout -----------------------------------------------------------------------------------

CausalLM::Layout CausalLM::layoutFor(const Pass& pass) const {
  const int64_t rows = pass.rows(), D = config_.hidden_size, I = config_.intermediate_size;
  Layout l{};
  int64_t o = 0;
  auto take = [&](int64_t n) {
    const int64_t at = o;
    o += pad16(n);
    return at;
  };
  l.h1 = take(rows * D);
  l.mean1 = take(arch_.layerNorm ? rows : 0);
  l.rstd1 = take(rows);
  l.qkRaw = take(arch_.qkNorm ? rows * (qWidth_ + kvWidth_) : 0);
  l.qkRstd = take(arch_.qkNorm ? rows * (config_.num_heads + config_.num_kv_heads) : 0);
  l.qkv = take(rows * qkvWidth_);
  l.lse = take(rows * config_.num_heads);
  l.att = take(rows * qWidth_);
  l.mid = take(rows * D);
  l.h2 = take(rows * D);
  l.mean2 = take(arch_.layerNorm ? rows : 0);
  l.rstd2 = take(rows);
  l.mlp0 = take(rows * I);
  l.mlp1 = take(arch_.gatedMlp ? rows * I : 0);
  l.layerSize = o;
  l.layerSlots = pass.keepAll ? config_.num_layers : 1;
  l.residual = l.layerSize * l.layerSlots;
  l.residualSlots = pass.keepAll ? config_.num_layers + 1 : 2;
  o = l.residual + l.residualSlots * pad16(rows * D);
  l.finalOut = take(rows * D);
  l.finalMean = take(arch_.layerNorm ? rows : 0);
  l.finalRstd = take(rows);
  l.total = o;
  return l;
}

CausalLM::WorkLayout CausalLM::workLayoutFor(int64_t rows) const {
  const int64_t D = config_.hidden_size, I = config_.intermediate_size;
  WorkLayout w{};
  int64_t o = 0;
  auto take = [&](int64_t n) {
    const int64_t at = o;
    o += pad16(n);
    return at;
  };
  w.dres = take(rows * D);
  w.dh = take(rows * D);
  w.dqkv = take(rows * qkvWidth_);
  w.datt = take(rows * qWidth_);
  w.mlpA = take(rows * I);
  w.mlpB = take(rows * I);
  w.total = o;
  return w;
}

CausalLM::LayerView CausalLM::layerView(const Layout& l, int64_t layer, int64_t rows) {
  float* base = acts_.data() + (l.layerSlots == 1 ? 0 : layer) * l.layerSize;
  const int64_t residualSize = pad16(rows * config_.hidden_size);
  const int64_t in = l.residualSlots == 2 ? layer % 2 : layer;
  const int64_t out = l.residualSlots == 2 ? (layer + 1) % 2 : layer + 1;
  float* residual = acts_.data() + l.residual;
  return LayerView{residual + in * residualSize, residual + out * residualSize, base + l.h1, base + l.mean1,
                   base + l.rstd1, base + l.qkRaw, base + l.qkRstd, base + l.qkv, base + l.lse, base + l.att,
                   base + l.mid, base + l.h2, base + l.mean2, base + l.rstd2, base + l.mlp0, base + l.mlp1};
}

// ---- the pieces of a block --------------------------------------------------------------------

void CausalLM::normForward(const Norm& n, int64_t rows, const float* x, float* y, float* mean, float* rstd) {
  const float* P = params_.data();
  const int64_t D = config_.hidden_size;
  if (arch_.layerNorm) kernels_->layerNormForward(rows, D, x, P + n.weight, P + n.bias, config_.norm_eps, y, mean, rstd);
  else kernels_->rmsNormForward(rows, 1, D, x, D, P + n.weight, config_.norm_eps, y, D, rstd);
}

void CausalLM::normBackward(const Norm& n, int64_t rows, const float* x, const float* mean, const float* rstd,
                            const float* dy, float* dx, bool accumulate) {
  const float* P = params_.data();
  float* G = grads_.data();
  const int64_t D = config_.hidden_size;
  if (arch_.layerNorm) {
    kernels_->layerNormBackward(rows, D, x, P + n.weight, mean, rstd, dy, dx, G + n.weight, G + n.bias, accumulate);
  } else {
    kernels_->rmsNormBackward(rows, 1, D, x, D, P + n.weight, rstd, dy, D, dx, D, G + n.weight, accumulate);
  }
}

void CausalLM::linearForward(const Linear& l, int64_t rows, const float* x, int64_t ldx, float* y, int64_t ldy,
                             float beta) {
  const float* P = params_.data();
  kernels_->matmul(false, true, rows, l.out, l.in, 1.0f, x, ldx, P + l.weight, l.in, beta, y, ldy);
  if (l.bias >= 0) kernels_->addBias(rows, l.out, P + l.bias, y, ldy);
}

// dW += dy^T x, db += column sums of dy, dx (+)= dy W (skipped when dx is null).
void CausalLM::linearBackward(const Linear& l, int64_t rows, const float* x, int64_t ldx, const float* dy,
                              int64_t ldy, float* dx, int64_t lddx, bool accumulate) {
  const float* P = params_.data();
  float* G = grads_.data();
  kernels_->matmul(true, false, l.out, l.in, rows, 1.0f, dy, ldy, x, ldx, 1.0f, G + l.weight, l.in);
  if (l.bias >= 0) kernels_->biasBackward(rows, l.out, dy, ldy, G + l.bias);
  if (dx) kernels_->matmul(false, false, rows, l.in, l.out, 1.0f, dy, ldy, P + l.weight, l.in, accumulate ? 1.0f : 0.0f, dx, lddx);
}

// ---- the block, once for every family and every pass -------------------------------------------

void CausalLM::blockForward(int64_t layer, const Pass& pass, const LayerView& a, float* act) {
  const LayerParams& p = registry_.layers[size_t(layer)];
  const float* P = params_.data();
  const int64_t rows = pass.rows(), D = config_.hidden_size, I = config_.intermediate_size;
  const int64_t H = config_.num_heads, KV = config_.num_kv_heads, hd = config_.head_dim;
  const int64_t qkWidth = qWidth_ + kvWidth_;

  normForward(p.attentionNorm, rows, a.input, a.h1, a.mean1, a.rstd1);
  // Projections into q | k | v. With q/k norms, q and k land in qkRaw first (the norms' input,
  // kept for their backward) and the normalised heads are written into qkv.
  int64_t column = 0;
  for (const Linear& projection : p.qkv) {
    const bool raw = arch_.qkNorm && column < qkWidth;
    linearForward(projection, rows, a.h1, D, raw ? a.qkRaw + column : a.qkv + column, raw ? qkWidth : qkvWidth_, 0.0f);
    column += projection.out;
  }
  if (arch_.qkNorm) {
    kernels_->rmsNormForward(rows, H, hd, a.qkRaw, qkWidth, P + p.qNorm.weight, config_.norm_eps, a.qkv, qkvWidth_, a.qkRstd);
    kernels_->rmsNormForward(rows, KV, hd, a.qkRaw + qWidth_, qkWidth, P + p.kNorm.weight, config_.norm_eps,
                       a.qkv + qWidth_, qkvWidth_, a.qkRstd + rows * H);
  }
  if (!arch_.learnedPositions) {
    kernels_->ropeRotate(rows, H, hd, a.qkv, qkvWidth_, pass.positions, ropeCos_.data(), ropeSin_.data(), false);
    kernels_->ropeRotate(rows, KV, hd, a.qkv + qWidth_, qkvWidth_, pass.positions, ropeCos_.data(), ropeSin_.data(), false);
  }

  const AttentionShape shape{pass.batch, pass.queries, H, KV, hd};
  const float* keys = a.qkv + qWidth_;
  const float* values = a.qkv + qWidth_ + kvWidth_;
  KvLayout kv{pass.queries * qkvWidth_, qkvWidth_};
  if (pass.useCache) {
    const int64_t perTensor = cacheBatch_ * cacheCapacity_ * kvWidth_;
    float* cacheK = cache_.data() + layer * 2 * perTensor;
    float* cacheV = cacheK + perTensor;
    kv = KvLayout{cacheCapacity_ * kvWidth_, kvWidth_};
    kernels_->kvCacheWrite(shape, pass.start, pass.count, keys, values, qkvWidth_, cacheK, cacheV, kv);
    keys = cacheK;
    values = cacheV;
  }
  kernels_->attentionForward(shape, pass.start, pass.count, a.qkv, qkvWidth_, keys, values, kv, a.att, qWidth_, a.lse);

  kernels_->copy(a.mid, a.input, rows * D);
  linearForward(p.output, rows, a.att, qWidth_, a.mid, D, 1.0f);
  normForward(p.mlpNorm, rows, a.mid, a.h2, a.mean2, a.rstd2);
  linearForward(p.mlpIn[0], rows, a.h2, D, a.mlp0, I, 0.0f);
  if (arch_.gatedMlp) {
    linearForward(p.mlpIn[1], rows, a.h2, D, a.mlp1, I, 0.0f);
    kernels_->swigluForward(rows * I, a.mlp0, a.mlp1, act);
  } else {
    kernels_->geluForward(rows * I, a.mlp0, act);
  }
  kernels_->copy(a.output, a.mid, rows * D);
  linearForward(p.mlpOut, rows, act, I, a.output, D, 1.0f);
}

// On entry work + w.dres holds d loss / d (the block's output); on exit, d loss / d (its input).
void CausalLM::blockBackward(int64_t layer, const LayerView& a, float* work, const WorkLayout& w) {
  const LayerParams& p = registry_.layers[size_t(layer)];
  const float* P = params_.data();
  float* G = grads_.data();
  const int64_t rows = batch_ * time_, D = config_.hidden_size, I = config_.intermediate_size;
  const int64_t H = config_.num_heads, KV = config_.num_kv_heads, hd = config_.head_dim;
  const int64_t qkWidth = qWidth_ + kvWidth_;
  float *dres = work + w.dres, *dh = work + w.dh, *dqkv = work + w.dqkv, *datt = work + w.datt;
  float *mlpA = work + w.mlpA, *mlpB = work + w.mlpB;

  // MLP: the activation is recomputed from the kept pre-activations rather than stored.
  if (arch_.gatedMlp) kernels_->swigluForward(rows * I, a.mlp0, a.mlp1, mlpA);
  else kernels_->geluForward(rows * I, a.mlp0, mlpA);
  linearBackward(p.mlpOut, rows, mlpA, I, dres, D, mlpB, I, false);
  if (arch_.gatedMlp) {
    kernels_->swigluBackward(rows * I, a.mlp0, a.mlp1, mlpB, mlpB, mlpA);  // d gate -> mlpB, d up -> mlpA
    linearBackward(p.mlpIn[0], rows, a.h2, D, mlpB, I, dh, D, false);
    linearBackward(p.mlpIn[1], rows, a.h2, D, mlpA, I, dh, D, true);
  } else {
    kernels_->geluBackward(rows * I, a.mlp0, mlpB, mlpB);
    linearBackward(p.mlpIn[0], rows, a.h2, D, mlpB, I, dh, D, false);
  }
  normBackward(p.mlpNorm, rows, a.mid, a.mean2, a.rstd2, dh, dres, true);

  // Attention.
  linearBackward(p.output, rows, a.att, qWidth_, dres, D, datt, qWidth_, false);
  const AttentionShape shape{batch_, time_, H, KV, hd};
  const KvLayout kv{time_ * qkvWidth_, qkvWidth_};
  kernels_->attentionBackward(shape, lengths_.data(), a.qkv, qkvWidth_, a.qkv + qWidth_, a.qkv + qWidth_ + kvWidth_, kv,
                        a.att, qWidth_, datt, a.lse, dqkv, dqkv + qWidth_, dqkv + qWidth_ + kvWidth_);
  if (!arch_.learnedPositions) {
    kernels_->ropeRotate(rows, H, hd, dqkv, qkvWidth_, positions_.data(), ropeCos_.data(), ropeSin_.data(), true);
    kernels_->ropeRotate(rows, KV, hd, dqkv + qWidth_, qkvWidth_, positions_.data(), ropeCos_.data(), ropeSin_.data(), true);
  }
  if (arch_.qkNorm) {
    kernels_->rmsNormBackward(rows, H, hd, a.qkRaw, qkWidth, P + p.qNorm.weight, a.qkRstd, dqkv, qkvWidth_, dqkv,
                        qkvWidth_, G + p.qNorm.weight, false);
    kernels_->rmsNormBackward(rows, KV, hd, a.qkRaw + qWidth_, qkWidth, P + p.kNorm.weight, a.qkRstd + rows * H,
                        dqkv + qWidth_, qkvWidth_, dqkv + qWidth_, qkvWidth_, G + p.kNorm.weight, false);
  }
  int64_t column = 0;
  for (const Linear& projection : p.qkv) {
    linearBackward(projection, rows, a.h1, D, dqkv + column, qkvWidth_, dh, D, column > 0);
    column += projection.out;
  }
  normBackward(p.attentionNorm, rows, a.input, a.mean1, a.rstd1, dh, dres, true);
}

// ---- passes -----------------------------------------------------------------------------------

napo_status CausalLM::uploadInputs() {
  const auto send = [&](Buffer<int32_t>& buffer, const std::vector<int32_t>& host) {
    NAPO_TRY(buffer.reserve(device_, host.size()));
    return kernels_->upload(buffer.data(), host.data(), sizeof(int32_t) * host.size());
  };
  NAPO_TRY(send(tokens_, hostTokens_));
  NAPO_TRY(send(positions_, hostPositions_));
  NAPO_TRY(send(lengths_, hostLengths_));
  return send(starts_, hostStarts_);
}

napo_status CausalLM::loadBatch(const HostBatch& batch) {
  const int64_t B = batch.batch, T = batch.time;
  hostTokens_.assign(size_t(B * T), -1);
  hostPositions_.assign(size_t(B * T), -1);
  hostLengths_.assign(size_t(B), 0);
  hostStarts_.assign(size_t(B), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int32_t length = batch.lengths ? batch.lengths[b] : int32_t(T);
    hostLengths_[size_t(b)] = length;
    for (int64_t t = 0; t < length; ++t) {
      hostTokens_[size_t(b * T + t)] = batch.tokens[b * T + t];
      hostPositions_[size_t(b * T + t)] = int32_t(t);
    }
  }
  batch_ = B;
  time_ = T;
  NAPO_TRY(uploadInputs());
  return ensureRope(T);
}

napo_status CausalLM::runPass(const Pass& pass) {
  const Layout layout = layoutFor(pass);
  const int64_t rows = pass.rows();
  NAPO_TRY(acts_.reserve(device_, size_t(layout.total)));
  // The forward's only scratch: the MLP activation (the backward recomputes it), also room for
  // prefill's last hidden states.
  NAPO_TRY(work_.reserve(device_, size_t(rows * std::max(config_.intermediate_size, config_.hidden_size))));
  const float* P = params_.data();
  float* first = layerView(layout, 0, rows).input;
  kernels_->embeddingForward(rows, config_.hidden_size, tokens_.data(), pass.positions, P + registry_.embed,
                                registry_.positions >= 0 ? P + registry_.positions : nullptr, first);
  for (int64_t l = 0; l < config_.num_layers; ++l) blockForward(l, pass, layerView(layout, l, rows), work_.data());
  const float* last = layerView(layout, config_.num_layers - 1, rows).output;
  float* base = acts_.data();
  normForward(registry_.finalNorm, rows, last, base + layout.finalOut, base + layout.finalMean, base + layout.finalRstd);
  return NAPO_OK;
}

void CausalLM::releaseActivations() {
  for (Buffer<float>* buffer : {&acts_, &work_, &scoreHidden_, &scoreLse_, &scoreEntropyValues_, &scoreValues_, &scoreTile_}) {
    buffer->release();
  }
  scoreTargets_.release();
  kept_ = Kept::kNothing;
}

void CausalLM::releaseCache() {
  cache_.release();
  cacheBatch_ = 0;
  cacheCapacity_ = 0;
  cachePositions_.clear();
  releaseActivations();
}

napo_status CausalLM::lmHeadLogits(const float* hidden, int64_t rows, float* logits) {
  kernels_->matmul(false, true, rows, config_.vocab_size, config_.hidden_size, 1.0f, hidden, config_.hidden_size,
                      params_.data() + registry_.lmHead, config_.hidden_size, 0.0f, logits, config_.vocab_size);
  return NAPO_OK;
}

napo_status CausalLM::forward(const HostBatch& batch, float* logits) {
  kept_ = Kept::kNothing;
  NAPO_TRY(loadBatch(batch));
  const Pass pass{batch_, time_, starts_.data(), lengths_.data(), positions_.data(), false, true};
  NAPO_TRY(runPass(pass));
  const Layout layout = layoutFor(pass);
  NAPO_TRY(lmHeadLogits(acts_.data() + layout.finalOut, batch_ * time_, logits));
  const int64_t V = config_.vocab_size;
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t length = hostLengths_[size_t(b)];
    kernels_->zero(logits + (b * time_ + length) * V, (time_ - length) * V);
  }
  kept_ = Kept::kLogits;
  return NAPO_OK;
}

napo_status CausalLM::backward(const float* gradLogits) {
  const int64_t rows = batch_ * time_, D = config_.hidden_size, V = config_.vocab_size;
  const Pass pass{batch_, time_, starts_.data(), lengths_.data(), positions_.data(), false, true};
  const Layout layout = layoutFor(pass);
  const WorkLayout w = workLayoutFor(rows);
  NAPO_TRY(ensureGrads());
  NAPO_TRY(work_.reserve(device_, size_t(w.total)));
  float* dfinal = work_.data() + w.dh;
  const float* hidden = acts_.data() + layout.finalOut;
  // Rows past a length carry no gradient, whatever the caller's buffer holds there.
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t length = hostLengths_[size_t(b)];
    const float* g = gradLogits + b * time_ * V;
    float* grad = grads_.data() + registry_.lmHead;
    kernels_->matmul(true, false, V, D, length, 1.0f, g, V, hidden + b * time_ * D, D, 1.0f, grad, D);
    kernels_->matmul(false, false, length, D, V, 1.0f, g, V, params_.data() + registry_.lmHead, D, 0.0f,
                        dfinal + b * time_ * D, D);
    kernels_->zero(dfinal + (b * time_ + length) * D, (time_ - length) * D);
  }
  (void)rows;
  return trunkBackward(dfinal);
}

napo_status CausalLM::trunkBackward(const float* dfinal) {
  const int64_t rows = batch_ * time_, D = config_.hidden_size;
  const Pass pass{batch_, time_, starts_.data(), lengths_.data(), positions_.data(), false, true};
  const Layout layout = layoutFor(pass);
  const WorkLayout w = workLayoutFor(rows);
  float* work = work_.data();
  float* base = acts_.data();
  const float* last = layerView(layout, config_.num_layers - 1, rows).output;
  normBackward(registry_.finalNorm, rows, last, base + layout.finalMean, base + layout.finalRstd, dfinal,
               work + w.dres, false);
  for (int64_t l = config_.num_layers - 1; l >= 0; --l) blockBackward(l, layerView(layout, l, rows), work, w);
  float* G = grads_.data();
  kernels_->embeddingBackward(rows, D, tokens_.data(), positions_.data(), work + w.dres, G + registry_.embed,
                                 registry_.positions >= 0 ? G + registry_.positions : nullptr);
  // A backward is the end of its forward's memory: the next phase starts without it.
  releaseActivations();
  return NAPO_OK;
}

napo_status CausalLM::score(const HostBatch& batch, const int32_t* targets, const napo_model_score_options& options,
                            float* logprobs, float* entropy) {
  kept_ = Kept::kNothing;
  NAPO_TRY(loadBatch(batch));
  const Pass pass{batch_, time_, starts_.data(), lengths_.data(), positions_.data(), false, true};
  NAPO_TRY(runPass(pass));
  const Layout layout = layoutFor(pass);
  const int64_t rows = batch_ * time_, D = config_.hidden_size, V = config_.vocab_size;
  scoredRows_.clear();
  std::vector<int32_t> scoredTargets;
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0) continue;
    scoredRows_.push_back(r);
    scoredTargets.push_back(targets[r]);
  }
  const int64_t N = int64_t(scoredRows_.size());
  scoreTemperature_ = options.temperature;
  scoreEntropy_ = options.entropy != 0;
  kept_ = Kept::kScores;
  // The outputs are written whole from host rows: 0 where nothing is scored.
  std::vector<float> hostLogprobs(size_t(rows), 0.0f), hostEntropy(entropy ? size_t(rows) : 0, 0.0f);
  if (N > 0) {
    const int64_t chunk = napo_linear_logprobs_chunk(N, V, 0);
    NAPO_TRY(scoreHidden_.reserve(device_, size_t(N * D)));
    NAPO_TRY(scoreTargets_.reserve(device_, size_t(N)));
    NAPO_TRY(scoreLse_.reserve(device_, size_t(N)));
    NAPO_TRY(scoreValues_.reserve(device_, size_t(N)));
    NAPO_TRY(scoreEntropyValues_.reserve(device_, size_t(N)));
    NAPO_TRY(scoreTile_.reserve(device_, size_t(kernels_->linearTileFloats(N, chunk))));
    NAPO_TRY(kernels_->upload(scoreTargets_.data(), scoredTargets.data(), sizeof(int32_t) * size_t(N)));
    const float* hidden = acts_.data() + layout.finalOut;
    for (int64_t i = 0; i < N; ++i) kernels_->copy(scoreHidden_.data() + i * D, hidden + scoredRows_[size_t(i)] * D, D);
    NAPO_TRY(kernels_->linearLogprobs(scoreHidden_.data(), params_.data() + registry_.lmHead, N, V, D, scoreTargets_.data(),
                                      scoreTemperature_, chunk, scoreTile_.data(), scoreValues_.data(),
                                      scoreEntropy_ ? scoreEntropyValues_.data() : nullptr, scoreLse_.data()));
    std::vector<float> values(static_cast<size_t>(N)), entropies(entropy ? size_t(N) : 0);
    NAPO_TRY(kernels_->download(values.data(), scoreValues_.data(), sizeof(float) * values.size()));
    if (entropy) NAPO_TRY(kernels_->download(entropies.data(), scoreEntropyValues_.data(), sizeof(float) * entropies.size()));
    for (int64_t i = 0; i < N; ++i) {
      const size_t r = size_t(scoredRows_[size_t(i)]);
      hostLogprobs[r] = values[size_t(i)];
      if (entropy) hostEntropy[r] = entropies[size_t(i)];
    }
  }
  NAPO_TRY(kernels_->upload(logprobs, hostLogprobs.data(), sizeof(float) * hostLogprobs.size()));
  if (entropy) NAPO_TRY(kernels_->upload(entropy, hostEntropy.data(), sizeof(float) * hostEntropy.size()));
  if (!options.keep_activations) releaseActivations();
  return NAPO_OK;
}

// Gathers the scored rows' gradients on the host (one float a row), runs the fused LM head's
// backward on the device, and scatters d hidden back into the rows.
napo_status CausalLM::scoreBackward(const float* gradLogprobs, const float* gradEntropy) {
  const int64_t rows = batch_ * time_, D = config_.hidden_size, V = config_.vocab_size;
  const int64_t N = int64_t(scoredRows_.size());
  const WorkLayout w = workLayoutFor(rows);
  NAPO_TRY(ensureGrads());
  NAPO_TRY(work_.reserve(device_, size_t(w.total)));
  float* dfinal = work_.data() + w.dh;
  kernels_->zero(dfinal, rows * D);
  if (N > 0) {
    std::vector<float> gradRows(static_cast<size_t>(rows)), gradEntropyRows(gradEntropy ? size_t(rows) : 0);
    NAPO_TRY(kernels_->download(gradRows.data(), gradLogprobs, sizeof(float) * gradRows.size()));
    if (gradEntropy) NAPO_TRY(kernels_->download(gradEntropyRows.data(), gradEntropy, sizeof(float) * gradEntropyRows.size()));
    std::vector<float> selected(static_cast<size_t>(N)), entropySelected(gradEntropy ? size_t(N) : 0);
    for (int64_t i = 0; i < N; ++i) {
      const size_t r = size_t(scoredRows_[size_t(i)]);
      selected[size_t(i)] = gradRows[r];
      if (gradEntropy) entropySelected[size_t(i)] = gradEntropyRows[r];
    }
    // The gathered gradients reuse the forward's log-prob buffer, no longer needed; those of the
    // entropy get their own, since its gradient needs the forward's entropy.
    float* gradSelected = scoreValues_.data();
    NAPO_TRY(kernels_->upload(gradSelected, selected.data(), sizeof(float) * selected.size()));
    Buffer<float> gradEntropySelected(NAPO_MEMORY_TEMPORARY);
    if (gradEntropy) {
      NAPO_TRY(gradEntropySelected.reserve(device_, size_t(N)));
      NAPO_TRY(kernels_->upload(gradEntropySelected.data(), entropySelected.data(), sizeof(float) * entropySelected.size()));
    }
    Buffer<float> gradHidden(NAPO_MEMORY_TEMPORARY);
    NAPO_TRY(reserveZeroed(gradHidden, N * D));
    const int64_t chunk = napo_linear_logprobs_chunk(N, V, 0);
    NAPO_TRY(kernels_->linearLogprobsBackward(scoreHidden_.data(), params_.data() + registry_.lmHead, N, V, D,
                                              scoreTargets_.data(), scoreLse_.data(),
                                              gradEntropy ? scoreEntropyValues_.data() : nullptr, gradSelected,
                                              gradEntropy ? gradEntropySelected.data() : nullptr, scoreTemperature_, chunk,
                                              scoreTile_.data(), gradHidden.data(), grads_.data() + registry_.lmHead));
    for (int64_t i = 0; i < N; ++i) kernels_->copy(dfinal + scoredRows_[size_t(i)] * D, gradHidden.data() + i * D, D);
  }
  return trunkBackward(dfinal);
}

napo_status CausalLM::prefill(const HostBatch& batch, int64_t capacity, float* logits) {
  kept_ = Kept::kNothing;
  NAPO_TRY(loadBatch(batch));
  const int64_t B = batch_, D = config_.hidden_size;
  cacheBatch_ = 0;
  NAPO_TRY(cache_.reserve(device_, size_t(config_.num_layers * 2 * B * capacity * kvWidth_)));
  NAPO_TRY(ensureRope(capacity));
  cacheBatch_ = B;
  cacheCapacity_ = capacity;
  const Pass pass{B, time_, starts_.data(), lengths_.data(), positions_.data(), true, false};
  NAPO_TRY(runPass(pass));
  cachePositions_ = hostLengths_;
  // Logits of each row's last prompt token.
  const Layout layout = layoutFor(pass);
  float* last = work_.data();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t row = b * time_ + hostLengths_[size_t(b)] - 1;
    kernels_->copy(last + b * D, acts_.data() + layout.finalOut + row * D, D);
  }
  return lmHeadLogits(last, B, logits);
}

napo_status CausalLM::decodeStep(const int32_t* tokens, float* logits) {
  kept_ = Kept::kNothing;
  const int64_t B = cacheBatch_, V = config_.vocab_size;
  hostTokens_.assign(size_t(B), -1);
  hostPositions_.assign(size_t(B), -1);
  hostLengths_.assign(size_t(B), 0);
  for (int64_t b = 0; b < B; ++b) {
    if (tokens[b] < 0) continue;
    hostTokens_[size_t(b)] = tokens[b];
    hostPositions_[size_t(b)] = cachePositions_[size_t(b)];
    hostLengths_[size_t(b)] = 1;
  }
  hostStarts_ = hostPositions_;
  batch_ = B;
  time_ = 1;
  NAPO_TRY(uploadInputs());
  const Pass pass{B, 1, starts_.data(), lengths_.data(), positions_.data(), true, false};
  NAPO_TRY(runPass(pass));
  const Layout layout = layoutFor(pass);
  NAPO_TRY(lmHeadLogits(acts_.data() + layout.finalOut, B, logits));
  for (int64_t b = 0; b < B; ++b) {
    if (tokens[b] < 0) kernels_->zero(logits + b * V, V);
    else ++cachePositions_[size_t(b)];
  }
  return NAPO_OK;
}

// ---- memory ---------------------------------------------------------------------------------------

// Mirrors what the passes above reserve, buffer by buffer, with the allocator's rounding.
void CausalLM::memoryPlan(const napo_model_memory_query& q, int64_t* bytes) const {
  const auto add = [&](napo_memory_category category, int64_t count, int64_t element = 4) {
    if (count > 0) bytes[category] += (count * element + 511) / 512 * 512;
  };
  std::fill(bytes, bytes + NAPO_MEMORY_CATEGORIES, int64_t(0));
  const int64_t D = config_.hidden_size, V = config_.vocab_size, B = q.batch, T = q.time, rows = B * T;
  const bool training = q.pass <= NAPO_PASS_BACKWARD;
  const bool backward = q.pass == NAPO_PASS_SCORE_BACKWARD || q.pass == NAPO_PASS_BACKWARD;
  add(NAPO_MEMORY_PARAMETER, registry_.floats);
  if (q.gradients || backward) add(NAPO_MEMORY_GRADIENT, registry_.floats);
  if (q.optimizer_state) {
    add(NAPO_MEMORY_OPTIMIZER_STATE, registry_.floats);
    add(NAPO_MEMORY_OPTIMIZER_STATE, registry_.floats);
  }
  if (!arch_.learnedPositions) {
    const int64_t table = ropeRows(training ? T : q.capacity) * (config_.head_dim / 2);
    add(NAPO_MEMORY_WORKSPACE, table);
    add(NAPO_MEMORY_WORKSPACE, table);
  }
  for (int i = 0; i < 4; ++i) add(NAPO_MEMORY_INPUT, i < 2 ? rows : B);  // tokens, positions, lengths, starts
  const Pass pass{B, T, nullptr, nullptr, nullptr, !training, training};
  add(NAPO_MEMORY_ACTIVATION, layoutFor(pass).total);
  add(NAPO_MEMORY_TEMPORARY, backward ? workLayoutFor(rows).total : rows * std::max(config_.intermediate_size, config_.hidden_size));
  if (q.pass == NAPO_PASS_SCORE || q.pass == NAPO_PASS_SCORE_BACKWARD) {
    const int64_t N = q.scored;
    // The log-probs (and entropy) the score returns; in the backward, their gradients coming in.
    const napo_memory_category io = backward ? NAPO_MEMORY_INPUT : NAPO_MEMORY_TEMPORARY;
    add(io, rows);
    if (q.entropy) add(io, rows);
    if (N > 0) {
      add(NAPO_MEMORY_INPUT, N);                                       // targets
      add(NAPO_MEMORY_ACTIVATION, N * D);                              // the scored hidden states
      add(NAPO_MEMORY_ACTIVATION, N);                                  // lse
      add(NAPO_MEMORY_ACTIVATION, N);                                  // entropy
      add(NAPO_MEMORY_TEMPORARY, N);                                   // the gathered log-probs
      add(NAPO_MEMORY_WORKSPACE, kernels_->linearTileFloats(N, napo_linear_logprobs_chunk(N, V, 0)));
      if (backward) add(NAPO_MEMORY_TEMPORARY, N * D);                 // d hidden
    }
  }
  if (q.pass == NAPO_PASS_FORWARD || q.pass == NAPO_PASS_BACKWARD) add(NAPO_MEMORY_LOGITS, rows * V);
  if (!training) {
    add(NAPO_MEMORY_KV_CACHE, int64_t(config_.num_layers) * 2 * B * q.capacity * kvWidth_);
    add(NAPO_MEMORY_LOGITS, B * V);
  }
}

// ---- optimizer ----------------------------------------------------------------------------------

napo_status CausalLM::step(const napo_adamw_options& o, napo_adamw_result* result) {
  NAPO_TRY(ensureGrads());
  if (m_.empty()) NAPO_TRY(reserveZeroed(m_, registry_.floats));
  if (v_.empty()) NAPO_TRY(reserveZeroed(v_, registry_.floats));
  double squares = 0.0;
  NAPO_TRY(kernels_->sumSquares(registry_.floats, grads_.data(), &squares));
  // Accumulated gradients are scaled first (1 / k for k micro-batches), so the norm and the clip
  // see the mean, as PyTorch's loss / k would give.
  const double gradScale = o.grad_scale > 0.0f ? double(o.grad_scale) : 1.0;
  const double norm = std::sqrt(squares) * gradScale;
  if (!std::isfinite(norm)) return fail(NAPO_ERR_RANGE, "model.step: the gradient norm is %g; the step was skipped", norm);
  double scale = gradScale;
  if (o.max_grad_norm > 0.0f && norm > double(o.max_grad_norm)) scale = gradScale * double(o.max_grad_norm) / (norm + 1e-6);
  std::vector<cpu::AdamWRange> ranges;
  for (const ParamSpec& s : registry_.specs) ranges.push_back({s.offset, s.numel, s.decay});
  ++steps_;
  NAPO_TRY(kernels_->adamwStep(params_.data(), grads_.data(), m_.data(), v_.data(), ranges.data(), int64_t(ranges.size()),
                         steps_, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, float(scale)));
  if (result) {
    result->grad_norm = norm;
    result->clip_scale = scale;
    result->step = steps_;
  }
  return NAPO_OK;
}

napo_status CausalLM::readOptimizerState(float* expAvg, float* expAvgSq, int64_t* steps) const {
  const napo_device host{NAPO_CPU, 0};
  int64_t at = 0;
  for (const ParamSpec& s : registry_.specs) {
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

napo_status CausalLM::writeOptimizerState(const float* expAvg, const float* expAvgSq, int64_t steps) {
  // Zeroed on allocation, so the padding between parameters stays 0.
  if (m_.empty()) NAPO_TRY(reserveZeroed(m_, registry_.floats));
  if (v_.empty()) NAPO_TRY(reserveZeroed(v_, registry_.floats));
  const napo_device host{NAPO_CPU, 0};
  int64_t at = 0;
  for (const ParamSpec& s : registry_.specs) {
    const size_t bytes = sizeof(float) * size_t(s.numel);
    NAPO_TRY(napo_memcpy(device_, m_.data() + s.offset, host, expAvg + at, bytes));
    NAPO_TRY(napo_memcpy(device_, v_.data() + s.offset, host, expAvgSq + at, bytes));
    at += s.numel;
  }
  steps_ = steps;
  return NAPO_OK;
}

}  // namespace napo::model
