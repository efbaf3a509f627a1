// Device helpers shared by the kernels over the paged caches (cuda/attention.cu, cuda/indexer.cu).
#pragma once
#include <cstdint>

#include "device_error.cuh"

namespace dsn::cuda {

/** Tokens of a cache block (native/cpu/cache.h's kBlockTokens). */
constexpr int64_t kPagedBlockTokens = 64;

/** A query's sequence row and position: raises (from thread 0) a seqIdx outside [0, batch) as an
 *  "index" and a qPos outside [0, posBound) as an "offset"; true when both are good. */
__device__ inline bool checkSeqAndPos(int32_t seq, int32_t pos, int64_t batch, int64_t posBound, DeviceErrorWord* err, uint32_t op) {
  if (seq < 0 || seq >= batch) {
    if (threadIdx.x == 0) raiseDeviceError(err, op, DeviceErrorWhat::indexOutOfRange, seq, batch);
    return false;
  }
  if (pos < 0 || pos >= posBound) {
    if (threadIdx.x == 0) raiseDeviceError(err, op, DeviceErrorWhat::offsetOutOfRange, pos, posBound);
    return false;
  }
  return true;
}

}  // namespace dsn::cuda
