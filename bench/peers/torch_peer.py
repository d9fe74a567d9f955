#!/usr/bin/env python3
"""napo against PyTorch on one GPU, on the same device buffers.

libnapo.so is loaded with ctypes and called on torch CUDA tensors' memory, on torch's current
stream, so both sides read the same bytes. Peers:
  tokenLogprobs   PyTorch eager log_softmax + gather; TRL's selective_log_softmax (+ its chunked
                  entropy_from_logits); torch.compile of log_softmax + gather (+ entropy)
  sample          torch's sort-based top-k / top-p sampling (the HF / vLLM reference path)
  groupAdvantages TRL's grouped mean / std
  linearLogprobs  hidden @ weight.T -> log_softmax -> gather in PyTorch eager (and its autograd
                  backward), forward and forward + backward, time and peak memory
The device copy bandwidth is measured in the same run. Writes two JSON documents: its own summary
(--out) and the same measurements in the bench result schema (bench/README.md, bench/src/results.ts:
schemaVersion 1, kind "kernels", source "pytorch"), one entry per (op, variant, implementation),
napo's CUDA kernels as implementation "napo-cuda" (--schema-out, default torch_peer.kernels.json
next to --out), so bench/src/page.ts renders it beside napo's own runs.

  python3 torch_peer.py --lib build/libnapo.so --out peers.json [--schema-out kernels.json] [--quick]

Needs PyTorch with CUDA to measure; the schema writer below needs only the standard library.
"""
import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import traceback

try:
    import torch
except ImportError:  # --help and the schema writer work without it; measuring does not
    torch = None

NAPO_CUDA = 1
NAPO_FLOAT32, NAPO_BFLOAT16, NAPO_INT32 = 0, 1, 2


class Device(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("index", ctypes.c_int32)]


class Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int),
        ("ndim", ctypes.c_int32),
        ("shape", ctypes.c_int64 * 8),
        ("device", Device),
    ]


class RowF32(ctypes.Structure):
    _fields_ = [("values", ctypes.POINTER(ctypes.c_float)), ("count", ctypes.c_int64)]


class RowI32(ctypes.Structure):
    _fields_ = [("values", ctypes.POINTER(ctypes.c_int32)), ("count", ctypes.c_int64)]


