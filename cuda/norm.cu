#include <cuda_runtime.h>

#include "convert.cuh"
#include "fp8.cuh"
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
  if (p.codes) {
    // The fused actQuant of the row just written (read back as stored, so rounded to xType): one
    // warp per group of 128.
    static_assert(kQuantBlock == 128, "warpQuantGroup128 quantises groups of 128");
    __syncthreads();
    const int64_t groups = p.dim / kQuantBlock;
    const int lane = threadIdx.x & 31;
    for (int64_t g = threadIdx.x >> 5; g < groups; g += kThreads / 32) {
      const int64_t at = base + g * kQuantBlock;
      float v[4];
      for (int j = 0; j < 4; ++j) v[j] = loadAsF32(p.out, p.xType, at + lane + 32 * j);
      warpQuantGroup128(v, p.codes + at, p.scales + row * groups + g, p.ue8m0);
    }
  }
}

/**
 * LayerNorm with cpu::layerNorm's arithmetic, bit for bit: the mean and the variance each from 8
 * partial sums (thread k of the first 8 adds elements k, k + 8, ... in order, as the CPU's s[i % 8])
 * folded in the CPU's order; rstd = 1 / sqrt(var + eps); out = ((x - mean) · rstd) · w + b, each
 * step rounded (b = 0 without a bias, as on the CPU). Launch: grid min(rows, 2^16) blocks of 256
 * threads, grid-stride over rows. The sums are sequential in 8 threads: meant for the model's short
 * rows (the indexer's 128), not for rows of thousands.
 */
__global__ void layerNormKernel(LayerNormParams p) {
  __shared__ float partial[8];
  const int64_t D = p.dim;
  auto fold = [&]() { return __fadd_rn(__fadd_rn(__fadd_rn(partial[0], partial[4]), __fadd_rn(partial[2], partial[6])), __fadd_rn(__fadd_rn(partial[1], partial[5]), __fadd_rn(partial[3], partial[7]))); };
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const int64_t base = row * D;
    if (threadIdx.x < 8) {
      float s = 0.0f;
      for (int64_t i = threadIdx.x; i < D; i += 8) s = __fadd_rn(s, loadAsF32(p.x, p.xType, base + i));
      partial[threadIdx.x] = s;
    }
    __syncthreads();
    const float mean = fold() / float(D);
    __syncthreads();
    if (threadIdx.x < 8) {
      float q = 0.0f;
      for (int64_t i = threadIdx.x; i < D; i += 8) {
        const float d = __fadd_rn(loadAsF32(p.x, p.xType, base + i), -mean);
        q = __fadd_rn(q, __fmul_rn(d, d));
      }
      partial[threadIdx.x] = q;
    }
    __syncthreads();
    const float var = fold() / float(D);
    const float rstd = 1.0f / sqrtf(__fadd_rn(var, p.eps));
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
      const float b = p.bias ? loadAsF32(p.bias, p.bType, i) : 0.0f;
      const float y = __fmul_rn(__fmul_rn(__fadd_rn(loadAsF32(p.x, p.xType, base + i), -mean), rstd), loadAsF32(p.weight, p.wType, i));
      storeFromF32(p.out, p.xType, base + i, __fadd_rn(y, b));
    }
    __syncthreads();  // partial is reused by the next row
  }
}

}  // namespace

std::string layerNormLaunch(const LayerNormParams& p, const CudaLaunch& l) {
  if (p.rows == 0) return "";
  layerNormKernel<<<unsigned(p.rows < 65536 ? p.rows : 65536), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

std::string rmsNormLaunch(const RmsNormParams& p, const CudaLaunch& l) {
  if (p.rows == 0) return "";
  if (p.rows > 0x7fffffff) return "too many rows for one launch";
  if (p.codes && (p.dim % kQuantBlock != 0 || !p.scales)) return "rmsNorm: the fused actQuant needs dim a multiple of 128 and scales";
  rmsNormKernel<<<unsigned(p.rows), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

}  // namespace dsn::cuda
