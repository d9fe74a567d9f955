#!/usr/bin/env bash
# napo as a dependency, proved: pack every published package, install the tarballs into fresh
# projects outside the repository (dependencies from the npm registry, or its cache) and run an
# example there (scripts/package-example.mjs).
#   1. kernels + the prebuilt linux-x64 package + policy + trainer: the prebuilt binary is used.
#   2. kernels + policy without the prebuilt package: napo.node is built from the shipped sources
#      on install (CPU only here, NAPO_CUDA=OFF, to keep CI short; nvcc builds are the same CMake).
# Needs the repository built first (npm install). Prints the install time of each project.
set -euo pipefail
repository="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/tarballs"
echo "pack-check: packing into $work/tarballs"
(cd "$repository" && npm pack --silent -w @napo/kernels -w @napo/kernels-linux-x64 -w @napo/policy -w @napo/trainer \
  --pack-destination "$work/tarballs" >/dev/null)
ls -l "$work/tarballs" | awk 'NR > 1 { printf "  %s %s bytes\n", $9, $5 }'

# A fresh ESM project; installs the given tarballs and runs the example with the given argument.
install_and_run() {
  local name="$1" example_arg="$2"
  shift 2
  local project="$work/$name"
  mkdir -p "$project"
  (cd "$project" && npm init -y >/dev/null && npm pkg set type=module >/dev/null)
  cp "$repository/scripts/package-example.mjs" "$project/example.mjs"
  local start
  start=$(date +%s%N)
  (cd "$project" && npm install --no-audit --no-fund --prefer-offline --loglevel=error "$@")
  echo "pack-check: $name installed in $(( ($(date +%s%N) - start) / 1000000 )) ms"
  (cd "$project" && env -u NAPO_ADDON_PATH node example.mjs "$example_arg")
  # The addon must come from the project, not from the repository.
  (cd "$project" && node -e "import('@napo/kernels').then((k) => console.log('pack-check: addon from', k.addonCandidates().find((p) => require('fs').existsSync(p))))")
}

tarballs="$work/tarballs"
install_and_run prebuilt --all \
  "$tarballs/napo-kernels-0.1.0.tgz" "$tarballs/napo-kernels-linux-x64-0.1.0.tgz" \
  "$tarballs/napo-policy-0.1.0.tgz" "$tarballs/napo-trainer-0.1.0.tgz"
NAPO_CUDA=OFF install_and_run source-build --no-trainer \
  "$tarballs/napo-kernels-0.1.0.tgz" "$tarballs/napo-policy-0.1.0.tgz"
echo "pack-check: ok"
