// Shared pieces of the x86 kernel sets of the GEMM engine (gemm_avx2.cc, gemm_avx512.cc,
// gemm_avx512bf16.cc): element loads that widen f32 / bf16 / FP8 rows to f32 vectors, a 16 × 16 dword
// transpose, and the scratch of the few-rows kernels. Internal to native/cpu.
#pragma once
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "../runtime/dtype.h"
#include "gemm_engine.h"
#include "simd.h"

// GCC 12 flags the undefined vectors inside its own AVX-512 intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace dsn::cpu::gemmk {

inline float f32FromAny(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::bf16: return bf16ToF32(static_cast<const uint16_t*>(base)[i]);
    default: return f8e4m3ToF32(static_cast<const uint8_t*>(base)[i]);
  }
}

/** Per-thread scratch of the few-rows kernels: A rows, parked accumulators, scale products. */
inline thread_local Scratch tlsSmallA, tlsSmallC, tlsSmallS;

/** Transposes 16 vectors of 16 dwords: out[c] = column c (lane i from r[i]). */
DSN_TARGET_AVX512 inline void transpose16(const __m512i* r, __m512i* out) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // u[4g + q]: rows 4g…4g+3 of column 4L + q in lane L.
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int q = 0; q < 4; ++q) {
    __m512i v0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x88), v1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xdd);
    __m512i v2 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x88), v3 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xdd);
    out[q] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    out[8 + q] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    out[4 + q] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    out[12 + q] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

/** 16 elements of a row of dtype t from element i, as f32. FP8 exactly through f16: the code's
 *  magnitude shifted into an f16's exponent and mantissa fields is 2^-8 times its value (subnormals
 *  included), vcvtph2ps widens it and × 2^8 restores it; NaN codes (±480 by then) → NaN. Never
 *  through f32 subnormals, which cost a microcode assist per operation on Intel cores. */
DSN_TARGET_AVX512 inline __m512 load16F32(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return _mm512_loadu_ps(static_cast<const float*>(base) + i);
    case DType::bf16: {
      __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    default: {
      __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(base) + i));
      __m256i x = _mm256_cvtepi8_epi16(c);  // sign-extended: bit 8 = the code's sign
      __m256i h = _mm256_and_si256(_mm256_slli_epi16(x, 7), _mm256_set1_epi16(int16_t(0xbf80)));
      __m512 v = _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
      __mmask16 nan = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(480.0f), _CMP_EQ_OQ);
      return _mm512_mask_mov_ps(v, nan, _mm512_set1_ps(__builtin_nanf("")));
    }
  }
}

DSN_TARGET_AVX512 inline __m512 load16F32Masked(const void* base, DType t, int64_t i, __mmask16 mask) {
  if (mask == 0xffff) return load16F32(base, t, i);
  switch (t) {
    case DType::f32: return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(base) + i);
    case DType::bf16: {
      __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(base) + i);
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    default: {
      alignas(16) uint8_t tmp[16] = {};
      for (int j = 0; j < 16; ++j)
        if (mask >> j & 1) tmp[j] = static_cast<const uint8_t*>(base)[i + j];
      return _mm512_maskz_mov_ps(mask, load16F32(tmp, t, 0));
    }
  }
}

/** The AVX-512 f32 few-rows kernel (gemm_avx512.cc); the BF16 set hands it the products it does not
 *  take (bf16 or f32 operands). Returns false when it does not handle the problem either. */
bool smallMAvx512(const Problem& p, int64_t n0, int64_t n1);

/** The AVX2 few-rows kernel for an FP8 W (gemm_avx2.cc), which the AVX-512 f32 set uses too. Returns
 *  false when it does not handle the problem (no scales, K % 128 ≠ 0, W [K, N], M > 8). */
bool smallMFp8Avx2(const Problem& p, int64_t n0, int64_t n1);

}  // namespace dsn::cpu::gemmk

#endif
