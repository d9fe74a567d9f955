#!/usr/bin/env python3
"""napo against PyTorch on one GPU, on the same device buffers.

libnapo.so is loaded with ctypes and called on torch CUDA tensors' memory, on torch's current
stream, so both sides read the same bytes. Peers:
  tokenLogprobs   PyTorch eager log_softmax + gather; TRL's selective_log_softmax (+ its chunked
                  entropy_from_logits); torch.compile of log_softmax + gather (+ entropy)
  sample          torch's sort-based top-k / top-p sampling (the HF / vLLM reference path)
  groupAdvantages TRL's grouped mean / std
The device copy bandwidth is measured in the same run. Writes one JSON document.

  python3 torch_peer.py --lib build/libnapo.so --out peers.json [--quick]
"""
import argparse
import ctypes
import json
import statistics
import sys
import traceback

import torch

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


def time_ms(fn, warmup=2, iterations=10):
    """Median milliseconds of fn() between CUDA events on the current stream."""
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
    return statistics.median(samples)


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

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

    def record(name, fn, bytes_moved=None, **timing):
        try:
            ms = time_ms(fn, **timing)
            ops[name] = {"ms": ms}
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

    # Agreement on the same bytes, before timing anything.
    napo.token_logprobs(logits, tokens, logprobs, lse, entropy)
    want_lp, want_entropy = logprobs_and_entropy(logits[:256], tokens[:256])
    results["agreement"] = {
        "logprobsMaxAbsDiff": (logprobs[:256] - want_lp).abs().max().item(),
        "entropyMaxAbsDiff": (entropy[:256] - want_entropy).abs().max().item(),
    }
    del want_lp, want_entropy

    record("napo tokenLogprobs", lambda: napo.token_logprobs(logits, tokens, logprobs, lse), logit_bytes)
    record("napo tokenLogprobs+entropy", lambda: napo.token_logprobs(logits, tokens, logprobs, lse, entropy),
           logit_bytes)
    record("torch eager log_softmax+gather", lambda: eager_logprobs(logits, tokens), logit_bytes)
    record("TRL selective_log_softmax+entropy",
           lambda: (trl_selective_log_softmax(logits, tokens.long()), trl_entropy_from_logits(logits)),
           logit_bytes, warmup=1, iterations=3)
    try:
        compiled = torch.compile(lambda l, t: eager_logprobs(l, t))
        compiled_entropy = torch.compile(logprobs_and_entropy)
        record("torch.compile log_softmax+gather", lambda: compiled(logits, tokens), logit_bytes, warmup=3)
        record("torch.compile log_softmax+gather+entropy", lambda: compiled_entropy(logits, tokens), logit_bytes,
               warmup=3)
    except Exception as error:
        results["errors"]["torch.compile"] = f"{type(error).__name__}: {error}"

    sampled = torch.empty(rows, device="cuda", dtype=torch.int32)
    generator = torch.Generator(device="cuda").manual_seed(0)
    record("napo sample top-k 50 top-p 0.9", lambda: napo.sample(logits, sampled, logprobs, 50, 0.9, 7), logit_bytes)
    record("torch sort sample top-k 50 top-p 0.9", lambda: torch_sort_sample(logits, 50, 0.9, generator),
           logit_bytes, warmup=1, iterations=5)

    group = 16
    rewards = torch.randn(1024 * group, device="cuda")
    advantages = torch.empty_like(rewards)
    record("napo groupAdvantages", lambda: napo.group_advantages(rewards, advantages, group), iterations=50)
    record("TRL group advantages", lambda: trl_group_advantages(rewards, group), iterations=50)
    napo.group_advantages(rewards, advantages, group)
    results["agreement"]["advantagesMaxAbsDiff"] = (advantages - trl_group_advantages(rewards, group)).abs().max().item()

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
    }
    with open(args.out, "w") as file:
        json.dump(results, file, indent=2)
    print(json.dumps(results["speedups"], indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
