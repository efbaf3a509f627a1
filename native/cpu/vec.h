// The CPU kernels' vector layer: one kernel body, written against a vector type V, compiled for
// every SIMD path (native/cpu/simd.h). V is one of three traits types with the same static members:
//   Scalar  1 lane (float), the reference the other paths reproduce bit for bit
//   Avx2    8 lanes (__m256), AVX2 + FMA + F16C
//   Avx512  16 lanes (__m512), AVX-512 F/BW/VL/DQ
// Each has the conversions between storage dtypes and f32 (rounding as dtype.h, bit for bit: ties to
// even, f8 saturating, NaN patterns included; E4M3 widened exactly through f16 and F16C), exp/sigmoid/
// silu with identical results, and the few lane operations the kernels need (reduceAdd, transpose,
// deinterleave, the bf16 pair split the GEMM streams W with; kRegisters, by which kernels size their
// register tiles); plain arithmetic is written with operators (+, *, /), which GCC
// accepts on its vector types. A kernel is a struct with `template <class V> static R run(args)`;
// runOn<Kernel>(simdLevel(), args) calls it through OnTarget<V>, whose `run` carries the path's
// target attribute and `flatten`, so the body and every helper it calls are inlined and compiled
// for that target (no -march flags; nothing built for AVX2 runs on a CPU without it). A kernel with
// fixed entry points (the GEMM engine's kernel sets) calls OnTarget<V>::run<Kernel> directly.
//
// Determinism rule for every kernel built on this header: where a product feeds a sum, either write
// an explicit fused multiply-add (V::fma) or pass the product through opaque() on every path. The
// build compiles with -ffp-contract=off, but the fused forms are part of each kernel's contract.
#pragma once
// GCC 12 reports its own _mm512_undefined_* idiom as -Wmaybe-uninitialized (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "../runtime/dtype.h"
#include "simd.h"

// Kernel bodies pass 32- and 64-byte vectors between always-inlined helpers; GCC notes their ABI.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace dsn::cpu {

/** Pointer to element `index` of a buffer of `type`. */
inline const void* at(const void* base, DType type, int64_t index) {
  return static_cast<const char*>(base) + index * int64_t(dtypeSize(type));
}
inline void* at(void* base, DType type, int64_t index) {
  return static_cast<char*>(base) + index * int64_t(dtypeSize(type));
}

/** True for the dtypes the conversions handle (f32, bf16, f16, f8e4m3). */
inline bool isFloatType(DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16 || t == DType::f8e4m3;
}

// exp: x clamped to [kExpLo, kExpHi] (beyond them the f32 result is +inf or 0 anyway), n = round(x·log2 e),
// r = x − n·ln 2 (two-part ln 2), e^r by its Taylor polynomial of degree 7 (truncation < 0.05 ulp on
// |r| ≤ ln2/2), times 2^n with one rounding (subnormal results included). Within 2 ulp of the true
// value; +inf for x ≥ 88.73, 0 for x ≤ −104, NaN stays NaN (quieted).
namespace expconst {
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;       // 355/512: n·kLn2Hi is exact for |n| ≤ 152
constexpr float kLn2Lo = -2.12194440e-4f;    // ln 2 − kLn2Hi
constexpr float kRound = 12582912.0f;        // 1.5·2^23: adding it rounds to an integer (RNE)
constexpr float kExpHi = 88.8f;              // e^88.73 already overflows f32
constexpr float kExpLo = -105.0f;            // e^−104 already rounds to 0
constexpr float kC[8] = {1.0f, 1.0f, 0.5f, 1.66666667e-1f, 4.16666667e-2f, 8.33333333e-3f, 1.38888889e-3f, 1.98412698e-4f};
}  // namespace expconst

/** v, hidden from the optimiser: a product passed through it is never fused into a later add. */
inline float opaque(float v) {
  __asm__("" : "+x"(v));
  return v;
}
DSN_TARGET_AVX2 inline __m256 opaque(__m256 v) {
  __asm__("" : "+x"(v));
  return v;
}
DSN_TARGET_AVX512 inline __m512 opaque(__m512 v) {
  __asm__("" : "+v"(v));
  return v;
}

