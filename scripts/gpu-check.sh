#!/usr/bin/env bash
# The GPU kit: everything napo checks on a machine with a GPU, CMake, nvcc and Python + PyTorch
# (no Node needed), in one go, leaving one JSON with the device named.
#
#   scripts/gpu-check.sh            results in $OUT (default: build-gpu/gpu-check)
#
# Steps, most important first (each logged to $OUT/<step>.log; a failing step is recorded and the
# rest still run):
#   build       plain CMake, -DNAPO_BUILD_ADDON=OFF, for this GPU's architecture, with cuBLAS when
#               found (build-without-cublas: the retry with napo's own GEMM if that fails)
#   cuda-tests  CUDA against CPU for every op and shape class, token agreement at trainer sizes,
#               every model layer kernel, whole models of every family
#   bench       the C++ kernel bench (kernel_bench.json), copy bandwidth measured in the same run
#   torch-peer  bench/peers/torch_peer.py through libnapo.so on the same device buffers; also writes
#               torch_peer.kernels.json, the same figures in the bench result schema (source
#               "pytorch"), to drop into bench/results/ under the name the summary gives
#   model-step  GRPO and ExP-GRPO steps of a random Qwen2.5-0.5B-shaped model on cuda:0 (C++,
#               bench/cpp/model_step_bench.cpp): time and peak memory by category per phase
#   memcheck    compute-sanitizer memcheck on the quick CUDA tests
#   racecheck   compute-sanitizer racecheck on the quick CUDA tests
#   harness     the host emulation harness (what CI runs without a GPU)
# The whole run keeps within NAPO_GPU_CHECK_SECONDS (default 570): each step gets its own limit or
# what is left, and a step with no time left is recorded as skipped (status 125).
# The summary, $OUT/gpu-check.json, holds every step's status and time, both benches' results and
# the issue's performance targets checked against them. Exit status: 0 when every step passed.
set -u -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${NAPO_GPU_BUILD:-$root/build-gpu}
out=${OUT:-$build/gpu-check}
mkdir -p "$out"
steps_file="$out/steps.tsv"
: >"$steps_file"

deadline=$((SECONDS + ${NAPO_GPU_CHECK_SECONDS:-570}))

# run STEP LIMIT_SECONDS COMMAND...: runs and records one step, within its limit and the deadline.
run() {
  local step=$1 limit=$2
  shift 2
  local left=$((deadline - SECONDS - 20))
  ((limit > left)) && limit=$left
  if ((limit < 15)); then
    echo "skipped: no time left" >"$out/$step.log"
    printf '%s\t%s\t%s\n' "$step" 125 0 >>"$steps_file"
    return 125
  fi
  local start=$SECONDS
  echo "== $step: $*" >&2
  timeout --kill-after=10 "$limit" "$@" >"$out/$step.log" 2>&1
  local status=$?
  printf '%s\t%s\t%s\n' "$step" "$status" "$((SECONDS - start))" >>"$steps_file"
  tail -n 3 "$out/$step.log" >&2
  return $status
}

arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
arch=${arch:-"80;90"}
jobs=$(nproc 2>/dev/null || echo 8)

tests="$build/native/tests"
configure="cmake -S $(printf %q "$root") -B $(printf %q "$build") -DCMAKE_BUILD_TYPE=Release -DNAPO_BUILD_ADDON=OFF -DNAPO_CUDA_ARCHS='$arch'"
# With cuBLAS when the machine has it; should that build fail (its path has compiled on no
# machine without cuBLAS), once more with napo's own GEMM, and the summary says so.
if run build 300 bash -c "$configure && cmake --build $(printf %q "$build") -j $jobs" ||
  run build-without-cublas 240 bash -c "$configure -DNAPO_CUBLAS=OFF && cmake --build $(printf %q "$build") -j $jobs"; then
  run cuda-tests 150 "$tests/napo_cuda_tests"
  run bench 120 "$tests/napo_kernel_bench" --out "$out/kernel_bench.json"
  run torch-peer 240 python3 "$root/bench/peers/torch_peer.py" --lib "$build/libnapo.so" --out "$out/torch_peer.json" \
    --schema-out "$out/torch_peer.kernels.json"
  run model-step 200 bash -c "$(printf %q "$tests/napo_model_step_bench") --algo grpo --out $(printf %q "$out/model_step_grpo.json") && \
    $(printf %q "$tests/napo_model_step_bench") --algo expo --out $(printf %q "$out/model_step_expo.json")"
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  run memcheck 120 "$sanitizer" --tool memcheck --error-exitcode 1 "$tests/napo_cuda_tests" --quick
  run racecheck 150 "$sanitizer" --tool racecheck --error-exitcode 1 "$tests/napo_cuda_tests" --quick
  run harness 90 "$tests/napo_harness_tests"
