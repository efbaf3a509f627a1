#!/usr/bin/env bash
# One prepared run for a machine with an NVIDIA GPU (the device tool): build the CUDA addon, run the
# suites that have CUDA kernels on cuda:0, then the benchmarks, and keep what they printed under $OUT
# (or ./device-check-out). Needs node_modules (npm ci) and nvcc.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-device-check-out}"
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  export CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"
  npm run build:cuda && npm run build:ts
  DEEPSEEK_NATIVE_BUILD=cuda node dist/lib/cli.js info
  DEEPSEEK_NATIVE_BUILD=cuda npx vitest run test/runtime test/ops/norm.test.ts test/ops/cast.test.ts
  DEEPSEEK_NATIVE_BUILD=cuda node dist/bench/run.js cast
  DEEPSEEK_NATIVE_BUILD=cuda node dist/bench/run.js rmsNorm
} 2>&1 | tee "$OUT/device-check.log"