// ===================================== scalar =====================================
// ===================================== scalar =====================================
namespace sc {

template <DType T>
inline float load(const void* base, int64_t i) {
  if constexpr (T == DType::f32) return static_cast<const float*>(base)[i];
  else if constexpr (T == DType::bf16) return bf16ToF32(static_cast<const uint16_t*>(base)[i]);
  else if constexpr (T == DType::f16) return f16ToF32(static_cast<const uint16_t*>(base)[i]);
  else return f8e4m3ToF32(static_cast<const uint8_t*>(base)[i]);
}

template <DType T>
inline void store(void* base, int64_t i, float v) {
  if constexpr (T == DType::f32) static_cast<float*>(base)[i] = v;
  else if constexpr (T == DType::bf16) static_cast<uint16_t*>(base)[i] = f32ToBf16(v);
  else if constexpr (T == DType::f16) static_cast<uint16_t*>(base)[i] = f32ToF16(v);
  else static_cast<uint8_t*>(base)[i] = f32ToF8e4m3(v);
}

inline float exp(float x) {
  using namespace expconst;
  if (x != x) return x + x;  // the quiet NaN the vector paths give
  x = kExpHi < x ? kExpHi : x;  // the operand order of minps/maxps
  x = kExpLo > x ? kExpLo : x;
  float t = std::fma(x, kLog2e, kRound);
  float n = t - kRound;
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = kC[7];
  for (int k = 6; k >= 0; --k) p = std::fma(p, r, kC[k]);
  // p · 2^n in two exact-then-rounded steps (n in [−152, 128], each half a normal exponent).
  int32_t e = int32_t(f32Bits(t) - f32Bits(kRound));
  int32_t e1 = e >> 1, e2 = e - e1;
  return opaque((p * bitsF32(uint32_t(e1 + 127) << 23)) * bitsF32(uint32_t(e2 + 127) << 23));
}

/** 1 / (1 + e^−x) */
inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }
/** x / (1 + e^−x) */
inline float silu(float x) { return x / (1.0f + exp(-x)); }

}  // namespace sc

// ===================================== the paths =====================================

/** The scalar path as a vector of one lane. */
struct Scalar {
  using F = float;
  static constexpr int kLanes = 1;
  /** Vector registers the ISA has (kernels size their register tiles by it). */
  static constexpr int kRegisters = 16;
  static constexpr Simd kLevel = Simd::Scalar;
  static F zero() { return 0.0f; }
  static F set1(float x) { return x; }
  static F fma(F a, F b, F c) { return std::fma(a, b, c); }
  /** a > b ? a : b, as maxps: b when either is NaN. */
  static F max(F a, F b) { return a > b ? a : b; }
  /** a < b ? a : b, as minps: b when either is NaN. */
  static F min(F a, F b) { return a < b ? a : b; }
  static F abs(F a) { return bitsF32(f32Bits(a) & 0x7fffffffu); }
  static F neg(F a) { return bitsF32(f32Bits(a) ^ 0x80000000u); }
  /** Per lane x > y ? a : b (an ordered compare: b where x or y is NaN). */
  static F selectGreater(F x, F y, F a, F b) { return x > y ? a : b; }
  /** Lane l holds float(l). */
  static F iota() { return 0.0f; }
  /** The lanes of v to dst[0 … kLanes). */
  static void toArray(float* dst, F v) { *dst = v; }
  template <DType T> static F load(const void* base, int64_t i) { return sc::load<T>(base, i); }
  template <DType T> static F loadPart(const void* base, int64_t i, int64_t) { return sc::load<T>(base, i); }
  template <DType T> static void store(void* base, int64_t i, F v) { sc::store<T>(base, i, v); }
  template <DType T> static void storePart(void* base, int64_t i, F v, int64_t) { sc::store<T>(base, i, v); }
  template <DType T> static void storeStream(void* base, int64_t i, F v) { sc::store<T>(base, i, v); }
  static void streamFence() {}
  /** The sum of the lanes. */
  static float reduceAdd(F v) { return v; }
  /** Splits 2·kLanes consecutive values x0, x1 into the even- and odd-indexed ones. */
  static void deinterleave(F x0, F x1, F& even, F& odd) { even = x0, odd = x1; }
  /** 2·kLanes bf16 from p, split as deinterleave does (even k, odd k), widened to f32. */
  static void loadBf16Pairs(const uint16_t* p, F& even, F& odd) { even = bf16ToF32(p[0]), odd = bf16ToF32(p[1]); }
  /** Transposes kLanes vectors in place: r[c] lane i = old r[i] lane c. */
  static void transpose(F*) {}
  static F exp(F x) { return sc::exp(x); }
  static F sigmoid(F x) { return sc::sigmoid(x); }
  static F silu(F x) { return sc::silu(x); }
};

