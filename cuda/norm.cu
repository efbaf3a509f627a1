#include <cuda_runtime.h>

#include "convert.cuh"
#include "launch_check.cuh"
#include "norm.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void rmsNormKernel(RmsNormParams p) {
  const int64_t row = blockIdx.x;
  const int64_t base = row * p.dim;
  __shared__ float partial[kThreads / 32];
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < p.dim; i += kThreads) {
    float v = loadAsF32(p.x, p.xType, base + i);
    if (p.residual) {
      v += loadAsF32(p.residual, p.xType, base + i);
      storeFromF32(p.residualOut, p.xType, base + i, v);
    }
    ss += v * v;
  }
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < kThreads / 32 ? partial[threadIdx.x] : 0.f;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (threadIdx.x == 0) partial[0] = v;
  }
  __syncthreads();
  const float inv = rsqrtf(partial[0] / float(p.dim) + p.eps);
  for (int64_t i = threadIdx.x; i < p.dim; i += kThreads) {
    // Re-read the input: rows are short and in L2; keeps registers free for any dim.
    float v = loadAsF32(p.x, p.xType, base + i);
    if (p.residual) v += loadAsF32(p.residual, p.xType, base + i);
    storeFromF32(p.out, p.xType, base + i, loadAsF32(p.weight, p.wType, i) * (v * inv));
  }
}

}  // namespace

std::string rmsNormLaunch(const RmsNormParams& p, const CudaLaunch& l) {
  if (p.rows == 0) return "";
  if (p.rows > 0x7fffffff) return "too many rows for one launch";
  rmsNormKernel<<<unsigned(p.rows), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

}  // namespace dsn::cuda
