// Params of the debug ops (native/ops/debug.cc): kernels that exist to test the runtime (stream
// order, device-side errors), with a CPU and a CUDA body each. Plain data.
#pragma once
#include <cstdint>

namespace dsn {

/** Fills `bytes` bytes at `dst` with `value`, in stream order. */
struct DebugFillParams {
  /** Device memory of the op's device. */
  void* dst = nullptr;
  /** Byte count. */
  uint64_t bytes = 0;
  /** The byte written. */
  uint8_t value = 0;
};

/** Holds the stream for `ms` milliseconds (a host sleep in stream order), so tests can queue work
 *  behind something slow. */
struct DebugDelayParams {
  /** Milliseconds, <= 10000. */
  uint32_t ms = 0;
};

/** Raises the stream's error word as a kernel that found bad data would. */
struct DebugRaiseDeviceParams {
  /** A DeviceErrorWhat. */
  uint32_t what = 0;
  /** The offending value. */
  int64_t value = 0;
  /** The bound it broke. */
  int64_t bound = 0;
};

}  // namespace dsn
