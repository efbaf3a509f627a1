// Device-side E4M3 (fn) conversions and actQuant's group scale, bit-identical to
// native/runtime/dtype.h and native/cpu/quant.cc: shared by actQuant / fp8Dequant (cuda/quant.cu),
// the FP8 latent cache (cuda/cache.cu) and the fused quantised outputs of rmsNorm and swiglu.
#pragma once
#include <cstdint>

namespace dsn::cuda {

constexpr float kFp8Max = 448.0f;
constexpr float kInvFp8Max = 1.0f / 448.0f;  // the f32 constant the reference multiplies by
constexpr float kAmaxFloor = 1e-4f;

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

/** A group's scale from its amax (max |x| by fmaxf, NaN skipped), as cpu::actQuant: the floor,
 *  times f32(1/448); ue8m0 rounds up to a power of two from the bits. */
__device__ __forceinline__ float fp8GroupScale(float amax, bool ue8m0) {
  amax = amax > kAmaxFloor ? amax : kAmaxFloor;
  float s = __fmul_rn(amax, kInvFp8Max);
  if (ue8m0) {
    const uint32_t b = __float_as_uint(s);
    uint32_t e = (b >> 23) & 0xffu;
    if (b & 0x7fffffu) ++e;
    s = __uint_as_float(e << 23);
  }
  return s;
}

/** The largest of the block's per-thread maxima m by fmaxf (NaN skipped), from every thread of a
 *  block of kThreads (a multiple of 32); warpMax is shared memory of kThreads / 32 floats. The
 *  caller syncs the block again before it reuses warpMax. */
template <int kThreads>
__device__ __forceinline__ float blockMax(float m, float* warpMax) {
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  if ((threadIdx.x & 31) == 0) warpMax[threadIdx.x >> 5] = m;
  __syncthreads();
  float amax = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) amax = fmaxf(amax, warpMax[w]);
  return amax;
}

/** The code of x in a group of scale s: e4m3(clamp(x / s, ±448)), an f32 division; NaN -> -448 as fmaxf does. */
__device__ __forceinline__ uint8_t fp8Code(float x, float s) { return toE4m3(fminf(fmaxf(x / s, -kFp8Max), kFp8Max)); }

/**
 * One warp quantises one group of 128 values (the fused epilogues of rmsNorm and swiglu): lane l holds
 * elements l, l + 32, l + 64, l + 96 of the group in v, already rounded to the dtype they are stored
 * in. amax by fmaxf over the warp (NaN skipped; max is order-free, so this is actQuantKernel's amax),
 * fp8GroupScale, fp8Code: the bits actQuant gives for those values. Lane 0 writes *scale.
 */
__device__ __forceinline__ void warpQuantGroup128(const float (&v)[4], uint8_t* codes, float* scale, bool ue8m0) {
  float m = 0.0f;
  for (int j = 0; j < 4; ++j) m = fmaxf(m, fabsf(v[j]));
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  const float s = fp8GroupScale(m, ue8m0);
  const int lane = threadIdx.x & 31;
  if (lane == 0) *scale = s;
  for (int j = 0; j < 4; ++j) codes[lane + 32 * j] = fp8Code(v[j], s);
}

}  // namespace dsn::cuda
