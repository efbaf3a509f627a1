// Native-width GCC vectors for the portable kernels of the attention family (internal to
// native/cpu): one source compiled for AVX-512 (16 floats), AVX2 (8) and the SSE2 baseline (4),
// with always-inlined helpers that take the target of the function they are inlined into.
#pragma once
#include <cstdint>

#include "simd.h"

// The helpers return 64-byte vectors; GCC notes their ABI even though they are always inlined.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace dsn::cpu::vec {

/** Lanes in a group: kernels keep 16 heads (or queries) side by side. */
constexpr int kGroup = 16;

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

/** A native vector of floats and its integer twin; 16 lanes (one group) are kN vectors. */
template <typename F, typename I>
struct Vec {
  using f = F;
  using i = I;
  static constexpr int kWidth = int(sizeof(F) / 4);
  static constexpr int kN = kGroup / kWidth;
  // Unaligned: lanes of the buffers start anywhere.
  static DSN_INLINE F load(const float* p) {
    F v;
    __builtin_memcpy(&v, p, sizeof(F));
    return v;
  }
  static DSN_INLINE void store(float* p, F v) { __builtin_memcpy(p, &v, sizeof(F)); }
  static DSN_INLINE F splat(float x) { return F{} + x; }
  /** e^x for x <= 0 (Cody-Waite reduction, Cephes polynomial, about 1 ulp; 0 below -87). */
  static DSN_INLINE F expNonPositive(F x) {
    const F xc = x > -87.0f ? x : splat(-87.0f);
    const F big = splat(12582912.0f);  // 1.5 * 2^23: adding and subtracting rounds to an integer
    const F n = (xc * 1.44269504088896341f + big) - big;
    F r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    F y = splat(1.9875691500e-4f);
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    const I bits = (__builtin_convertvector(n, I) + 127) << 23;
    return x > -87.0f ? y * (F)bits : splat(0.0f);  // (F) reinterprets the bits
  }
  /** Rounds finite, non-negative values to bf16 (nearest even), kept as f32. */
  static DSN_INLINE F roundBf16(F v) {
    I u = (I)v;
    u = (u + 0x7fff + ((u >> 16) & 1)) & int32_t(0xffff0000u);
    return (F)u;
  }
};
using Vec16 = Vec<v16f, v16i>;
using Vec8 = Vec<v8f, v8i>;
using Vec4 = Vec<v4f, v4i>;

}  // namespace dsn::cpu::vec
