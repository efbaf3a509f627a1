#include <cuda_runtime.h>

#include "convert.cuh"
#include "launch_check.cuh"
#include "quant.cuh"

namespace dsn::cuda {
namespace {

constexpr float kFp8Max = 448.0f;
constexpr float kInvFp8Max = 1.0f / 448.0f;  // the f32 constant the reference multiplies by
constexpr float kAmaxFloor = 1e-4f;
constexpr int kThreads = 128;

/** f32 -> E4M3 (fn) with round-to-nearest-even, saturating to ±448, NaN kept: dtype.h's f32ToF8e4m3. */
__device__ __forceinline__ uint8_t toE4m3(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint8_t(sign | 0x7f);
  if (a >= 0x43e00000u) return uint8_t(sign | 0x7e);
  if (a < 0x3c800000u) {  // below 2^-6: multiples of 2^-9; the add rounds (RNE)
    const float r = __fadd_rn(__uint_as_float(a), 16384.0f);
    return uint8_t(sign | uint8_t(__float_as_uint(r) - __float_as_uint(16384.0f)));
  }
  a += 0x7ffffu + ((a >> 20) & 1u);
  return uint8_t(sign | uint8_t((a >> 20) - (120u << 3)));
}

/** E4M3 (fn) -> f32, exact: dtype.h's f8e4m3ToF32. */
__device__ __forceinline__ float fromE4m3(uint8_t c) {
  const uint32_t sign = uint32_t(c & 0x80u) << 24;
  const uint32_t exp = (c >> 3) & 0xfu, man = c & 0x7u;
  if (exp == 0xf && man == 0x7) return __uint_as_float(sign | 0x7fc00000u);
  if (exp == 0) return __uint_as_float(sign | __float_as_uint(float(man) * (1.0f / 512.0f)));
  return __uint_as_float(sign | ((exp + 120) << 23) | (man << 20));
}

/** One block per (row, group): amax by fmaxf (NaN skipped), the scale, then the codes. */
__global__ void actQuantKernel(ActQuantParams p) {
  __shared__ float warpMax[kThreads / 32];
  const int64_t groups = p.K / p.blockSize;
  for (int64_t rg = blockIdx.x; rg < p.rows * groups; rg += gridDim.x) {
    const int64_t base = (rg / groups) * p.K + (rg % groups) * p.blockSize;
    float m = 0.0f;
    for (int64_t i = threadIdx.x; i < p.blockSize; i += blockDim.x) m = fmaxf(m, fabsf(loadAsF32(p.x, p.xType, base + i)));
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    if ((threadIdx.x & 31) == 0) warpMax[threadIdx.x >> 5] = m;
    __syncthreads();
    float amax = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) amax = fmaxf(amax, warpMax[w]);
    // groupScale: the floor, times f32(1/448); ue8m0 rounds up to a power of two from the bits.
    amax = amax > kAmaxFloor ? amax : kAmaxFloor;
    float s = __fmul_rn(amax, kInvFp8Max);
    if (p.ue8m0) {
      const uint32_t b = __float_as_uint(s);
      uint32_t e = (b >> 23) & 0xffu;
      if (b & 0x7fffffu) ++e;
      s = __uint_as_float(e << 23);
    }
    if (threadIdx.x == 0) p.scales[rg] = s;
    for (int64_t i = threadIdx.x; i < p.blockSize; i += blockDim.x) {
      const float q = fminf(fmaxf(loadAsF32(p.x, p.xType, base + i) / s, -kFp8Max), kFp8Max);  // NaN -> -448, as fmaxf does
      p.codes[base + i] = toE4m3(q);
    }
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
