#!/usr/bin/env bash
# The one prepared run for a machine with an NVIDIA GPU (the device tool). It builds nothing: it runs
# the bundle that `npm run device:bundle` made here (.device/: the CUDA addon, dist/, a Node binary,
# the plain-Node check), from a copy of the working tree plus .device/:
#   1. the device check: every op with a CUDA kernel on cuda:0 against the CPU, "N passed, N failed"
#   2. compute-sanitizer memcheck, racecheck, synccheck on a small case, when present
#   3. the model on cuda:0 against the golden logits (scripts/device-model-check.mjs)
#   4. the CUDA benchmarks, then the model's end to end
# each step under its own timeout, everything written to $OUT (or ./device-check-out); under
# 7 minutes on one H200. Without a GPU it says so and exits 0.
#
#   npm run device:bundle && run(command: "bash scripts/device-check.sh", carry: [".device"])
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-device-check-out}"
mkdir -p "$OUT"
if ! command -v nvidia-smi > /dev/null 2>&1 || ! nvidia-smi -L > /dev/null 2>&1; then
  echo "device-check: no NVIDIA GPU on this machine (nvidia-smi finds none): nothing to run" | tee "$OUT/device-check.log"
  exit 0
fi
if [ ! -x .device/run.sh ] || [ ! -f .device/pkg/package.json ]; then
  echo "device-check: .device/ is missing: run 'npm run device:bundle' first (and carry .device to this machine)" | tee "$OUT/device-check.log"
  exit 1
fi
cat .device/MANIFEST.json
timeout --kill-after=10 430 bash .device/run.sh "$OUT" 2>&1 | tee "$OUT/device-check.log"
exit "${PIPESTATUS[0]}"