/** AVX2: 8 lanes. */
struct Avx2 {
  using F = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kRegisters = 16;
  static constexpr Simd kLevel = Simd::Avx2;
  DSN_TARGET_AVX2 static F zero() { return _mm256_setzero_ps(); }
  DSN_TARGET_AVX2 static F set1(float x) { return _mm256_set1_ps(x); }
  DSN_TARGET_AVX2 static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  DSN_TARGET_AVX2 static F max(F a, F b) { return _mm256_max_ps(a, b); }
  DSN_TARGET_AVX2 static F min(F a, F b) { return _mm256_min_ps(a, b); }
  DSN_TARGET_AVX2 static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  DSN_TARGET_AVX2 static F selectGreater(F x, F y, F a, F b) { return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, y, _CMP_GT_OQ)); }
  DSN_TARGET_AVX2 static F iota() { return _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7); }
  DSN_TARGET_AVX2 static void toArray(float* dst, F v) { _mm256_storeu_ps(dst, v); }
  DSN_TARGET_AVX2 static void streamFence() { _mm_sfence(); }
  /** ((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7)). */
  DSN_TARGET_AVX2 static float reduceAdd(F v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));
  }
  DSN_TARGET_AVX2 static void deinterleave(F x0, F x1, F& even, F& odd) {
    // shuffle_ps works per 128-bit half: [x0 0 2, x1 0 2 | x0 4 6, x1 4 6]; the 64-bit permute orders it.
    even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x0, x1, 0x88)), 0xd8));
    odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x0, x1, 0xdd)), 0xd8));
  }
  /** 16 bf16 read as 8 dwords: dword << 16 is the even k's f32, dword & 0xffff0000 the odd k's. */
  DSN_TARGET_AVX2 static void loadBf16Pairs(const uint16_t* p, F& even, F& odd) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    even = floats(_mm256_slli_epi32(w, 16));
    odd = floats(_mm256_and_si256(w, _mm256_set1_epi32(int(0xffff0000u))));
  }
  DSN_TARGET_AVX2 static void transpose(F* r) {
    F t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 8; g += 4) {
      u[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
      u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xee);
      u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
      u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xee);
    }
    for (int c = 0; c < 4; ++c) {
      r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
      r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
  }




  DSN_TARGET_AVX2 static __m256i bits(__m256 v) { return _mm256_castps_si256(v); }
  DSN_TARGET_AVX2 static __m256 floats(__m256i v) { return _mm256_castsi256_ps(v); }

  /** 8 elements from element i. */
  template <DType T>
  DSN_TARGET_AVX2 static __m256 load(const void* base, int64_t i) {
    if constexpr (T == DType::f32) {
      return _mm256_loadu_ps(static_cast<const float*>(base) + i);
    } else if constexpr (T == DType::bf16) {
      __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
      return floats(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else if constexpr (T == DType::f16) {
      __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
      __m256 v = _mm256_cvtph_ps(h);
      // dtype.h keeps a NaN's payload as it is (the hardware would set the quiet bit).
      __m256i w = _mm256_cvtepu16_epi32(h);
      __m256i mag = _mm256_and_si256(w, _mm256_set1_epi32(0x7fff));
      __m256i nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7c00));
      __m256i nanBits = _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x8000)), 16),
                                        _mm256_or_si256(_mm256_set1_epi32(0x7f800000), _mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x3ff)), 13)));
      return _mm256_blendv_ps(v, floats(nanBits), floats(nan));
    } else {
      return decodeF8(_mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(base) + i))));
    }
  }

  /** 8 E4M3 codes, sign-extended to 16-bit lanes, as f32, exactly through f16: the code's magnitude
   *  shifted into an f16's exponent and mantissa fields is 2^-8 times its value (subnormals
   *  included), vcvtph2ps widens it and × 2^8 restores it; a few instructions, no table, never an
   *  f32 subnormal (a microcode assist per operation on Intel cores). NaN codes, ±480 by then, give
   *  dtype.h's ±quiet NaN. */
  DSN_TARGET_AVX2 static __m256 decodeF8(__m128i x16) {
    const __m128i h = _mm_and_si128(_mm_slli_epi16(x16, 7), _mm_set1_epi16(int16_t(0xbf80)));
    const __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
    const __m256 nan = _mm256_cmp_ps(abs(v), _mm256_set1_ps(480.0f), _CMP_EQ_OQ);
    const __m256 quiet = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), floats(_mm256_set1_epi32(0x7fc00000)));
    return _mm256_blendv_ps(v, quiet, nan);
  }

  /** Packs 8 int32 lanes holding values in [0, 65535] into 8 uint16. */
  DSN_TARGET_AVX2 static __m128i pack16(__m256i v) {
    return _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  }

  /** 8 elements to element i, rounded as dtype.h rounds. */
  template <DType T>
  DSN_TARGET_AVX2 static void store(void* base, int64_t i, __m256 v) {
    if constexpr (T == DType::f32) {
      _mm256_storeu_ps(static_cast<float*>(base) + i, v);
    } else if constexpr (T == DType::bf16) {
      __m256i u = bits(v);
      __m256i absu = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
      __m256i nan = _mm256_cmpgt_epi32(absu, _mm256_set1_epi32(0x7f800000));
      __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
      __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
      __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
      __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(base) + i), pack16(r));
    } else if constexpr (T == DType::f16) {
      __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      __m256i u = bits(v);
      __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
      __m256i nanBits = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x8000)), _mm256_set1_epi32(0x7e00));
      __m128i nanMask = _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extracti128_si256(nan, 1));
      h = _mm_blendv_epi8(h, pack16(nanBits), nanMask);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(base) + i), h);
    } else {
      __m256i u = bits(v);
      __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
      __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
      __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(a, 20), _mm256_set1_epi32(1));
      __m256i normal = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_add_epi32(a, _mm256_add_epi32(_mm256_set1_epi32(0x7ffff), lsb)), 20),
                                        _mm256_set1_epi32(120 << 3));
      // Below 2^-6 the code is a multiple of 2^-9: adding 16384 (ulp 2^-9) rounds it (RNE).
      __m256i sub = _mm256_sub_epi32(bits(_mm256_add_ps(floats(a), _mm256_set1_ps(16384.0f))), _mm256_set1_epi32(int(f32Bits(16384.0f))));
      __m256i r = _mm256_blendv_epi8(normal, sub, _mm256_cmpgt_epi32(_mm256_set1_epi32(0x3c800000), a));
      r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7e), _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x43dfffff)));
      r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7f), _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000)));
      r = _mm256_or_si256(r, sign);
      __m128i p16 = pack16(r);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(static_cast<uint8_t*>(base) + i), _mm_packus_epi16(p16, p16));
    }
  }

  /** The first n < 8 elements from element i (the other lanes 0). */
  template <DType T>
  DSN_TARGET_AVX2 static __m256 loadPart(const void* base, int64_t i, int64_t n) {
    alignas(32) unsigned char buf[32] = {};
    std::memcpy(buf, at(base, T, i), size_t(n) * dtypeSize(T));
    return load<T>(buf, 0);
  }

  /** The first n < 8 lanes of v to elements i … i + n − 1. */
  template <DType T>
  DSN_TARGET_AVX2 static void storePart(void* base, int64_t i, __m256 v, int64_t n) {
    alignas(32) unsigned char buf[32];
    store<T>(buf, 0, v);
    std::memcpy(at(base, T, i), buf, size_t(n) * dtypeSize(T));
  }

  /** store<T>, bypassing the caches (non-temporal); the address of element i must be aligned to
   *  the 8 elements' size (32, 16 or 8 bytes). Call _mm_sfence() after the last one. */
  template <DType T>
  DSN_TARGET_AVX2 static void storeStream(void* base, int64_t i, __m256 v) {
    if constexpr (T == DType::f32) {
      _mm256_stream_ps(static_cast<float*>(base) + i, v);
    } else {
      alignas(32) unsigned char buf[16];
      store<T>(buf, 0, v);
      if constexpr (T == DType::f8e4m3) {
        long long w;
        std::memcpy(&w, buf, 8);
        _mm_stream_si64(reinterpret_cast<long long*>(static_cast<uint8_t*>(base) + i), w);
      } else {
        _mm_stream_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(base) + i), _mm_load_si128(reinterpret_cast<const __m128i*>(buf)));
      }
    }
  }

  DSN_TARGET_AVX2 static __m256 exp(__m256 x) {
    using namespace expconst;
    x = _mm256_max_ps(_mm256_set1_ps(kExpLo), _mm256_min_ps(_mm256_set1_ps(kExpHi), x));  // NaN passes
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), _mm256_set1_ps(kRound));
    __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(kRound));
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Hi), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Lo), r);
    __m256 p = _mm256_set1_ps(kC[7]);
    for (int k = 6; k >= 0; --k) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC[k]));
    __m256i e = _mm256_sub_epi32(bits(t), _mm256_set1_epi32(int(f32Bits(kRound))));
    __m256i e1 = _mm256_srai_epi32(e, 1), e2 = _mm256_sub_epi32(e, e1);
    const __m256i bias = _mm256_set1_epi32(127);
    p = _mm256_mul_ps(p, floats(_mm256_slli_epi32(_mm256_add_epi32(e1, bias), 23)));
    return opaque(_mm256_mul_ps(p, floats(_mm256_slli_epi32(_mm256_add_epi32(e2, bias), 23))));
  }

  DSN_TARGET_AVX2 static __m256 neg(__m256 x) { return _mm256_xor_ps(x, _mm256_set1_ps(-0.0f)); }
  DSN_TARGET_AVX2 static __m256 sigmoid(__m256 x) {
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp(neg(x))));
  }
  DSN_TARGET_AVX2 static __m256 silu(__m256 x) {
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp(neg(x))));
  }
};

