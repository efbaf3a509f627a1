#include <cuda_runtime.h>

#include "cache.cuh"
#include "convert.cuh"
#include "device_error.cuh"
#include "fp8.cuh"
#include "launch_check.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 128;  // one group of the latent per block pass: a thread per element
static_assert(kThreads == kLatentGroup, "latentCacheWriteKernel gives each thread one element of a group");

/** Where a latent-cache row's parts lie, from LatentCacheLayout (computed on the host). */
struct LatentOffsets {
  int64_t latent, groups, scalesOffset, ropeOffset, rowBytes, ropeBytes, elemBytes;
};

LatentOffsets offsetsOf(const LatentCacheLayout& L) {
  const int64_t es = int64_t(dtypeSize(L.ropeType));
  return {L.latent, L.groups(), L.scalesOffset(), L.ropeOffset(), L.rowBytes(), L.dr * es, es};
}

/** The block copies `bytes` bytes from src to dst: 16 bytes a thread where both ends and the size
 *  allow it, else 4, else 1. */
__device__ __forceinline__ void copyBytes(void* dst, const void* src, int64_t bytes) {
  const uintptr_t a = uintptr_t(dst) | uintptr_t(src) | uintptr_t(bytes);
  if (a % 16 == 0) {
    for (int64_t i = threadIdx.x; i < bytes / 16; i += blockDim.x) static_cast<uint4*>(dst)[i] = static_cast<const uint4*>(src)[i];
  } else if (a % 4 == 0) {
    for (int64_t i = threadIdx.x; i < bytes / 4; i += blockDim.x) static_cast<uint32_t*>(dst)[i] = static_cast<const uint32_t*>(src)[i];
  } else {
    for (int64_t i = threadIdx.x; i < bytes; i += blockDim.x) static_cast<uint8_t*>(dst)[i] = static_cast<const uint8_t*>(src)[i];
  }
}

/**
 * Whether the block's row t is to be written: false when a later row goes to the same slot (the
 * last row wins, as the CPU's in-order copy) or when any slot is outside [0, numSlots) (the CPU
 * checks every slot first and writes nothing; the bad one is raised on the error word). Reads all
 * T slots: O(T) a row, O(T²) a launch, cheap at decode sizes and a prefill chunk's.
 */
__device__ bool writesRow(const int32_t* slots, int64_t t, int64_t T, int64_t numSlots, DeviceErrorWord* err, uint32_t op) {
  const int32_t mine = slots[t];
  int skip = 0;
  for (int64_t u = threadIdx.x; u < T; u += blockDim.x) {
    const int32_t s = slots[u];
    if (s < 0 || s >= numSlots) {
      raiseDeviceError(err, op, DeviceErrorWhat::slotOutOfRange, s, numSlots);
      skip = 1;
    } else if (u > t && s == mine) {
      skip = 1;
    }
  }
  return !__syncthreads_or(skip);
}

/** Launch: grid min(T, 2^16) blocks of 128 threads, grid-stride over the rows; a block copies one row. */
__global__ void pagedWriteKernel(PagedWriteParams p, DeviceErrorWord* err, uint32_t op) {
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x)
    if (writesRow(p.slots, t, p.tokens, p.numSlots, err, op))
      copyBytes(static_cast<uint8_t*>(p.cache) + int64_t(p.slots[t]) * p.rowBytes, static_cast<const uint8_t*>(p.rows) + t * p.rowBytes, p.rowBytes);
}

/** Launch: grid min(S, 2^16) blocks of 128 threads, grid-stride over the output rows. */
__global__ void pagedGatherKernel(PagedGatherParams p, DeviceErrorWord* err, uint32_t op) {
  for (int64_t s = blockIdx.x; s < p.count; s += gridDim.x) {
    const int32_t slot = p.slots[s];
    if (slot < 0 || slot >= p.numSlots) {
      if (threadIdx.x == 0) raiseDeviceError(err, op, DeviceErrorWhat::slotOutOfRange, slot, p.numSlots);
      continue;
    }
    copyBytes(static_cast<uint8_t*>(p.out) + s * p.rowBytes, static_cast<const uint8_t*>(p.cache) + int64_t(slot) * p.rowBytes, p.rowBytes);
  }
}

