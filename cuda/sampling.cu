#include <cuda_runtime.h>

#include <cstdint>

#include "launch_check.cuh"
#include "sampling.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int32_t kNone = 0x7fffffff;  // no value above -inf seen yet: loses every tie, becomes 0

/** (v, i) replaces (best, at) when larger, or equal with a lower index; NaN never does (v > best is false). */
__device__ __forceinline__ void better(float v, int32_t i, float& best, int32_t& at) {
  if (v > best || (v == best && i < at)) {
    best = v;
    at = i;
  }
}

/**
 * Launch: grid min(rows, 2^16) blocks of 256 threads, grid-stride over rows. Each thread keeps the
 * first best of its stride (strict >, so NaN and -inf are never taken), then the warps and the
 * block merge by (value desc, index asc): the first index of the row's maximum, as the CPU.
 */
__global__ void argmaxKernel(ArgmaxParams p) {
  __shared__ float warpBest[kThreads / 32];
  __shared__ int32_t warpAt[kThreads / 32];
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const float* x = p.logits + r * p.vocab;
    float best = -__int_as_float(0x7f800000);  // -inf
    int32_t at = kNone;
    for (int64_t i = threadIdx.x; i < p.vocab; i += blockDim.x)
      if (x[i] > best) {
        best = x[i];
        at = int32_t(i);
      }
    for (int off = 16; off > 0; off >>= 1) better(__shfl_xor_sync(0xffffffffu, best, off), __shfl_xor_sync(0xffffffffu, at, off), best, at);
    if ((threadIdx.x & 31) == 0) {
      warpBest[threadIdx.x >> 5] = best;
      warpAt[threadIdx.x >> 5] = at;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kThreads / 32; ++w) better(warpBest[w], warpAt[w], best, at);
      p.out[r] = at == kNone ? 0 : at;
    }
    __syncthreads();  // warpBest / warpAt are reused by the next row
  }
}

}  // namespace

std::string argmaxLaunch(const ArgmaxParams& p, const CudaLaunch& l) {
  if (p.rows == 0) return "";
  argmaxKernel<<<unsigned(p.rows < 65536 ? p.rows : 65536), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

}  // namespace dsn::cuda