class SampleOptions(ctypes.Structure):
    _fields_ = [
        ("temperature", RowF32),
        ("top_k", RowI32),
        ("top_p", RowF32),
        ("min_p", RowF32),
        ("seed", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
    ]


class AdvantageOptions(ctypes.Structure):
    _fields_ = [
        ("group_offsets", ctypes.POINTER(ctypes.c_int32)),
        ("group_count", ctypes.c_int64),
        ("scale", ctypes.c_int),
        ("estimator", ctypes.c_int),
        ("eps", ctypes.c_float),
    ]


class LinearOptions(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("chunk_size", ctypes.c_int64)]


class Napo:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.lib.napo_last_error.restype = ctypes.c_char_p
        self.stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.lib.napo_last_error().decode()}")

    @staticmethod
    def tensor(t):
        dtype = {torch.float32: NAPO_FLOAT32, torch.bfloat16: NAPO_BFLOAT16, torch.int32: NAPO_INT32}[t.dtype]
        assert t.is_contiguous() and t.is_cuda
        shape = (ctypes.c_int64 * 8)(*t.shape)
        return Tensor(t.data_ptr(), dtype, t.dim(), shape, Device(NAPO_CUDA, t.device.index or 0))

    def token_logprobs(self, logits, tokens, logprobs, lse, entropy=None):
        args = [self.tensor(logits), self.tensor(tokens)]
        out = [self.tensor(logprobs), self.tensor(entropy) if entropy is not None else None, self.tensor(lse)]
        self.check(
            self.lib.napo_token_logprobs(
                ctypes.byref(args[0]), ctypes.byref(args[1]), ctypes.c_float(1.0), ctypes.byref(out[0]),
                ctypes.byref(out[1]) if out[1] is not None else None, ctypes.byref(out[2]), self.stream),
            "napo_token_logprobs")

    def sample(self, logits, tokens, logprobs, top_k, top_p, seed):
        temperature, k, p, min_p = ctypes.c_float(1.0), ctypes.c_int32(top_k), ctypes.c_float(top_p), ctypes.c_float(0.0)
        options = SampleOptions(RowF32(ctypes.pointer(temperature), 1), RowI32(ctypes.pointer(k), 1),
                                RowF32(ctypes.pointer(p), 1), RowF32(ctypes.pointer(min_p), 1), seed, 0)
        l, t, lp = self.tensor(logits), self.tensor(tokens), self.tensor(logprobs)
        self.check(self.lib.napo_sample(ctypes.byref(l), ctypes.byref(options), ctypes.byref(t), ctypes.byref(lp),
                                        self.stream), "napo_sample")

    def group_advantages(self, rewards, advantages, group_size):
        offsets = (ctypes.c_int32 * (rewards.numel() // group_size + 1))(*range(0, rewards.numel() + 1, group_size))
        options = AdvantageOptions(ctypes.cast(offsets, ctypes.POINTER(ctypes.c_int32)), len(offsets) - 1, 0, 0, 1e-4)
        r, a = self.tensor(rewards), self.tensor(advantages)
        self.check(self.lib.napo_group_advantages(ctypes.byref(r), ctypes.byref(options), ctypes.byref(a),
                                                  self.stream), "napo_group_advantages")


    def linear_logprobs(self, hidden, weight, tokens, logprobs, lse):
        options = LinearOptions(1.0, 0)
        h, w, t, lp, l = (self.tensor(x) for x in (hidden, weight, tokens, logprobs, lse))
        self.check(self.lib.napo_linear_logprobs(ctypes.byref(h), ctypes.byref(w), ctypes.byref(t), ctypes.byref(options),
                                                 ctypes.byref(lp), None, ctypes.byref(l), self.stream),
                   "napo_linear_logprobs")

    def linear_logprobs_backward(self, hidden, weight, tokens, lse, grad_logprobs, grad_hidden, grad_weight):
        options = LinearOptions(1.0, 0)
        h, w, t, l, g, gh, gw = (self.tensor(x) for x in (hidden, weight, tokens, lse, grad_logprobs, grad_hidden,
                                                          grad_weight))
        self.check(self.lib.napo_linear_logprobs_backward(
            ctypes.byref(h), ctypes.byref(w), ctypes.byref(t), ctypes.byref(l), None, ctypes.byref(g), None,
            ctypes.byref(options), 1, ctypes.byref(gh), ctypes.byref(gw), self.stream), "napo_linear_logprobs_backward")


def time_samples(fn, warmup=2, iterations=10):
    """Milliseconds of each timed fn() call between CUDA events on the current stream, after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(iterations):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop))
    return samples


def time_ms(fn, warmup=2, iterations=10):
    """Median milliseconds of fn() between CUDA events on the current stream."""
    return statistics.median(time_samples(fn, warmup, iterations))


# ---- the peers, as their projects write them -------------------------------------------------------

def eager_logprobs(logits, tokens):
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)


def trl_selective_log_softmax(logits, index):
    """TRL's trainer/utils.py selective_log_softmax."""
    if logits.dtype in [torch.float32, torch.float64]:
        selected = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
        logsumexp = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
        return selected - logsumexp
    out = []
    for row_logits, row_labels in zip(logits, index):
        row_logps = torch.nn.functional.log_softmax(row_logits, dim=-1)
        out.append(row_logps.gather(dim=-1, index=row_labels.unsqueeze(-1)).squeeze(-1))
    return torch.stack(out)


def trl_entropy_from_logits(logits, chunk_size=128):
    """TRL's entropy_from_logits: chunked softmax, logsumexp - sum p * logits."""
    per_token = []
    for chunk in logits.split(chunk_size, dim=0):
        logps = torch.nn.functional.log_softmax(chunk, dim=-1)
        per_token.append(-(torch.exp(logps) * logps).sum(-1))
    return torch.cat(per_token)


def logprobs_and_entropy(logits, tokens):
    logps = torch.log_softmax(logits.float(), dim=-1)
    selected = logps.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
    entropy = -(logps.exp() * logps).sum(-1)
    return selected, entropy


def torch_sort_sample(logits, top_k, top_p, generator):
    """Top-k then top-p by sorting, softmax, multinomial (the HF / vLLM reference path)."""
    logits = logits.float()
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1, None]
    logits = logits.masked_fill(logits < kth, float("-inf"))
    sorted_logits, sorted_index = torch.sort(logits, descending=False, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= 1 - top_p
    remove[..., -1:] = False
    logits = logits.scatter(-1, sorted_index, sorted_logits.masked_fill(remove, float("-inf")))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def trl_group_advantages(rewards, group_size):
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(dim=1).repeat_interleave(group_size, dim=0)
    std = grouped.std(dim=1).repeat_interleave(group_size, dim=0)
    return (rewards - mean) / (std + 1e-4)


def copy_bandwidth(bytes_=1 << 30):
    src = torch.empty(bytes_, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), warmup=3, iterations=20)
    return 2 * bytes_ / (ms * 1e6)


# ---- the bench result schema (bench/README.md, bench/src/results.ts) -------------------------------

SCHEMA_VERSION = 1
NAPO_IMPLEMENTATION = "napo"
SCHEMA_FILE_NAME = "torch_peer.kernels.json"
BANDWIDTH_METHOD = "device-to-device copy of 1 GiB (torch copy_), 2 x bytes / median time"

# Bytes moved per op: ported from bench/src/suites/bytes.ts, which defines them; keep the two equal.
FLOAT32_BYTES = 4
INT32_BYTES = 4


def element_bytes(dtype):
    return 4 if dtype == "float32" else 2


def sample_bytes(rows, vocab, dtype):
    """sample: logits [N, V] read; tokens (int32) and logprobs (float32) [N] written."""
    return rows * vocab * element_bytes(dtype) + rows * (INT32_BYTES + FLOAT32_BYTES)


def token_logprobs_bytes(rows, vocab, dtype, entropy):
    """tokenLogprobs: logits [N, V] and tokens [N] read; logprobs, lse (and entropy) [N] written."""
    return rows * vocab * element_bytes(dtype) + rows * (INT32_BYTES + (3 if entropy else 2) * FLOAT32_BYTES)


def token_logprobs_backward_bytes(rows, vocab, dtype, entropy):
    """tokenLogprobsBackward (out of place): logits read, gradLogits written [N, V]; tokens, lse,
    gradLogprobs (and entropy, gradEntropy) [N] read."""
    return 2 * rows * vocab * element_bytes(dtype) + rows * (INT32_BYTES + (4 if entropy else 2) * FLOAT32_BYTES)


def group_advantages_bytes(samples):
    """groupAdvantages: rewards [S] read, advantages [S] written (the offsets are negligible)."""
    return 2 * samples * FLOAT32_BYTES


def policy_loss_bytes(sequences, length):
    """policyLoss with a reference: logprobs, oldLogprobs, refLogprobs, mask [S, T] and advantages [S]
    read, gradLogprobs [S, T] written."""
    return 5 * sequences * length * FLOAT32_BYTES + sequences * FLOAT32_BYTES


LINEAR_WIDTH = 896


def linear_logprobs_bytes(rows, vocab, dtype):
    """linearLogprobs: hidden [N, H] and weight [V, H] read once (a GEMM-bound op: its figure is GFLOP/s)."""
    return (rows + vocab) * LINEAR_WIDTH * element_bytes(dtype)


def op_bytes(op, variant, dtype, rows, vocab=None):
    """bytesMoved of one call of `op` as bench/src/suites/bytes.ts counts it (policyLoss: see above)."""
    if op == "sample":
        return sample_bytes(rows, vocab, dtype)
    if op == "tokenLogprobs":
        return token_logprobs_bytes(rows, vocab, dtype, variant == "entropy")
    if op == "tokenLogprobsBackward":
        return token_logprobs_backward_bytes(rows, vocab, dtype, variant == "entropy")
    if op == "groupAdvantages":
        return group_advantages_bytes(rows)
    if op == "linearLogprobs":
        return linear_logprobs_bytes(rows, vocab, dtype)
    raise ValueError(f"no bytes formula for op {op!r}")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def nvidia_smi_driver(index):
    try:
        lines = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
        return lines[index].strip() if len(lines) > index else None
    except (OSError, subprocess.SubprocessError):
        return None


def napo_commit():
    """`git rev-parse --short HEAD` of the checkout this script is in; $NAPO_COMMIT, else 'unknown'."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=os.path.dirname(os.path.abspath(__file__)),
                                capture_output=True, text=True, timeout=20).stdout.strip()
        if commit:
            return commit
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("NAPO_COMMIT", "unknown")


def describe_host():
    host = {"cpuModel": cpu_model(), "cores": os.cpu_count() or 1}
    memory = host_memory_bytes()
    if memory:
        host["memoryBytes"] = memory
    return host


def describe_cuda_device(index):
    """BenchDevice for torch's cuda:index (needs torch)."""
    properties = torch.cuda.get_device_properties(index)
    driver = nvidia_smi_driver(index) or f"cuda {torch.version.cuda}"
    return {
        "name": f"cuda:{index}",
        "kind": "cuda",
        **describe_host(),
        "gpu": {
            "name": torch.cuda.get_device_name(index),
            "driver": driver,
            "memoryBytes": properties.total_memory,
            "computeCapability": f"{properties.major}.{properties.minor}",
        },
    }


def iso_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Which peer stands for "the unfused composition" of an op (bench/README.md's baselines), if any;
# every other peer measured on the same case is a comparison of kind "peer".
UNFUSED_PEERS = {("tokenLogprobs", ""): "pytorch-eager", ("sample", "top-k 50 + top-p 0.9"): "torch-sort-sampling"}


def kernel_entry(measurement, bandwidth_bytes_per_second=None):
    """One KernelEntry from a measurement: op, variant, implementation, dtype, rows, vocab (or None),
    shape, samples (milliseconds of each timed call)."""
    samples = measurement["samples"]
    median = statistics.median(samples)
    rows, vocab = measurement["rows"], measurement.get("vocab")
    bytes_moved = op_bytes(measurement["op"], measurement["variant"], measurement["dtype"], rows, vocab)
    entry = {
        "op": measurement["op"],
        "variant": measurement["variant"],
        "implementation": measurement["implementation"],
        "dtype": measurement["dtype"],
        "rows": rows,
    }
    if vocab is not None:
        entry["vocab"] = vocab
    entry["shape"] = list(measurement["shape"])
    entry["timing"] = {"medianMs": median, "minMs": min(samples), "maxMs": max(samples), "repetitions": len(samples)}
    entry["bytesMoved"] = bytes_moved
    entry["bytesPerSecond"] = bytes_moved / (median * 1e-3)
    if bandwidth_bytes_per_second:
        entry["fractionOfBandwidth"] = entry["bytesPerSecond"] / bandwidth_bytes_per_second
    entry["comparisons"] = []
    return entry


def kernels_result(measurements, device, mode, runtime, commit, bandwidth_bytes_per_second=None, created_at=None):
    """The KernelsResult document (source 'pytorch') for these measurements. napo-cuda entries get
    every peer measured on the same (op, variant, dtype, shape) as comparisons: speedup = peer / napo."""
    entries = [kernel_entry(m, bandwidth_bytes_per_second) for m in measurements]
    case = lambda e: (e["op"], e["variant"], e["dtype"], tuple(e["shape"]))
    for entry in entries:
        if entry["implementation"] != NAPO_IMPLEMENTATION:
            continue
        for peer in entries:
            if peer["implementation"] == NAPO_IMPLEMENTATION or case(peer) != case(entry):
                continue
            unfused = UNFUSED_PEERS.get((entry["op"], entry["variant"])) == peer["implementation"]
            entry["comparisons"].append({
                "name": peer["implementation"],
                "kind": "unfused" if unfused else "peer",
                "medianMs": peer["timing"]["medianMs"],
                "speedup": peer["timing"]["medianMs"] / entry["timing"]["medianMs"],
            })
    result = {
        "schemaVersion": SCHEMA_VERSION,
        "kind": "kernels",
        "source": "pytorch",
        "createdAt": created_at or iso_now(),
        "mode": mode,
        "device": device,
        "napoCommit": commit,
        "runtime": runtime,
    }
    if bandwidth_bytes_per_second:
        result["bandwidth"] = {"bytesPerSecond": bandwidth_bytes_per_second, "method": BANDWIDTH_METHOD}
    result["entries"] = entries
    return result


def _slug(text):
    text = re.sub(r"\(r\)|\(tm\)", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40]


def result_file_name(result):
    """bench/src/results.ts's resultFileName: the name to give the file in bench/results/."""
    date = re.sub(r"\.\d+Z$", "Z", result["createdAt"].replace(":", ""))
    device = result["device"]
    where = device["gpu"]["name"] if device.get("gpu") else device["cpuModel"]
    tag = "" if result["source"] == "napo" else f"-{_slug(result['source'])}"
    return f"{date}-{result['kind']}{tag}-{_slug(device['name'])}-{_slug(where)}.json"


def write_kernels_result(path, result):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as file:
        json.dump(result, file, indent=2)
        file.write("\n")
    return path


def main():
    parser = argparse.ArgumentParser(description="napo's CUDA kernels against PyTorch peers on one GPU.")
    parser.add_argument("--lib", required=True, help="path to libnapo.so")
    parser.add_argument("--out", required=True, help="this script's own summary JSON")
    parser.add_argument("--schema-out", help="the same measurements in the bench result schema (kind 'kernels', "
                        f"source 'pytorch'); default: {SCHEMA_FILE_NAME} next to --out")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if torch is None or not torch.cuda.is_available():
        sys.exit("torch_peer.py: needs PyTorch with a CUDA device to measure")
    schema_out = args.schema_out or os.path.join(os.path.dirname(os.path.abspath(args.out)), SCHEMA_FILE_NAME)

    torch.manual_seed(0)
    # A stream of our own: torch's default is the legacy NULL stream, which napo would read as
    # "use napo's stream" and then not be ordered after torch's work.
    stream = torch.cuda.Stream()
    torch.cuda.set_stream(stream)
    napo = Napo(args.lib)
    rows, vocab = (1024 if args.quick else 8192), 151936
    results = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "shape": [rows, vocab],
        "dtype": "bfloat16",
        "copyBandwidthGBps": copy_bandwidth(),
        "ops": {},
        "errors": {},
    }
    ops = results["ops"]
    measurements = []  # for the schema file: one per timed (op, variant, implementation)

    def record(name, fn, bytes_moved=None, schema=None, **timing):
        """Times fn; `schema` (op, variant, implementation, dtype, rows, vocab, shape) also puts it in
        the schema file."""
        try:
            samples = time_samples(fn, **timing)
            ms = statistics.median(samples)
            ops[name] = {"ms": ms}
            if schema is not None:
                measurements.append({**schema, "samples": samples})
            if bytes_moved:
                ops[name]["GBps"] = bytes_moved / (ms * 1e6)
                ops[name]["fractionOfCopyBandwidth"] = ops[name]["GBps"] / results["copyBandwidthGBps"]
            print(f"{name:44s} {ms:10.3f} ms", file=sys.stderr)
        except Exception as error:  # a peer that cannot run here is recorded, not fatal
            results["errors"][name] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        torch.cuda.empty_cache()

    logits = (torch.randn(rows, vocab, device="cuda") * 1.5).to(torch.bfloat16)
    tokens = torch.randint(0, vocab, (rows,), device="cuda", dtype=torch.int32)
    logprobs = torch.empty(rows, device="cuda")
    lse = torch.empty(rows, device="cuda")
    entropy = torch.empty(rows, device="cuda")
    logit_bytes = logits.numel() * logits.element_size()

    def logit_case(op, variant, implementation):
        return {"op": op, "variant": variant, "implementation": implementation, "dtype": "bfloat16", "rows": rows,
                "vocab": vocab, "shape": [rows, vocab]}

    # Agreement on the same bytes, before timing anything.
    napo.token_logprobs(logits, tokens, logprobs, lse, entropy)
    want_lp, want_entropy = logprobs_and_entropy(logits[:256], tokens[:256])
    results["agreement"] = {
        "logprobsMaxAbsDiff": (logprobs[:256] - want_lp).abs().max().item(),
        "entropyMaxAbsDiff": (entropy[:256] - want_entropy).abs().max().item(),
    }
    del want_lp, want_entropy

    record("napo tokenLogprobs", lambda: napo.token_logprobs(logits, tokens, logprobs, lse), logit_bytes,
           schema=logit_case("tokenLogprobs", "", NAPO_IMPLEMENTATION))
    record("napo tokenLogprobs+entropy", lambda: napo.token_logprobs(logits, tokens, logprobs, lse, entropy),
           logit_bytes, schema=logit_case("tokenLogprobs", "entropy", NAPO_IMPLEMENTATION))
    record("torch eager log_softmax+gather", lambda: eager_logprobs(logits, tokens), logit_bytes,
           schema=logit_case("tokenLogprobs", "", "pytorch-eager"))
    record("TRL selective_log_softmax+entropy",
           lambda: (trl_selective_log_softmax(logits, tokens.long()), trl_entropy_from_logits(logits)),
           logit_bytes, schema=logit_case("tokenLogprobs", "entropy", "trl-selective_log_softmax"),
           warmup=1, iterations=3)
    try:
        compiled = torch.compile(lambda l, t: eager_logprobs(l, t))
        compiled_entropy = torch.compile(logprobs_and_entropy)
        record("torch.compile log_softmax+gather", lambda: compiled(logits, tokens), logit_bytes,
               schema=logit_case("tokenLogprobs", "", "torch.compile"), warmup=3)
        record("torch.compile log_softmax+gather+entropy", lambda: compiled_entropy(logits, tokens), logit_bytes,
               schema=logit_case("tokenLogprobs", "entropy", "torch.compile"), warmup=3)
    except Exception as error:
        results["errors"]["torch.compile"] = f"{type(error).__name__}: {error}"

    sampled = torch.empty(rows, device="cuda", dtype=torch.int32)
    generator = torch.Generator(device="cuda").manual_seed(0)
    # The variant as napo's kernel suite names it (bench/src/suites/kernels.ts sampleModes).
    record("napo sample top-k 50 top-p 0.9", lambda: napo.sample(logits, sampled, logprobs, 50, 0.9, 7), logit_bytes,
           schema=logit_case("sample", "top-k 50 + top-p 0.9", NAPO_IMPLEMENTATION))
    record("torch sort sample top-k 50 top-p 0.9", lambda: torch_sort_sample(logits, 50, 0.9, generator),
           logit_bytes, schema=logit_case("sample", "top-k 50 + top-p 0.9", "torch-sort-sampling"),
           warmup=1, iterations=5)

    group = 16
    rewards = torch.randn(1024 * group, device="cuda")
    advantages = torch.empty_like(rewards)
    # scale group (0), estimator grpo (0): napo's variant "group/grpo", TRL's default.
    reward_count = rewards.numel()

    def advantage_case(implementation):
        return {"op": "groupAdvantages", "variant": "group/grpo", "implementation": implementation,
                "dtype": "float32", "rows": reward_count, "vocab": None, "shape": [reward_count]}

    record("napo groupAdvantages", lambda: napo.group_advantages(rewards, advantages, group),
           schema=advantage_case(NAPO_IMPLEMENTATION), iterations=50)
    record("TRL group advantages", lambda: trl_group_advantages(rewards, group),
           schema=advantage_case("trl-advantages"), iterations=50)
    napo.group_advantages(rewards, advantages, group)
    results["agreement"]["advantagesMaxAbsDiff"] = (advantages - trl_group_advantages(rewards, group)).abs().max().item()

    # linearLogprobs: napo's chunked kernels against PyTorch eager on [N, V] logits (Qwen2.5-0.5B's
    # head: H = 896, V = 151,936), forward and forward + backward, with each one's peak memory.
    linear_rows = 512 if args.quick else 2048
    hidden = (torch.randn(linear_rows, LINEAR_WIDTH, device="cuda")).to(torch.bfloat16)
    weight = (torch.randn(vocab, LINEAR_WIDTH, device="cuda") * LINEAR_WIDTH ** -0.5 * 3).to(torch.bfloat16)
    linear_tokens = torch.randint(0, vocab, (linear_rows,), device="cuda", dtype=torch.int32)
    linear_lp = torch.empty(linear_rows, device="cuda")
    linear_lse = torch.empty(linear_rows, device="cuda")
    grad_lp = torch.full((linear_rows,), -1.0 / linear_rows, device="cuda")
    grad_hidden = torch.zeros(linear_rows, LINEAR_WIDTH, device="cuda")
    grad_weight = torch.zeros(vocab, LINEAR_WIDTH, device="cuda")

    def linear_case(variant, implementation):
        return {"op": "linearLogprobs", "variant": variant, "implementation": implementation, "dtype": "bfloat16",
                "rows": linear_rows, "vocab": vocab, "shape": [linear_rows, LINEAR_WIDTH, vocab]}

    def napo_linear_both():
        napo.linear_logprobs(hidden, weight, linear_tokens, linear_lp, linear_lse)
        napo.linear_logprobs_backward(hidden, weight, linear_tokens, linear_lse, grad_lp, grad_hidden, grad_weight)

    def eager_linear():
        return torch.log_softmax((hidden @ weight.T).float(), dim=-1).gather(1, linear_tokens.long()[:, None])[:, 0]

    def eager_linear_both():
        h = hidden.detach().requires_grad_()
        w = weight.detach().requires_grad_()
        lp = torch.log_softmax((h @ w.T).float(), dim=-1).gather(1, linear_tokens.long()[:, None])[:, 0]
        lp.backward(grad_lp)

    def peak_of(fn):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before

    napo.linear_logprobs(hidden, weight, linear_tokens, linear_lp, linear_lse)
    results["agreement"]["linearLogprobsMaxAbsDiff"] = (linear_lp - eager_linear()).abs().max().item()
    record("napo linearLogprobs", lambda: napo.linear_logprobs(hidden, weight, linear_tokens, linear_lp, linear_lse),
           schema=linear_case("forward", NAPO_IMPLEMENTATION), iterations=5)
    record("torch eager linear+log_softmax+gather", eager_linear, schema=linear_case("forward", "pytorch-eager"),
           iterations=5)
    record("napo linearLogprobs forward+backward", napo_linear_both,
           schema=linear_case("forward+backward", NAPO_IMPLEMENTATION), iterations=5)
    record("torch eager linear forward+backward", eager_linear_both,
           schema=linear_case("forward+backward", "pytorch-eager"), iterations=5)
    results["linearPeakBytes"] = {
        "napo forward": peak_of(lambda: napo.linear_logprobs(hidden, weight, linear_tokens, linear_lp, linear_lse)),
        "torch eager forward": peak_of(eager_linear),
        "napo forward+backward": peak_of(napo_linear_both),
        "torch eager forward+backward": peak_of(eager_linear_both),
    }

    def ratio(peer, ours):
        if peer in ops and ours in ops:
            return ops[peer]["ms"] / ops[ours]["ms"]
        return None

    results["speedups"] = {
        "tokenLogprobs vs eager": ratio("torch eager log_softmax+gather", "napo tokenLogprobs"),
        "tokenLogprobs vs torch.compile": ratio("torch.compile log_softmax+gather", "napo tokenLogprobs"),
        "tokenLogprobs+entropy vs TRL": ratio("TRL selective_log_softmax+entropy", "napo tokenLogprobs+entropy"),
        "tokenLogprobs+entropy vs torch.compile": ratio("torch.compile log_softmax+gather+entropy",
                                                        "napo tokenLogprobs+entropy"),
        "sample vs torch sort": ratio("torch sort sample top-k 50 top-p 0.9", "napo sample top-k 50 top-p 0.9"),
        "groupAdvantages vs TRL": ratio("TRL group advantages", "napo groupAdvantages"),
        "linearLogprobs vs eager": ratio("torch eager linear+log_softmax+gather", "napo linearLogprobs"),
        "linearLogprobs forward+backward vs eager": ratio("torch eager linear forward+backward",
                                                          "napo linearLogprobs forward+backward"),
    }
    with open(args.out, "w") as file:
        json.dump(results, file, indent=2)
    print(json.dumps(results["speedups"], indent=2), file=sys.stderr)

    index = torch.cuda.current_device()
    python = ".".join(str(part) for part in sys.version_info[:3])
    document = kernels_result(
        measurements, describe_cuda_device(index), "quick" if args.quick else "full",
        f"python {python} torch {torch.__version__} cuda {torch.version.cuda}", napo_commit(),
        results["copyBandwidthGBps"] * 1e9)
    write_kernels_result(schema_out, document)
    print(f"{len(document['entries'])} entries in the bench schema: {schema_out} "
          f"(in bench/results/ as {result_file_name(document)})", file=sys.stderr)


if __name__ == "__main__":
    main()
