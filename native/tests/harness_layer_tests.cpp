// The model layers' CUDA kernels (src/cuda/<layer>.cuh) under the host emulation harness, against
// the CPU backend's twins on small and odd shapes: widths that are not multiples of a warp, a
// head dimension below and at the kernels' limit, grouped-query attention, ragged and inactive
// rows, the KV cache at an offset, tokens of -1, in-place backwards.
#include "harness/cuda_emulation.h"

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
#include "harness_suites.h"
#include "op_checks.h"

using namespace napo_tests;
namespace kernels = napo::cuda;

namespace {

const auto emulated = [](auto kernel, dim3 grid, dim3 block, auto... args) { emu::launch(kernel, grid, block, args...); };

const napo::cpu::CpuBackend& cpu() { return napo::cpuBackend(); }

constexpr double kAtol = 2e-5, kRtol = 2e-5;

bool same(Checks& checks, const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
          double atol = kAtol, double rtol = kRtol) {
  if (got.size() != want.size()) return checks.expect(false, what + ": sizes differ");
  return allClose(checks, what, got.data(), want.data(), got.size(), atol, rtol);
}

void rmsNormSuite(Checks& checks) {
  struct Case {
    int64_t rows, groups, d, stride;
  };
  // One vector per row (the hidden state), and Qwen3's per-head norm over q's heads in a wider row.
  for (const Case c : {Case{5, 1, 37, 37}, Case{3, 1, 96, 100}, Case{4, 3, 16, 64}, Case{1, 2, 128, 256}}) {
    const std::string what = format("rmsNorm rows %lld groups %lld d %lld", (long long)c.rows, (long long)c.groups, (long long)c.d);
    const size_t size = size_t(c.rows * c.stride);
    const std::vector<float> x = randomNormal(size, 10 + c.d), w = randomNormal(size_t(c.d), 11 + c.d), dy = randomNormal(size, 12 + c.d);
    std::vector<float> yCpu(size), yGpu(size), rCpu(size_t(c.rows * c.groups)), rGpu(rCpu.size());
    cpu().rmsNormForward(c.rows, c.groups, c.d, x.data(), c.stride, w.data(), 1e-6f, yCpu.data(), c.stride, rCpu.data());
    kernels::RmsNormArgs args{c.rows, c.groups, c.d, x.data(), c.stride, w.data(), 1e-6f, yGpu.data(), c.stride, rGpu.data(),
                              nullptr, 0, nullptr, 0, nullptr, false};
    kernels::launchRmsNormForward(emulated, args);
    same(checks, what + " y", yGpu, yCpu);
    same(checks, what + " rstd", rGpu, rCpu);
    for (bool inPlace : {false, true}) {
      // In place: dx written over dy, as Qwen3's q_norm backward does on dq.
      std::vector<float> dxCpu = inPlace ? dy : std::vector<float>(size, 0.5f), dxGpu = dxCpu;
      std::vector<float> dwCpu(size_t(c.d), 0.25f), dwGpu = dwCpu;
      cpu().rmsNormBackward(c.rows, c.groups, c.d, x.data(), c.stride, w.data(), rCpu.data(), inPlace ? dxCpu.data() : dy.data(),
                            c.stride, dxCpu.data(), c.stride, dwCpu.data(), !inPlace);
      args.dy = inPlace ? dxGpu.data() : dy.data();
      args.dyStride = c.stride;
      args.dx = dxGpu.data();
      args.dxStride = c.stride;
      args.dw = dwGpu.data();
      args.accumulate = !inPlace;
      kernels::launchRmsNormBackward(emulated, args);
      same(checks, what + (inPlace ? " dx in place" : " dx accumulated"), dxGpu, dxCpu);
      same(checks, what + " dw", dwGpu, dwCpu);
    }
  }
}

void layerNormSuite(Checks& checks) {
  for (const auto& [m, d] : {std::pair<int64_t, int64_t>{3, 5}, {7, 64}, {2, 300}}) {
    const std::string what = format("layerNorm %lld x %lld", (long long)m, (long long)d);
    const size_t size = size_t(m * d);
    const std::vector<float> x = randomNormal(size, 20 + d, 3.0f), w = randomNormal(size_t(d), 21), b = randomNormal(size_t(d), 22);
    const std::vector<float> dy = randomNormal(size, 23);
    std::vector<float> yCpu(size), yGpu(size), meanCpu(static_cast<size_t>(m)), meanGpu(static_cast<size_t>(m)), rCpu(static_cast<size_t>(m)), rGpu(static_cast<size_t>(m));
    cpu().layerNormForward(m, d, x.data(), w.data(), b.data(), 1e-5f, yCpu.data(), meanCpu.data(), rCpu.data());
    kernels::LayerNormArgs args{m, d, x.data(), w.data(), b.data(), 1e-5f, yGpu.data(), meanGpu.data(), rGpu.data(),
                                nullptr, nullptr, nullptr, nullptr, false};
    kernels::launchLayerNormForward(emulated, args);
    same(checks, what + " y", yGpu, yCpu);
    same(checks, what + " mean", meanGpu, meanCpu);
    same(checks, what + " rstd", rGpu, rCpu);
    std::vector<float> dxCpu(size, 1.0f), dxGpu = dxCpu, dwCpu(size_t(d), 0.5f), dwGpu = dwCpu, dbCpu(size_t(d), -1.0f), dbGpu = dbCpu;
    cpu().layerNormBackward(m, d, x.data(), w.data(), meanCpu.data(), rCpu.data(), dy.data(), dxCpu.data(), dwCpu.data(),
                            dbCpu.data(), true);
    args.dy = dy.data();
    args.dx = dxGpu.data();
    args.dw = dwGpu.data();
    args.db = dbGpu.data();
    args.accumulate = true;
    kernels::launchLayerNormBackward(emulated, args);
    same(checks, what + " dx", dxGpu, dxCpu, 1e-4, 1e-4);
    same(checks, what + " dw", dwGpu, dwCpu, 1e-4, 1e-4);
    same(checks, what + " db", dbGpu, dbCpu);
  }
}

void ropeSuite(Checks& checks) {
  const int64_t rows = 6, heads = 3, headDim = 10, stride = 34, maxPosition = 40, half = headDim / 2;
  std::vector<float> cosTable(size_t(maxPosition * half)), sinTable(cosTable.size());
  for (int64_t p = 0; p < maxPosition; ++p) {
    for (int64_t j = 0; j < half; ++j) {
      const double angle = double(p) * std::pow(10000.0, -2.0 * double(j) / double(headDim));
      cosTable[size_t(p * half + j)] = float(std::cos(angle));
      sinTable[size_t(p * half + j)] = float(std::sin(angle));
    }
  }
  const std::vector<int32_t> positions = {0, 7, -1, 39, 3, 12};  // -1: a padding row, left alone
  for (bool inverse : {false, true}) {
    std::vector<float> xCpu = randomNormal(size_t(rows * stride), 30), xGpu = xCpu;
    cpu().ropeRotate(rows, heads, headDim, xCpu.data(), stride, positions.data(), cosTable.data(), sinTable.data(), inverse);
    kernels::launchRopeRotate(emulated, kernels::RopeArgs{rows, heads, headDim, xGpu.data(), stride, positions.data(),
                                                          cosTable.data(), sinTable.data(), inverse});
    same(checks, inverse ? "rope inverse" : "rope", xGpu, xCpu);
  }
}

void activationSuite(Checks& checks) {
  const int64_t n = 1000;
  const std::vector<float> x = randomNormal(size_t(n), 40, 4.0f), up = randomNormal(size_t(n), 41), dy = randomNormal(size_t(n), 42);
  std::vector<float> cpuOut(static_cast<size_t>(n)), gpuOut(static_cast<size_t>(n));
  cpu().geluForward(n, x.data(), cpuOut.data());
  kernels::launchGeluForward(emulated, kernels::GeluArgs{n, x.data(), nullptr, gpuOut.data()});
  same(checks, "gelu", gpuOut, cpuOut);
  cpu().geluBackward(n, x.data(), dy.data(), cpuOut.data());
  kernels::launchGeluBackward(emulated, kernels::GeluArgs{n, x.data(), dy.data(), gpuOut.data()});
  same(checks, "gelu backward", gpuOut, cpuOut);

  cpu().swigluForward(n, x.data(), up.data(), cpuOut.data());
  kernels::SwigluArgs args{n, x.data(), up.data(), nullptr, gpuOut.data(), nullptr, nullptr};
  kernels::launchSwigluForward(emulated, args);
  same(checks, "swiglu", gpuOut, cpuOut);
  // The backward in place, as the model runs it: dgate over dout, dup over the forward's output.
  std::vector<float> dgateCpu = dy, dupCpu = cpuOut, dgateGpu = dy, dupGpu = gpuOut;
  cpu().swigluBackward(n, x.data(), up.data(), dgateCpu.data(), dgateCpu.data(), dupCpu.data());
  args.dout = dgateGpu.data();
  args.dgate = dgateGpu.data();
  args.dup = dupGpu.data();
  kernels::launchSwigluBackward(emulated, args);
  same(checks, "swiglu backward dgate", dgateGpu, dgateCpu);
  same(checks, "swiglu backward dup", dupGpu, dupCpu);
}

void embeddingSuite(Checks& checks) {
  const int64_t rows = 9, d = 33, vocab = 7, positions = 12;
  const std::vector<int32_t> tokens = {3, 0, -1, 3, 6, 3, -1, 1, 0};  // repeats add up; -1 embeds to zeros
  const std::vector<int32_t> at = {0, 1, 2, 3, 4, 5, 0, 11, 11};
  const std::vector<float> wte = randomNormal(size_t(vocab * d), 50), wpe = randomNormal(size_t(positions * d), 51);
  const std::vector<float> dx = randomNormal(size_t(rows * d), 52);
  for (bool learnedPositions : {false, true}) {
    const std::string what = learnedPositions ? "embedding with positions" : "embedding";
    std::vector<float> xCpu(size_t(rows * d)), xGpu(size_t(rows * d), 9.0f);
    const float* pe = learnedPositions ? wpe.data() : nullptr;
    cpu().embeddingForward(rows, d, tokens.data(), at.data(), wte.data(), pe, xCpu.data());
    kernels::EmbeddingArgs args{rows, d, tokens.data(), at.data(), wte.data(), pe, xGpu.data(), dx.data(), nullptr, nullptr};
    kernels::launchEmbeddingForward(emulated, args);
    same(checks, what, xGpu, xCpu);
    std::vector<float> dwteCpu(size_t(vocab * d), 0.5f), dwteGpu = dwteCpu, dwpeCpu(size_t(positions * d), 0.0f), dwpeGpu = dwpeCpu;
    cpu().embeddingBackward(rows, d, tokens.data(), at.data(), dx.data(), dwteCpu.data(), learnedPositions ? dwpeCpu.data() : nullptr);
    args.dwte = dwteGpu.data();
    args.dwpe = learnedPositions ? dwpeGpu.data() : nullptr;
    kernels::launchEmbeddingBackward(emulated, args);
    same(checks, what + " backward (tokens)", dwteGpu, dwteCpu);
    same(checks, what + " backward (positions)", dwpeGpu, dwpeCpu);
  }
}

void biasSuite(Checks& checks) {
  const int64_t m = 11, n = 45, ld = 50;
  const std::vector<float> bias = randomNormal(size_t(n), 60), dy = randomNormal(size_t(m * ld), 61);
  std::vector<float> yCpu = randomNormal(size_t(m * ld), 62), yGpu = yCpu;
  cpu().addBias(m, n, bias.data(), yCpu.data(), ld);
  kernels::BiasArgs args{m, n, bias.data(), yGpu.data(), dy.data(), nullptr, ld};
  kernels::launchAddBias(emulated, args);
  same(checks, "addBias", yGpu, yCpu);
  std::vector<float> dbCpu(size_t(n), 1.0f), dbGpu = dbCpu;
  cpu().biasBackward(m, n, dy.data(), ld, dbCpu.data());
  args.dbias = dbGpu.data();
  kernels::launchBiasBackward(emulated, args);
  same(checks, "biasBackward", dbGpu, dbCpu);
}

void adamwSuite(Checks& checks) {
  // Three parameters, the middle one without weight decay (a norm weight); a gap between ranges
  // stays untouched.
  const std::vector<napo::cpu::AdamWRange> ranges = {{0, 1000, true}, {1000, 37, false}, {1040, 300, true}};
  const size_t size = 1340;
  const std::vector<float> start = randomNormal(size, 70), grads = randomNormal(size, 71, 0.1f);
  std::vector<float> pCpu = start, pGpu = start, mCpu(size, 0.0f), mGpu(size, 0.0f), vCpu(size, 0.0f), vGpu(size, 0.0f);
  std::vector<kernels::AdamWSpan> spans;
  for (const auto& range : ranges) spans.push_back({range.offset, range.size, range.decay});
  for (int64_t step = 1; step <= 3; ++step) {
    cpu().adamwStep(pCpu.data(), const_cast<float*>(grads.data()), mCpu.data(), vCpu.data(), ranges.data(), int64_t(ranges.size()), step,
                    1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f);
    kernels::AdamWArgs args{pGpu.data(), grads.data(), mGpu.data(), vGpu.data(), spans.data(), int64_t(spans.size()), 1e-3f, 0.9f,
                            0.999f, 1e-8f, 0.1f, 0.5f, 0.0f, 0.0f};
    kernels::adamwCorrections(args, step);
    kernels::launchAdamWStep(emulated, args, 1000);
  }
  same(checks, "adamw parameters after 3 steps", pGpu, pCpu, 1e-6, 1e-5);
  same(checks, "adamw first moments", mGpu, mCpu, 1e-7, 1e-5);
  same(checks, "adamw second moments", vGpu, vCpu, 1e-9, 1e-5);

  for (int64_t n : {int64_t(0), int64_t(5), int64_t(16384), int64_t(50001)}) {
    const std::vector<float> x = randomNormal(size_t(n), 72);
    std::vector<double> partials(size_t(std::max<int64_t>(1, kernels::sumSquaresBlocks(n))), -1.0);
    kernels::launchSumSquares(emulated, kernels::SumSquaresArgs{n, x.data(), partials.data()});
    const double want = cpu().sumSquares(n, x.data());
    checks.expect(std::fabs(partials[0] - want) <= 1e-12 * std::max(1.0, want),
                  format("sumSquares n %lld: %.17g, want %.17g", (long long)n, partials[0], want));
  }
}

struct AttentionCase {
  int64_t batch, queries, heads, kvHeads, headDim;
  std::vector<int32_t> start, count;  // a training call has start 0
  int64_t cachePositions;             // 0: the keys are the call's own rows; else a KV cache of this length
};

void attentionCase(Checks& checks, const AttentionCase& c) {
  const std::string what = format("attention B %lld T %lld heads %lld/%lld hd %lld%s", (long long)c.batch, (long long)c.queries,
                                  (long long)c.heads, (long long)c.kvHeads, (long long)c.headDim, c.cachePositions ? " on a cache" : "");
  const int64_t qWidth = c.heads * c.headDim, kvWidth = c.kvHeads * c.headDim;
  // Training rows as the model lays them out: [q | k | v] per row.
  const int64_t stride = qWidth + 2 * kvWidth, rows = c.batch * c.queries;
  const std::vector<float> qkv = randomNormal(size_t(rows * stride), 80 + c.headDim, 1.5f);
  const std::vector<float> dout = randomNormal(size_t(rows * qWidth), 81);
  const float* q = qkv.data();
  const float* k = qkv.data() + qWidth;
  const float* v = k + kvWidth;
  napo::cpu::KvLayout kv{c.queries * stride, stride};
  std::vector<float> cacheK, cacheV;
  if (c.cachePositions) {
    // The cache: earlier positions random, this call's rows written at start[b] by kvCacheWrite.
    kv = {c.cachePositions * kvWidth, kvWidth};
    cacheK = randomNormal(size_t(c.batch * c.cachePositions * kvWidth), 82);
    cacheV = randomNormal(cacheK.size(), 83);
    std::vector<float> gpuK = cacheK, gpuV = cacheV;
    const napo::cpu::AttentionShape shape{c.batch, c.queries, c.heads, c.kvHeads, c.headDim};
    cpu().kvCacheWrite(shape, c.start.data(), c.count.data(), k, v, stride, cacheK.data(), cacheV.data(), kv);
    kernels::launchKvCacheWrite(emulated, kernels::KvCacheWriteArgs{c.batch, c.queries, c.kvHeads, c.headDim, c.start.data(),
                                                                   c.count.data(), k, v, stride, gpuK.data(), gpuV.data(),
                                                                   kv.batchStride, kv.positionStride});
    same(checks, what + " kvCacheWrite k", gpuK, cacheK, 0, 0);
    same(checks, what + " kvCacheWrite v", gpuV, cacheV, 0, 0);
    k = cacheK.data();
    v = cacheV.data();
  }
  const napo::cpu::AttentionShape shape{c.batch, c.queries, c.heads, c.kvHeads, c.headDim};
  std::vector<float> outCpu(size_t(rows * qWidth)), outGpu(outCpu.size(), 7.0f);
  std::vector<float> lseCpu(size_t(c.batch * c.heads * c.queries)), lseGpu(lseCpu.size(), 7.0f);
  cpu().attentionForward(shape, c.start.data(), c.count.data(), q, stride, k, v, kv, outCpu.data(), qWidth, lseCpu.data());
  kernels::AttentionArgs args{c.batch, c.queries, c.heads, c.kvHeads, c.headDim, c.start.data(), c.count.data(), q, stride, k, v,
                              kv.batchStride, kv.positionStride, outGpu.data(), qWidth, lseGpu.data(),
                              dout.data(), nullptr, nullptr, nullptr};
  kernels::launchAttentionForward(emulated, args);
  same(checks, what + " out", outGpu, outCpu, 1e-5, 1e-4);
  same(checks, what + " lse", lseGpu, lseCpu, 1e-5, 1e-5);
  if (c.cachePositions) return;  // the backward is the training call's

  // dq in q's layout and dk, dv in the keys' (the model's dqkv rows); NaN where nothing may write.
  std::vector<float> dCpu(size_t(rows * stride), 0.0f), dGpu(dCpu.size(), std::nanf(""));
  cpu().attentionBackward(shape, c.count.data(), q, stride, k, v, kv, outCpu.data(), qWidth, dout.data(), lseCpu.data(), dCpu.data(),
                          dCpu.data() + qWidth, dCpu.data() + qWidth + kvWidth);
  args.dq = dGpu.data();
  args.dk = dGpu.data() + qWidth;
  args.dv = dGpu.data() + qWidth + kvWidth;
  kernels::launchAttentionBackward(emulated, args);
  same(checks, what + " dq, dk, dv", dGpu, dCpu, 1e-5, 1e-4);
}

void attentionSuite(Checks& checks) {
  // Training: ragged rows (a full one, a short one, an empty one), multi-head, GQA (2 and 3
  // query heads per kv head), odd head dims, one past a key tile, the largest head dim.
  attentionCase(checks, {2, 9, 2, 2, 8, {0, 0}, {9, 4}, 0});
  attentionCase(checks, {3, 13, 4, 2, 20, {0, 0, 0}, {13, 1, 0}, 0});
  attentionCase(checks, {1, 40, 6, 2, 64, {0}, {33}, 0});
  attentionCase(checks, {2, 11, 3, 1, 128, {0, 0}, {11, 7}, 0});
  attentionCase(checks, {1, 35, 2, 1, 40, {0}, {35}, 0});
  // Decoding on a cache: one new position per row at different offsets, an inactive row (start
  // -1), and a prefill continuing at an offset.
  attentionCase(checks, {3, 1, 4, 2, 16, {5, -1, 37}, {1, 1, 1}, 48});
  attentionCase(checks, {2, 6, 2, 1, 128, {0, 30}, {6, 3}, 40});
}

}  // namespace

void layerKernelSuites(Checks& checks) {
  rmsNormSuite(checks);
  layerNormSuite(checks);
  ropeSuite(checks);
  activationSuite(checks);
  embeddingSuite(checks);
  biasSuite(checks);
  adamwSuite(checks);
  attentionSuite(checks);
}
