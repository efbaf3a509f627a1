#!/usr/bin/env bash
# The device side of the device check, copied into .device/run.sh by `npm run device:bundle`.
# Usage: .device/run.sh OUTDIR. Needs no npm, no registry and no build: Node comes from PATH (>= 20)
# or from node.xz. Each step runs under its own timeout (a TMA or mbarrier bug hangs rather than
# fails), writes OUTDIR/<step>.log, and the steps and their exit codes go to OUTDIR/steps.txt.
# About 7 minutes at most on one H200.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE/out}"
mkdir -p "$OUT"
: > "$OUT/steps.txt"
export DEEPSEEK_NATIVE_BUILD=cuda

NODE="$(command -v node || true)"
if [ -z "$NODE" ] || [ "$("$NODE" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
  NODE="$HERE/node"
  [ -x "$NODE" ] || { xz -dc "$HERE/node.xz" > "$NODE" && chmod +x "$NODE"; }
fi
echo "node: $NODE ($("$NODE" --version))"

step() {  # step NAME SECONDS COMMAND...
  local name="$1" secs="$2"
  shift 2
  echo "== $name (timeout ${secs}s)"
  local t0=$SECONDS
  timeout --kill-after=5 "$secs" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 60 "$OUT/$name.log"
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && echo "!! $name timed out after ${secs}s"
  echo "== $name: exit $rc in $((SECONDS - t0)) s"
  echo "$name $rc $((SECONDS - t0))s" >> "$OUT/steps.txt"
}

cd "$HERE/pkg"
step gpu 15 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
step info 20 "$NODE" dist/lib/cli.js info
step check 75 "$NODE" scripts/device-check.mjs --require-gpu
if command -v compute-sanitizer > /dev/null 2>&1; then
  for tool in memcheck racecheck synccheck; do
    step "sanitizer-$tool" 35 compute-sanitizer --tool "$tool" --error-exitcode 9 --target-processes all "$NODE" scripts/device-check.mjs --small
  done
else
  echo "compute-sanitizer not found: skipping memcheck, racecheck, synccheck" | tee "$OUT/sanitizer-skipped.txt"
fi
step model 60 "$NODE" scripts/device-model-check.mjs golden --device cuda:0
BENCH_DEVICES=cuda:0 step bench 75 "$NODE" dist/bench/run.js
# The model end to end on the GPU (writes the 1b synthetic checkpoint first: ~1.1 GB).
BENCH_DEVICES=cuda:0 step model-bench 90 "$NODE" dist/bench/run.js model
cp -r bench/results "$OUT/bench-results" 2> /dev/null || true
echo "== steps"
cat "$OUT/steps.txt"
awk '$2 != 0 { bad = 1 } END { exit bad }' "$OUT/steps.txt"
