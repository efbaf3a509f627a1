// The device side of the per-stream error word (native/params/launch.h): a kernel that finds bad
// data (an index out of range) records it here instead of trapping, and returns. The first error
// since the last sync point wins; the sync point raises it as a JS error naming the op.
#pragma once
#include "../native/params/launch.h"

namespace dsn::cuda {

__device__ inline void raiseDeviceError(DeviceErrorWord* w, uint32_t op, DeviceErrorWhat what, int64_t value, int64_t bound) {
  if (atomicCAS(&w->raised, 0u, 1u) != 0u) return;  // an earlier error is kept
  w->op = op;
  w->what = uint32_t(what);
  w->value = value;
  w->bound = bound;
  __threadfence();
}

}  // namespace dsn::cuda
