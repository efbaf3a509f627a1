// What a CUDA launcher receives besides its op's params: the stream, the per-stream device-side
// error word, and the op's id (so a kernel that finds bad data can say which op it was). Plain data,
// compiled by g++ and nvcc alike; CPU kernels never see it.
#pragma once
#include <cstdint>

namespace dsn {

/** Why a kernel raised its stream's error word. The text of each is in native/runtime/cuda_errors.cc. */
enum class DeviceErrorWhat : uint32_t {
  none = 0,
  indexOutOfRange = 1,    // an index read from a tensor is outside [0, bound)
  expertIdOutOfRange = 2, // an expert id outside [0, bound)
  tokenIdOutOfRange = 3,  // a token id outside [0, bound)
  offsetOutOfRange = 4,   // an offset / position outside [0, bound)
  keyIndexOutOfRange = 5, // a key (cache slot) index outside [0, bound)
  rowCountOutOfRange = 6, // a per-group row count outside [0, bound)
  positionOutOfRange = 7, // a token position (a row of the rope tables) outside [0, bound)
  slotOutOfRange = 8,     // a paged-cache slot (block * 64 + row) outside [0, bound)
  count
};

/** One per stream, in device memory. The first kernel that finds bad data sets it (atomicCAS on
 *  `raised`, then the rest); the next sync point (read, synchronize) copies it to the host, clears
 *  it in stream order, and raises "<op>: <what> <value> ..." as a JS error. */
struct DeviceErrorWord {
  uint32_t raised;  // 0 = clear; 1 = an error is recorded
  uint32_t op;      // the op's id (CudaLaunch::op) of the kernel that raised it
  uint32_t what;    // a DeviceErrorWhat
  uint32_t unused;  // padding: keeps value 8-byte aligned
  int64_t value;    // the offending value
  int64_t bound;    // the exclusive upper bound it broke (lower bound 0)
};

/** A CUDA launch's context, filled by dispatch.h (launch()) for the op's device. */
struct CudaLaunch {
  void* stream = nullptr;                 // cudaStream_t of the device; launch only on it
  DeviceErrorWord* error = nullptr;       // the stream's device-side error word
  uint32_t op = 0;                        // id of the op being launched (for DeviceErrorWord::op)
  int device = 0;                         // the device index (already current when the launcher runs)
};

}  // namespace dsn