/** A group scale stored at any byte offset (the row layout does not promise 4-byte alignment). */
__device__ __forceinline__ void storeScale(uint8_t* at, float s) {
  const uint32_t b = __float_as_uint(s);
  for (int i = 0; i < 4; ++i) at[i] = uint8_t(b >> (8 * i));
}
__device__ __forceinline__ float loadScale(const uint8_t* at) {
  return __uint_as_float(uint32_t(at[0]) | uint32_t(at[1]) << 8 | uint32_t(at[2]) << 16 | uint32_t(at[3]) << 24);
}

/**
 * Launch: grid min(T, 2^16) blocks of 128 threads, grid-stride over the tokens. Per group of 128:
 * thread i holds element i; amax by fmaxf across the warps, then the scale and the codes exactly as
 * actQuant (cuda/fp8.cuh); then the RoPE key's bytes.
 */
__global__ void latentCacheWriteKernel(LatentCacheWriteParams p, LatentOffsets o, DeviceErrorWord* err, uint32_t op) {
  __shared__ float warpMax[kThreads / 32];
  const DType type = p.layout.ropeType;
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    if (!writesRow(p.slots, t, p.tokens, p.numSlots, err, op)) continue;
    uint8_t* row = p.cache + int64_t(p.slots[t]) * o.rowBytes;
    for (int64_t g = 0; g < o.groups; ++g) {
      const float x = loadAsF32(p.latent, type, t * o.latent + g * kLatentGroup + threadIdx.x);
      // As actQuant: fmaxf from 0, so NaN is skipped.
      const float s = fp8GroupScale(blockMax<kThreads>(fmaxf(0.0f, fabsf(x)), warpMax), p.ue8m0);
      row[g * kLatentGroup + threadIdx.x] = fp8Code(x, s);
      if (threadIdx.x == 0) storeScale(row + o.scalesOffset + 4 * g, s);
      __syncthreads();  // warpMax is reused by the next group
    }
    copyBytes(row + o.ropeOffset, static_cast<const uint8_t*>(p.kPe) + t * o.ropeBytes, o.ropeBytes);
  }
}

/** Launch: grid min(S, 2^16) blocks of 128 threads, grid-stride over the output rows: the latent
 *  dequantised (f32(code) · scale, rounded once to the dtype), then the RoPE key's bytes. */
__global__ void latentCacheReadKernel(LatentCacheReadParams p, LatentOffsets o, DeviceErrorWord* err, uint32_t op) {
  const DType type = p.layout.ropeType;
  const int64_t outBytes = o.latent * o.elemBytes + o.ropeBytes;
  for (int64_t s = blockIdx.x; s < p.count; s += gridDim.x) {
    const int32_t slot = p.slots[s];
    if (slot < 0 || slot >= p.numSlots) {
      if (threadIdx.x == 0) raiseDeviceError(err, op, DeviceErrorWhat::slotOutOfRange, slot, p.numSlots);
      continue;
    }
    const uint8_t* row = p.cache + int64_t(slot) * o.rowBytes;
    for (int64_t c = threadIdx.x; c < o.latent; c += blockDim.x)
      storeFromF32(p.out, type, s * (o.latent + p.layout.dr) + c, __fmul_rn(fromE4m3(row[c]), loadScale(row + o.scalesOffset + 4 * (c / kLatentGroup))));
    copyBytes(static_cast<uint8_t*>(p.out) + s * outBytes + o.latent * o.elemBytes, row + o.ropeOffset, o.ropeBytes);
  }
}

unsigned gridFor(int64_t rows) { return unsigned(rows < 65536 ? rows : 65536); }

}  // namespace

std::string pagedWriteLaunch(const PagedWriteParams& p, const CudaLaunch& l) {
  if (p.tokens == 0) return "";
  pagedWriteKernel<<<gridFor(p.tokens), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

std::string pagedGatherLaunch(const PagedGatherParams& p, const CudaLaunch& l) {
  if (p.count == 0) return "";
  pagedGatherKernel<<<gridFor(p.count), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

std::string latentCacheWriteLaunch(const LatentCacheWriteParams& p, const CudaLaunch& l) {
  if (p.tokens == 0) return "";
  latentCacheWriteKernel<<<gridFor(p.tokens), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, offsetsOf(p.layout), l.error, l.op);
  return launchError();
}

std::string latentCacheReadLaunch(const LatentCacheReadParams& p, const CudaLaunch& l) {
  if (p.count == 0) return "";
  latentCacheReadKernel<<<gridFor(p.count), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, offsetsOf(p.layout), l.error, l.op);
  return launchError();
}

}  // namespace dsn::cuda