/** AVX-512: 16 lanes. */
struct Avx512 {
  using F = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kRegisters = 32;
  static constexpr Simd kLevel = Simd::Avx512;
  DSN_TARGET_AVX512 static F zero() { return _mm512_setzero_ps(); }
  DSN_TARGET_AVX512 static F set1(float x) { return _mm512_set1_ps(x); }
  DSN_TARGET_AVX512 static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  DSN_TARGET_AVX512 static F max(F a, F b) { return _mm512_max_ps(a, b); }
  DSN_TARGET_AVX512 static F min(F a, F b) { return _mm512_min_ps(a, b); }
  DSN_TARGET_AVX512 static F abs(F a) { return _mm512_abs_ps(a); }
  DSN_TARGET_AVX512 static F selectGreater(F x, F y, F a, F b) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, y, _CMP_GT_OQ), b, a); }
  DSN_TARGET_AVX512 static F iota() { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  DSN_TARGET_AVX512 static void toArray(float* dst, F v) { _mm512_storeu_ps(dst, v); }
  DSN_TARGET_AVX512 static void streamFence() { _mm_sfence(); }
  /** GCC's _mm512_reduce_add_ps: halves added down to one lane. */
  DSN_TARGET_AVX512 static float reduceAdd(F v) { return _mm512_reduce_add_ps(v); }
  DSN_TARGET_AVX512 static void deinterleave(F x0, F x1, F& even, F& odd) {
    even = _mm512_permutex2var_ps(x0, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), x1);
    odd = _mm512_permutex2var_ps(x0, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), x1);
  }
  /** 32 bf16 read as 16 dwords: dword << 16 is the even k's f32, dword & 0xffff0000 the odd k's. */
  DSN_TARGET_AVX512 static void loadBf16Pairs(const uint16_t* p, F& even, F& odd) {
    const __m512i w = _mm512_loadu_si512(p);
    even = floats(_mm512_slli_epi32(w, 16));
    odd = floats(_mm512_and_si512(w, _mm512_set1_epi32(int(0xffff0000u))));
  }
  /** Transposes 16 vectors of 16 dwords: out[c] lane i = r[i] lane c. */
  DSN_TARGET_AVX512 static void transpose16(const __m512i* r, __m512i* out) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    // u[4g + q]: rows 4g…4g+3 of column 4L + q in 128-bit lane L.
    for (int g = 0; g < 4; ++g) {
      u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
      u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
      u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
      u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int q = 0; q < 4; ++q) {
      const __m512i v0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x88), v1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xdd);
      const __m512i v2 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x88), v3 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xdd);
      out[q] = _mm512_shuffle_i32x4(v0, v2, 0x88);
      out[8 + q] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
      out[4 + q] = _mm512_shuffle_i32x4(v1, v3, 0x88);
      out[12 + q] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
    }
  }
  DSN_TARGET_AVX512 static void transpose(F* r) {
    __m512i in[16], out[16];
    for (int i = 0; i < 16; ++i) in[i] = bits(r[i]);
    transpose16(in, out);
    for (int i = 0; i < 16; ++i) r[i] = floats(out[i]);
  }




  DSN_TARGET_AVX512 static __mmask16 firstLanes(int64_t n) { return __mmask16((1u << n) - 1u); }
  DSN_TARGET_AVX512 static __m512i bits(__m512 v) { return _mm512_castps_si512(v); }
  DSN_TARGET_AVX512 static __m512 floats(__m512i v) { return _mm512_castsi512_ps(v); }

  /** Widens 16 raw values (in the low bits of 32-bit lanes, or packed for f16) to f32. */
  template <DType T>
  DSN_TARGET_AVX512 static __m512 decode(__m256i h16, __m128i c8) {
    if constexpr (T == DType::bf16) {
      (void)c8;
      return floats(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h16), 16));
    } else if constexpr (T == DType::f16) {
      (void)c8;
      __m512 v = _mm512_cvtph_ps(h16);
      __m512i w = _mm512_cvtepu16_epi32(h16);
      __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(w, _mm512_set1_epi32(0x7fff)), _mm512_set1_epi32(0x7c00));
      __m512i nanBits = _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(w, _mm512_set1_epi32(0x8000)), 16),
                                        _mm512_or_si512(_mm512_set1_epi32(0x7f800000), _mm512_slli_epi32(_mm512_and_si512(w, _mm512_set1_epi32(0x3ff)), 13)));
      return _mm512_mask_blend_ps(nan, v, floats(nanBits));
    } else {
      // E4M3 exactly through f16, as Avx2::decodeF8.
      (void)h16;
      const __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(c8), 7), _mm256_set1_epi16(int16_t(0xbf80)));
      const __m512 v = _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
      const __mmask16 nan = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(480.0f), _CMP_EQ_OQ);
      const __m512 quiet = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), floats(_mm512_set1_epi32(0x7fc00000)));
      return _mm512_mask_mov_ps(v, nan, quiet);
    }
  }

  /** 16 elements from element i. */
  template <DType T>
  DSN_TARGET_AVX512 static __m512 load(const void* base, int64_t i) {
    if constexpr (T == DType::f32) {
      return _mm512_loadu_ps(static_cast<const float*>(base) + i);
    } else if constexpr (T == DType::bf16 || T == DType::f16) {
      return decode<T>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)), _mm_setzero_si128());
    } else {
      return decode<T>(_mm256_setzero_si256(), _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(base) + i)));
    }
  }

  /** The first n ≤ 16 elements from element i (the other lanes 0); reads nothing past them. */
  template <DType T>
  DSN_TARGET_AVX512 static __m512 loadPart(const void* base, int64_t i, int64_t n) {
    __mmask16 m = firstLanes(n);
    if constexpr (T == DType::f32) {
      return _mm512_maskz_loadu_ps(m, static_cast<const float*>(base) + i);
    } else if constexpr (T == DType::bf16 || T == DType::f16) {
      return decode<T>(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + i), _mm_setzero_si128());
    } else {
      return decode<T>(_mm256_setzero_si256(), _mm_maskz_loadu_epi8(m, static_cast<const uint8_t*>(base) + i));
    }
  }

  /** Rounds 16 lanes to dtype T's raw codes (bf16/f16 as 16-bit lanes, f8 as bytes, in the low part). */
  template <DType T>
  DSN_TARGET_AVX512 static __m256i encode16(__m512 v) {
    __m512i u = bits(v);
    if constexpr (T == DType::bf16) {
      const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      const __m512i hi = _mm512_srli_epi32(u, 16);
      // u + 0x7fff + lsb: ties to even; a NaN keeps its top bits with the quiet bit set.
      __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
      r = _mm512_mask_or_epi32(_mm512_srli_epi32(r, 16), nan, hi, _mm512_set1_epi32(0x40));
      return _mm512_cvtepi32_epi16(r);
    } else {
      static_assert(T == DType::f16, "encode16 handles the 16-bit float types");
      __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      __m512i nanBits = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x8000)), _mm512_set1_epi32(0x7e00));
      return _mm256_mask_blend_epi16(nan, h, _mm512_cvtepi32_epi16(nanBits));
    }
  }

  DSN_TARGET_AVX512 static __m128i encodeF8(__m512 v) {
    __m512i u = bits(v);
    __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(a, 20), _mm512_set1_epi32(1));
    __m512i r = _mm512_sub_epi32(_mm512_srli_epi32(_mm512_add_epi32(a, _mm512_add_epi32(_mm512_set1_epi32(0x7ffff), lsb)), 20),
                                 _mm512_set1_epi32(120 << 3));
    __m512i sub = _mm512_sub_epi32(bits(_mm512_add_ps(floats(a), _mm512_set1_ps(16384.0f))), _mm512_set1_epi32(int(f32Bits(16384.0f))));
    r = _mm512_mask_blend_epi32(_mm512_cmplt_epi32_mask(a, _mm512_set1_epi32(0x3c800000)), r, sub);
    r = _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x43dfffff)), r, _mm512_set1_epi32(0x7e));
    r = _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7f800000)), r, _mm512_set1_epi32(0x7f));
    return _mm512_cvtepi32_epi8(_mm512_or_si512(r, sign));
  }

  /** 16 elements to element i, rounded as dtype.h rounds. */
  template <DType T>
  DSN_TARGET_AVX512 static void store(void* base, int64_t i, __m512 v) {
    if constexpr (T == DType::f32) {
      _mm512_storeu_ps(static_cast<float*>(base) + i, v);
    } else if constexpr (T == DType::bf16 || T == DType::f16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(base) + i), encode16<T>(v));
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint8_t*>(base) + i), encodeF8(v));
    }
  }

  /** store<T>, bypassing the caches (non-temporal); the address of element i must be aligned to
   *  the 16 elements' size (64, 32 or 16 bytes). Call _mm_sfence() after the last one. */
  template <DType T>
  DSN_TARGET_AVX512 static void storeStream(void* base, int64_t i, __m512 v) {
    if constexpr (T == DType::f32) {
      _mm512_stream_ps(static_cast<float*>(base) + i, v);
    } else if constexpr (T == DType::bf16 || T == DType::f16) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(base) + i), encode16<T>(v));
    } else {
      _mm_stream_si128(reinterpret_cast<__m128i*>(static_cast<uint8_t*>(base) + i), encodeF8(v));
    }
  }

  /** The first n ≤ 16 lanes of v to elements i … i + n − 1; writes nothing past them. */
  template <DType T>
  DSN_TARGET_AVX512 static void storePart(void* base, int64_t i, __m512 v, int64_t n) {
    __mmask16 m = firstLanes(n);
    if constexpr (T == DType::f32) {
      _mm512_mask_storeu_ps(static_cast<float*>(base) + i, m, v);
    } else if constexpr (T == DType::bf16 || T == DType::f16) {
      _mm256_mask_storeu_epi16(static_cast<uint16_t*>(base) + i, m, encode16<T>(v));
    } else {
      _mm_mask_storeu_epi8(static_cast<uint8_t*>(base) + i, m, encodeF8(v));
    }
  }

  DSN_TARGET_AVX512 static __m512 exp(__m512 x) {
    using namespace expconst;
    x = _mm512_max_ps(_mm512_set1_ps(kExpLo), _mm512_min_ps(_mm512_set1_ps(kExpHi), x));  // NaN passes
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(kLog2e), _mm512_set1_ps(kRound));
    __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(kRound));
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Hi), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Lo), r);
    __m512 p = _mm512_set1_ps(kC[7]);
    for (int k = 6; k >= 0; --k) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC[k]));
    return _mm512_scalef_ps(p, n);  // p · 2^n with one rounding (an instruction the compiler never fuses)
  }

  DSN_TARGET_AVX512 static __m512 neg(__m512 x) { return _mm512_castsi512_ps(_mm512_xor_si512(bits(x), _mm512_set1_epi32(int(0x80000000u)))); }
  DSN_TARGET_AVX512 static __m512 sigmoid(__m512 x) {
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp(neg(x))));
  }
  DSN_TARGET_AVX512 static __m512 silu(__m512 x) {
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp(neg(x))));
  }
};

