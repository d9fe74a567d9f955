// The model layers' CUDA kernels (src/cuda/<layer>.cuh) against the CPU backend's twins, on
// small and odd shapes: widths that are not multiples of a warp, head dims below and at the
// kernels' limit, grouped-query attention, ragged and inactive rows, the KV cache at an offset,
// tokens of -1, in-place backwards. Shared by the host emulation harness (harness_tests.cpp) and
// the GPU tests (cuda_layer_tests.cu), which differ in the Device they hand in:
//   T* copy(const std::vector<T>&)           memory the kernels may read and write, kept as long
//                                            as the Device lives;
//   std::vector<T> read(const T*, size_t)    its contents, after every launch so far;
//   launch(kernel, grid, block, args...)     runs a kernel.
// Include after harness/cuda_emulation.h (host) or in a .cu file (GPU).
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "cpu/backend.h"
#include "cuda/adamw.cuh"
#include "cuda/attention.cuh"
#include "cuda/bias.cuh"
#include "cuda/embedding.cuh"
#include "cuda/gelu.cuh"
#include "cuda/layer_norm.cuh"
#include "cuda/rms_norm.cuh"
#include "cuda/rope.cuh"
#include "cuda/swiglu.cuh"
#include "op_checks.h"

namespace napo_tests {

namespace layer_checks {

namespace kernels = napo::cuda;

inline const napo::cpu::CpuBackend& cpu() { return napo::cpuBackend(); }

constexpr double kAtol = 2e-5, kRtol = 2e-5;

inline bool same(Checks& checks, const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                 double atol = kAtol, double rtol = kRtol) {
  if (got.size() != want.size()) return checks.expect(false, what + ": sizes differ");
  return allClose(checks, what, got.data(), want.data(), got.size(), atol, rtol);
}

inline std::vector<float> filled(int64_t count, float value = 0.0f) { return std::vector<float>(static_cast<size_t>(count), value); }

template <typename Device>
void rmsNormSuite(Checks& checks, Device& dev) {
  struct Case {
    int64_t rows, groups, d, stride;
  };
  // One vector per row (the hidden state), and Qwen3's per-head norm over q's heads in a wider row.
  for (const Case c : {Case{5, 1, 37, 37}, Case{3, 1, 96, 100}, Case{4, 3, 16, 64}, Case{1, 2, 128, 256}}) {
    const std::string what = format("rmsNorm rows %lld groups %lld d %lld", (long long)c.rows, (long long)c.groups, (long long)c.d);
    const int64_t size = c.rows * c.stride, vectors = c.rows * c.groups;
    const std::vector<float> x = randomNormal(size_t(size), 10 + c.d), w = randomNormal(size_t(c.d), 11 + c.d);
    const std::vector<float> dy = randomNormal(size_t(size), 12 + c.d);
    std::vector<float> y = filled(size), rstd = filled(vectors);
    cpu().rmsNormForward(c.rows, c.groups, c.d, x.data(), c.stride, w.data(), 1e-6f, y.data(), c.stride, rstd.data());
    float* yDev = dev.copy(filled(size));
    float* rstdDev = dev.copy(filled(vectors));
    kernels::RmsNormArgs args{c.rows, c.groups, c.d, dev.copy(x), c.stride, dev.copy(w), 1e-6f, yDev, c.stride, rstdDev,
                              nullptr, 0, nullptr, 0, nullptr, false};
    kernels::launchRmsNormForward(dev.launcher(), args);
    same(checks, what + " y", dev.read(yDev, size_t(size)), y);
    same(checks, what + " rstd", dev.read(rstdDev, size_t(vectors)), rstd);
    for (bool inPlace : {false, true}) {
      // In place: dx written over dy, as Qwen3's q_norm backward does on dq.
      std::vector<float> dx = inPlace ? dy : filled(size, 0.5f), dw = filled(c.d, 0.25f);
      float* dxDev = dev.copy(dx);
      float* dwDev = dev.copy(dw);
      cpu().rmsNormBackward(c.rows, c.groups, c.d, x.data(), c.stride, w.data(), rstd.data(), inPlace ? dx.data() : dy.data(),
                            c.stride, dx.data(), c.stride, dw.data(), !inPlace);
      args.dy = inPlace ? dxDev : dev.copy(dy);
      args.dyStride = c.stride;
      args.dx = dxDev;
      args.dxStride = c.stride;
      args.dw = dwDev;
      args.accumulate = !inPlace;
      kernels::launchRmsNormBackward(dev.launcher(), args);
      same(checks, what + (inPlace ? " dx in place" : " dx accumulated"), dev.read(dxDev, size_t(size)), dx);
      same(checks, what + " dw", dev.read(dwDev, size_t(c.d)), dw);
    }
  }
}

template <typename Device>
void layerNormSuite(Checks& checks, Device& dev) {
  for (const auto& [m, d] : {std::pair<int64_t, int64_t>{3, 5}, {7, 64}, {2, 300}}) {
    const std::string what = format("layerNorm %lld x %lld", (long long)m, (long long)d);
    const std::vector<float> x = randomNormal(size_t(m * d), 20 + d, 3.0f), w = randomNormal(size_t(d), 21);
    const std::vector<float> b = randomNormal(size_t(d), 22), dy = randomNormal(size_t(m * d), 23);
    std::vector<float> y = filled(m * d), mean = filled(m), rstd = filled(m);
    cpu().layerNormForward(m, d, x.data(), w.data(), b.data(), 1e-5f, y.data(), mean.data(), rstd.data());
    float* yDev = dev.copy(filled(m * d));
    float* meanDev = dev.copy(filled(m));
    float* rstdDev = dev.copy(filled(m));
    kernels::LayerNormArgs args{m, d, dev.copy(x), dev.copy(w), dev.copy(b), 1e-5f, yDev, meanDev, rstdDev,
                                nullptr, nullptr, nullptr, nullptr, false};
    kernels::launchLayerNormForward(dev.launcher(), args);
    same(checks, what + " y", dev.read(yDev, size_t(m * d)), y);
    same(checks, what + " mean", dev.read(meanDev, size_t(m)), mean);
    same(checks, what + " rstd", dev.read(rstdDev, size_t(m)), rstd);
    std::vector<float> dx = filled(m * d, 1.0f), dw = filled(d, 0.5f), db = filled(d, -1.0f);
    args.dy = dev.copy(dy);
    args.dx = dev.copy(dx);
    args.dw = dev.copy(dw);
    args.db = dev.copy(db);
    args.accumulate = true;
    cpu().layerNormBackward(m, d, x.data(), w.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dw.data(), db.data(), true);
    kernels::launchLayerNormBackward(dev.launcher(), args);
    same(checks, what + " dx", dev.read(args.dx, size_t(m * d)), dx, 1e-4, 1e-4);
    same(checks, what + " dw", dev.read(args.dw, size_t(d)), dw, 1e-4, 1e-4);
    same(checks, what + " db", dev.read(args.db, size_t(d)), db);
  }
}

template <typename Device>
void ropeSuite(Checks& checks, Device& dev) {
  const int64_t rows = 6, heads = 3, headDim = 10, stride = 34, maxPosition = 40, half = headDim / 2;
  std::vector<float> cosTable = filled(maxPosition * half), sinTable = filled(maxPosition * half);
  for (int64_t p = 0; p < maxPosition; ++p) {
    for (int64_t j = 0; j < half; ++j) {
      const double angle = double(p) * std::pow(10000.0, -2.0 * double(j) / double(headDim));
      cosTable[size_t(p * half + j)] = float(std::cos(angle));
      sinTable[size_t(p * half + j)] = float(std::sin(angle));
    }
  }
  const std::vector<int32_t> positions = {0, 7, -1, 39, 3, 12};  // -1: a padding row, left alone
  for (bool inverse : {false, true}) {
    std::vector<float> x = randomNormal(size_t(rows * stride), 30);
    float* xDev = dev.copy(x);
    cpu().ropeRotate(rows, heads, headDim, x.data(), stride, positions.data(), cosTable.data(), sinTable.data(), inverse);
    kernels::launchRopeRotate(dev.launcher(), kernels::RopeArgs{rows, heads, headDim, xDev, stride, dev.copy(positions),
                                                                dev.copy(cosTable), dev.copy(sinTable), inverse});
    same(checks, inverse ? "rope inverse" : "rope", dev.read(xDev, x.size()), x);
  }
}

template <typename Device>
void activationSuite(Checks& checks, Device& dev) {
  const int64_t n = 1000;
  const std::vector<float> x = randomNormal(size_t(n), 40, 4.0f), up = randomNormal(size_t(n), 41), dy = randomNormal(size_t(n), 42);
  float* xDev = dev.copy(x);
  float* upDev = dev.copy(up);
  float* dyDev = dev.copy(dy);
  std::vector<float> out = filled(n);
  float* outDev = dev.copy(out);
  cpu().geluForward(n, x.data(), out.data());
  kernels::launchGeluForward(dev.launcher(), kernels::GeluArgs{n, xDev, nullptr, outDev});
  same(checks, "gelu", dev.read(outDev, size_t(n)), out);
  cpu().geluBackward(n, x.data(), dy.data(), out.data());
  kernels::launchGeluBackward(dev.launcher(), kernels::GeluArgs{n, xDev, dyDev, outDev});
  same(checks, "gelu backward", dev.read(outDev, size_t(n)), out);

  cpu().swigluForward(n, x.data(), up.data(), out.data());
  kernels::SwigluArgs args{n, xDev, upDev, nullptr, outDev, nullptr, nullptr};
  kernels::launchSwigluForward(dev.launcher(), args);
  same(checks, "swiglu", dev.read(outDev, size_t(n)), out);
  // The backward in place, as the model runs it: dgate over dout, dup over the forward's output.
  std::vector<float> dgate = dy;
  cpu().swigluBackward(n, x.data(), up.data(), dgate.data(), dgate.data(), out.data());
  args.dout = args.dgate = dyDev;
  args.dup = outDev;
  kernels::launchSwigluBackward(dev.launcher(), args);
  same(checks, "swiglu backward dgate", dev.read(dyDev, size_t(n)), dgate);
  same(checks, "swiglu backward dup", dev.read(outDev, size_t(n)), out);
}

template <typename Device>
void embeddingSuite(Checks& checks, Device& dev) {
  const int64_t rows = 9, d = 33, vocab = 7, positions = 12;
  const std::vector<int32_t> tokens = {3, 0, -1, 3, 6, 3, -1, 1, 0};  // repeats add up; -1 embeds to zeros
  const std::vector<int32_t> at = {0, 1, 2, 3, 4, 5, 0, 11, 11};
  const std::vector<float> wte = randomNormal(size_t(vocab * d), 50), wpe = randomNormal(size_t(positions * d), 51);
  const std::vector<float> dx = randomNormal(size_t(rows * d), 52);
  for (bool learnedPositions : {false, true}) {
    const std::string what = learnedPositions ? "embedding with positions" : "embedding";
    std::vector<float> x = filled(rows * d), dwte = filled(vocab * d, 0.5f), dwpe = filled(positions * d);
    float* xDev = dev.copy(filled(rows * d, 9.0f));
    float* dwteDev = dev.copy(dwte);
    float* dwpeDev = dev.copy(dwpe);
    cpu().embeddingForward(rows, d, tokens.data(), at.data(), wte.data(), learnedPositions ? wpe.data() : nullptr, x.data());
    kernels::EmbeddingArgs args{rows, d, dev.copy(tokens), dev.copy(at), dev.copy(wte), learnedPositions ? dev.copy(wpe) : nullptr,
                                xDev, dev.copy(dx), dwteDev, learnedPositions ? dwpeDev : nullptr};
    kernels::launchEmbeddingForward(dev.launcher(), args);
    same(checks, what, dev.read(xDev, x.size()), x);
    cpu().embeddingBackward(rows, d, tokens.data(), at.data(), dx.data(), dwte.data(), learnedPositions ? dwpe.data() : nullptr);
    kernels::launchEmbeddingBackward(dev.launcher(), args);
    same(checks, what + " backward (tokens)", dev.read(dwteDev, dwte.size()), dwte);
    same(checks, what + " backward (positions)", dev.read(dwpeDev, dwpe.size()), dwpe);
  }
}

template <typename Device>
void biasSuite(Checks& checks, Device& dev) {
  const int64_t m = 11, n = 45, ld = 50;
  const std::vector<float> bias = randomNormal(size_t(n), 60), dy = randomNormal(size_t(m * ld), 61);
  std::vector<float> y = randomNormal(size_t(m * ld), 62), db = filled(n, 1.0f);
  float* yDev = dev.copy(y);
  float* dbDev = dev.copy(db);
  cpu().addBias(m, n, bias.data(), y.data(), ld);
  kernels::BiasArgs args{m, n, dev.copy(bias), yDev, dev.copy(dy), dbDev, ld};
  kernels::launchAddBias(dev.launcher(), args);
  same(checks, "addBias", dev.read(yDev, y.size()), y);
  cpu().biasBackward(m, n, dy.data(), ld, db.data());
  kernels::launchBiasBackward(dev.launcher(), args);
  same(checks, "biasBackward", dev.read(dbDev, db.size()), db);
}

template <typename Device>
void adamwSuite(Checks& checks, Device& dev) {
  // Three parameters, the middle one without weight decay (a norm weight); the gap between the
  // second and third stays untouched.
  const std::vector<napo::cpu::AdamWRange> ranges = {{0, 1000, true}, {1000, 37, false}, {1040, 300, true}};
  const int64_t size = 1340;
  const std::vector<float> grads = randomNormal(size_t(size), 71, 0.1f);
  std::vector<float> p = randomNormal(size_t(size), 70), m = filled(size), v = filled(size);
  std::vector<kernels::AdamWSpan> spans;
  for (const auto& range : ranges) spans.push_back({range.offset, range.size, range.decay});
  kernels::AdamWArgs args{dev.copy(p), dev.copy(grads), dev.copy(m), dev.copy(v), dev.copy(spans), int64_t(spans.size()),
                          1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f, 0.0f, 0.0f};
  for (int64_t step = 1; step <= 3; ++step) {
    cpu().adamwStep(p.data(), const_cast<float*>(grads.data()), m.data(), v.data(), ranges.data(), int64_t(ranges.size()), step,
                    1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f);
    kernels::adamwCorrections(args, step);
    kernels::launchAdamWStep(dev.launcher(), args, 1000);
  }
  same(checks, "adamw parameters after 3 steps", dev.read(args.params, p.size()), p, 1e-6, 1e-5);
  same(checks, "adamw first moments", dev.read(args.m, m.size()), m, 1e-7, 1e-5);
  same(checks, "adamw second moments", dev.read(args.v, v.size()), v, 1e-9, 1e-5);

  for (int64_t n : {int64_t(0), int64_t(5), int64_t(16384), int64_t(50001)}) {
    const std::vector<float> x = randomNormal(size_t(n), 72);
    const size_t blocks = size_t(std::max<int64_t>(1, kernels::sumSquaresBlocks(n)));
    double* partials = dev.copy(std::vector<double>(blocks, -1.0));
    kernels::launchSumSquares(dev.launcher(), kernels::SumSquaresArgs{n, n ? dev.copy(x) : nullptr, partials});
    const double got = dev.read(partials, 1)[0], want = cpu().sumSquares(n, x.data());
    checks.expect(std::fabs(got - want) <= 1e-12 * std::max(1.0, want), format("sumSquares n %lld: %.17g, want %.17g", (long long)n, got, want));
  }
}

struct AttentionCase {
  int64_t batch, queries, heads, kvHeads, headDim;
  std::vector<int32_t> start, count;  // a training call has start 0
  int64_t cachePositions;             // 0: the keys are the call's own rows; else a KV cache of this length
};

template <typename Device>
void attentionCase(Checks& checks, Device& dev, const AttentionCase& c) {
  const std::string what = format("attention B %lld T %lld heads %lld/%lld hd %lld%s", (long long)c.batch, (long long)c.queries,
                                  (long long)c.heads, (long long)c.kvHeads, (long long)c.headDim, c.cachePositions ? " on a cache" : "");
  const int64_t qWidth = c.heads * c.headDim, kvWidth = c.kvHeads * c.headDim;
  // Training rows as the model lays them out: [q | k | v] per row.
  const int64_t stride = qWidth + 2 * kvWidth, rows = c.batch * c.queries;
  const std::vector<float> qkv = randomNormal(size_t(rows * stride), 80 + c.headDim, 1.5f);
  const std::vector<float> dout = randomNormal(size_t(rows * qWidth), 81);
  const float* qkvDev = dev.copy(qkv);
  const int32_t* startDev = dev.copy(c.start);
  const int32_t* countDev = dev.copy(c.count);
  const napo::cpu::AttentionShape shape{c.batch, c.queries, c.heads, c.kvHeads, c.headDim};
  const float* k = qkv.data() + qWidth;
  const float* v = k + kvWidth;
  const float* kDev = qkvDev + qWidth;
  const float* vDev = kDev + kvWidth;
  napo::cpu::KvLayout kv{c.queries * stride, stride};
  std::vector<float> cacheK, cacheV;
  if (c.cachePositions) {
    // The cache: earlier positions random, this call's rows written at start[b] by kvCacheWrite.
    kv = {c.cachePositions * kvWidth, kvWidth};
    cacheK = randomNormal(size_t(c.batch * c.cachePositions * kvWidth), 82);
    cacheV = randomNormal(cacheK.size(), 83);
    float* cacheKDev = dev.copy(cacheK);
    float* cacheVDev = dev.copy(cacheV);
    cpu().kvCacheWrite(shape, c.start.data(), c.count.data(), k, v, stride, cacheK.data(), cacheV.data(), kv);
    kernels::launchKvCacheWrite(dev.launcher(), kernels::KvCacheWriteArgs{c.batch, c.queries, c.kvHeads, c.headDim, startDev, countDev,
                                                                         kDev, vDev, stride, cacheKDev, cacheVDev, kv.batchStride,
                                                                         kv.positionStride});
    same(checks, what + " kvCacheWrite k", dev.read(cacheKDev, cacheK.size()), cacheK, 0, 0);
    same(checks, what + " kvCacheWrite v", dev.read(cacheVDev, cacheV.size()), cacheV, 0, 0);
    k = cacheK.data();
    v = cacheV.data();
    kDev = cacheKDev;
    vDev = cacheVDev;
  }
  std::vector<float> out = filled(rows * qWidth), lse = filled(c.batch * c.heads * c.queries);
  float* outDev = dev.copy(filled(rows * qWidth, 7.0f));
  float* lseDev = dev.copy(filled(c.batch * c.heads * c.queries, 7.0f));
  cpu().attentionForward(shape, c.start.data(), c.count.data(), qkv.data(), stride, k, v, kv, out.data(), qWidth, lse.data());
  kernels::AttentionArgs args{c.batch, c.queries, c.heads, c.kvHeads, c.headDim, startDev, countDev, qkvDev, stride, kDev, vDev,
                              kv.batchStride, kv.positionStride, outDev, qWidth, lseDev, dev.copy(dout), nullptr, nullptr, nullptr};
  kernels::launchAttentionForward(dev.launcher(), args);
  same(checks, what + " out", dev.read(outDev, out.size()), out, 1e-5, 1e-4);
  same(checks, what + " lse", dev.read(lseDev, lse.size()), lse, 1e-5, 1e-5);
  if (c.cachePositions) return;  // the backward is the training call's

  // dq in q's layout and dk, dv in the keys' (the model's dqkv rows); NaN where nothing may write.
  std::vector<float> grads = filled(rows * stride);
  float* gradsDev = dev.copy(filled(rows * stride, std::nanf("")));
  cpu().attentionBackward(shape, c.count.data(), qkv.data(), stride, k, v, kv, out.data(), qWidth, dout.data(), lse.data(),
                          grads.data(), grads.data() + qWidth, grads.data() + qWidth + kvWidth);
  args.dq = gradsDev;
  args.dk = gradsDev + qWidth;
  args.dv = gradsDev + qWidth + kvWidth;
  kernels::launchAttentionBackward(dev.launcher(), args);
  same(checks, what + " dq, dk, dv", dev.read(gradsDev, grads.size()), grads, 1e-5, 1e-4);
}

template <typename Device>
void attentionSuite(Checks& checks, Device& dev) {
  // Training: ragged rows (a full one, a short one, an empty one), multi-head, GQA (2 and 3
  // query heads per kv head), odd head dims, one past a key tile, the largest head dim.
  attentionCase(checks, dev, {2, 9, 2, 2, 8, {0, 0}, {9, 4}, 0});
  attentionCase(checks, dev, {3, 13, 4, 2, 20, {0, 0, 0}, {13, 1, 0}, 0});
  attentionCase(checks, dev, {1, 40, 6, 2, 64, {0}, {33}, 0});
  attentionCase(checks, dev, {2, 11, 3, 1, 128, {0, 0}, {11, 7}, 0});
  attentionCase(checks, dev, {1, 35, 2, 1, 40, {0}, {35}, 0});
  // Decoding on a cache: one new position per row at different offsets, an inactive row (start
  // -1), and a prefill continuing at an offset.
  attentionCase(checks, dev, {3, 1, 4, 2, 16, {5, -1, 37}, {1, 1, 1}, 48});
  attentionCase(checks, dev, {2, 6, 2, 1, 128, {0, 30}, {6, 3}, 40});
}

}  // namespace layer_checks

template <typename Device>
void layerKernelSuites(Checks& checks, Device& dev) {
  layer_checks::rmsNormSuite(checks, dev);
  layer_checks::layerNormSuite(checks, dev);
  layer_checks::ropeSuite(checks, dev);
  layer_checks::activationSuite(checks, dev);
  layer_checks::embeddingSuite(checks, dev);
  layer_checks::biasSuite(checks, dev);
  layer_checks::adamwSuite(checks, dev);
  layer_checks::attentionSuite(checks, dev);
}

}  // namespace napo_tests
