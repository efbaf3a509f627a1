#include <cuda_runtime.h>

#include "convert.cuh"
#include "fp8.cuh"
#include "launch_check.cuh"
#include "quant.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 128;

/** One block per (row, group): amax by fmaxf (NaN skipped), the scale, then the codes. */
__global__ void actQuantKernel(ActQuantParams p) {
  __shared__ float warpMax[kThreads / 32];
  const int64_t groups = p.K / p.blockSize;
  for (int64_t rg = blockIdx.x; rg < p.rows * groups; rg += gridDim.x) {
    const int64_t base = (rg / groups) * p.K + (rg % groups) * p.blockSize;
    float m = 0.0f;
    for (int64_t i = threadIdx.x; i < p.blockSize; i += blockDim.x) m = fmaxf(m, fabsf(loadAsF32(p.x, p.xType, base + i)));
    const float s = fp8GroupScale(blockMax<kThreads>(m, warpMax), p.ue8m0);
    if (threadIdx.x == 0) p.scales[rg] = s;
    for (int64_t i = threadIdx.x; i < p.blockSize; i += blockDim.x) p.codes[base + i] = fp8Code(loadAsF32(p.x, p.xType, base + i), s);
    __syncthreads();  // warpMax is reused by the next group
  }
}

__global__ void fp8DequantKernel(Fp8DequantParams p) {
  const int64_t kBlocks = (p.K + 127) / 128, n = p.N * p.K;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / p.K, c = i % p.K;
    storeFromF32(p.out, p.outType, i, __fmul_rn(fromE4m3(p.w[i]), p.scales[(r / 128) * kBlocks + c / 128]));
  }
}

unsigned gridFor(int64_t blocks) { return unsigned(blocks < (int64_t(1) << 20) ? (blocks > 0 ? blocks : 1) : (int64_t(1) << 20)); }

}  // namespace

std::string actQuantLaunch(const ActQuantParams& p, const CudaLaunch& l) {
  if (p.rows == 0 || p.K == 0) return "";
  actQuantKernel<<<gridFor(p.rows * (p.K / p.blockSize)), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

std::string fp8DequantLaunch(const Fp8DequantParams& p, const CudaLaunch& l) {
  if (p.N == 0 || p.K == 0) return "";
  fp8DequantKernel<<<gridFor((p.N * p.K + 255) / 256), 256, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

}  // namespace dsn::cuda