// The dtype-templated members, callable without `V::template` in kernel bodies.
template <class V, DType T> inline typename V::F load(const void* base, int64_t i) { return V::template load<T>(base, i); }
/** The first n ≤ kLanes elements (the other lanes 0); reads nothing past them. */
template <class V, DType T> inline typename V::F loadPart(const void* base, int64_t i, int64_t n) { return V::template loadPart<T>(base, i, n); }
template <class V, DType T> inline void store(void* base, int64_t i, typename V::F v) { V::template store<T>(base, i, v); }
/** The first n ≤ kLanes lanes; writes nothing past them. */
template <class V, DType T> inline void storePart(void* base, int64_t i, typename V::F v, int64_t n) { V::template storePart<T>(base, i, v, n); }
/** Non-temporal store; element i's address aligned to the lanes' size; V::streamFence() after the last. */
template <class V, DType T> inline void storeStream(void* base, int64_t i, typename V::F v) { V::template storeStream<T>(base, i, v); }

// ===================================== dispatch =====================================

/** OnTarget<V>::run<K>(args) = K::run<V>(args), compiled for V's target with every call inlined. */
template <class V> struct OnTarget;
template <> struct OnTarget<Scalar> {
  template <class K, class... A> __attribute__((flatten)) static auto run(A&&... a) { return K::template run<Scalar>(std::forward<A>(a)...); }
};
template <> struct OnTarget<Avx2> {
  template <class K, class... A> DSN_TARGET_AVX2 __attribute__((flatten)) static auto run(A&&... a) { return K::template run<Avx2>(std::forward<A>(a)...); }
};
template <> struct OnTarget<Avx512> {
  template <class K, class... A> DSN_TARGET_AVX512 __attribute__((flatten)) static auto run(A&&... a) { return K::template run<Avx512>(std::forward<A>(a)...); }
};