fi

python3 - "$out" <<'EOF'
import json, os, subprocess, sys

out = sys.argv[1]

def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        return {"missing": str(error)}

steps = {}
with open(os.path.join(out, "steps.tsv")) as f:
    for line in f:
        step, status, seconds = line.rstrip("\n").split("\t")
        with open(os.path.join(out, step + ".log"), errors="replace") as log:
            tail = log.read()[-2000:]
        steps[step] = {"status": int(status), "passed": status == "0", "seconds": int(seconds), "logTail": tail}

try:
    device = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True).stdout.strip()
except OSError:
    device = "unknown"

bench, peer = load("kernel_bench.json"), load("torch_peer.json")
model_steps = {"grpo": load("model_step_grpo.json"), "expo": load("model_step_expo.json")}
peer_kernels = load("torch_peer.kernels.json")

def results_name(result):
    """bench/src/results.ts's resultFileName, for copying the peer file into bench/results/."""
    import re
    try:
        slug = lambda t: re.sub(r"[^a-z0-9]+", "-", re.sub(r"\(r\)|\(tm\)", "", t.lower())).strip("-")[:40]
        device = result["device"]
        where = device["gpu"]["name"] if device.get("gpu") else device["cpuModel"]
        date = re.sub(r"\.\d+Z$", "Z", result["createdAt"].replace(":", ""))
        return f"{date}-{result['kind']}-{slug(result['source'])}-{slug(device['name'])}-{slug(where)}.json"
    except (KeyError, TypeError, AttributeError):
        return None

def bench_op(name, shape="[8192, 151936]", dtype="bfloat16"):
    for op in bench.get("ops", []):
        if op["op"] == name and op["shape"] == shape and op["dtype"] == dtype:
            return op
    return None

def target(value, minimum):
    return {"value": value, "required": minimum, "met": value is not None and value >= minimum}

forward = bench_op("tokenLogprobs")
speedups = peer.get("speedups", {})
targets = {
    "tokenLogprobs bf16 fraction of copy bandwidth": target(forward and forward["fractionOfCopyBandwidth"], 0.85),
    "tokenLogprobs vs PyTorch eager": target(speedups.get("tokenLogprobs vs eager"), 4.0),
    "tokenLogprobs vs torch.compile": target(speedups.get("tokenLogprobs vs torch.compile"), 1.5),
    "tokenLogprobs+entropy vs TRL": target(speedups.get("tokenLogprobs+entropy vs TRL"), 10.0),
    "sample top-k 50 top-p 0.9 vs torch sort": target(speedups.get("sample vs torch sort"), 5.0),
    "linearLogprobs vs PyTorch eager (time ratio >= 1/1.1)": target(speedups.get("linearLogprobs vs eager"), 1 / 1.1),
}
summary = {
    "device": device,
    "steps": steps,
    "allStepsPassed": all(s["passed"] for s in steps.values()),
    "targets": targets,
    "kernelBench": bench,
    "modelSteps": model_steps,
    "torchPeer": peer,
    # The peer's figures in the bench result schema: torch_peer.kernels.json in this folder, to copy
    # into bench/results/ as resultsName.
    "torchPeerKernels": {"file": "torch_peer.kernels.json", "resultsName": results_name(peer_kernels),
                         "entries": len(peer_kernels.get("entries", [])), "missing": peer_kernels.get("missing")},
}
with open(os.path.join(out, "gpu-check.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(json.dumps({"device": device, "steps": {k: v["passed"] for k, v in steps.items()}, "targets": targets},
                 indent=2))
EOF

awk -F'\t' '$2 != 0 { failed = 1 } END { exit failed }' "$steps_file"
