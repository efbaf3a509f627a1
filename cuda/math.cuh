// Device f32 math bit-identical to the CPU kernels' (native/cpu/vec.h, namespace sc): the same
// exp polynomial with the same fused multiply-adds and roundings, so sigmoid/silu/softmax give the
// same bits on cuda as on every CPU path. Every product that feeds a sum is either an explicit fmaf
// or an __fmul_rn (nvcc would otherwise fuse a*b + c).
#pragma once
#include <cstdint>

// A loop over a register array, fully unrolled by nvcc so the array never goes to local memory.
#if defined(__CUDACC__)
#define DSN_UNROLL _Pragma("unroll")
#else
#define DSN_UNROLL
#endif

namespace dsn::cuda {

/** e^x as sc::exp: clamp, n = round(x·log2 e), two-part ln 2, degree-7 polynomial, 2^n in two steps. */
__device__ __forceinline__ float expRef(float x) {
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f, kExpHi = 88.8f, kExpLo = -105.0f;
  if (x != x) return __fadd_rn(x, x);
  x = kExpHi < x ? kExpHi : x;
  x = kExpLo > x ? kExpLo : x;
  const float t = fmaf(x, kLog2e, kRound);
  const float n = __fadd_rn(t, -kRound);
  float r = fmaf(n, -kLn2Hi, x);
  r = fmaf(n, -kLn2Lo, r);
  // Horner on the Taylor coefficients 1, 1, 1/2, … 1/7! (as sc::exp's kC), written out: no local array.
  float p = 1.98412698e-4f;
  p = fmaf(p, r, 1.38888889e-3f);
  p = fmaf(p, r, 8.33333333e-3f);
  p = fmaf(p, r, 4.16666667e-2f);
  p = fmaf(p, r, 1.66666667e-1f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  const int32_t e = int32_t(__float_as_uint(t) - __float_as_uint(kRound));
  const int32_t e1 = e >> 1, e2 = e - e1;
  return __fmul_rn(__fmul_rn(p, __uint_as_float(uint32_t(e1 + 127) << 23)), __uint_as_float(uint32_t(e2 + 127) << 23));
}

/** 1 / (1 + e^−x), as sc::sigmoid. */
__device__ __forceinline__ float sigmoidRef(float x) { return 1.0f / __fadd_rn(1.0f, expRef(-x)); }
/** x / (1 + e^−x), as sc::silu. */
__device__ __forceinline__ float siluRef(float x) { return x / __fadd_rn(1.0f, expRef(-x)); }

}  // namespace dsn::cuda