/** Runs kernel K (a struct with `template <class V> static R run(args)`) on the SIMD path `level`. */
template <class K, class... A>
inline auto runOn(Simd level, A&&... a) {
  switch (level) {
    case Simd::Avx512: return OnTarget<Avx512>::template run<K>(std::forward<A>(a)...);
    case Simd::Avx2: return OnTarget<Avx2>::template run<K>(std::forward<A>(a)...);
    default: return OnTarget<Scalar>::template run<K>(std::forward<A>(a)...);
  }
}

/** Calls f(std::integral_constant<DType, T>{}) for the float dtype t (f32, bf16, f16, f8e4m3). */
template <typename F>
inline void withFloatType(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(std::integral_constant<DType, DType::f32>{}); break;
    case DType::bf16: f(std::integral_constant<DType, DType::bf16>{}); break;
    case DType::f16: f(std::integral_constant<DType, DType::f16>{}); break;
    case DType::f8e4m3: f(std::integral_constant<DType, DType::f8e4m3>{}); break;
    default: break;
  }
}

/** Outputs at least this large are written with non-temporal stores: they cannot stay in the
 *  caches anyway, and skipping the read-for-ownership saves a third of the memory traffic. */
constexpr int64_t kStreamBytes = int64_t(16) << 20;

/** Elements before `dst` reaches a 64-byte boundary (elements of `size` bytes). */
inline int64_t headToAlign(const void* dst, size_t size, int64_t n) {
  const int64_t mis = int64_t(reinterpret_cast<uintptr_t>(dst) & 63);
  const int64_t head = mis == 0 || mis % int64_t(size) ? 0 : (64 - mis) / int64_t(size);
  return head < n ? head : n;
}

}  // namespace dsn::cpu
