// cuda-emu: the CUDA half, bfloat16 and FP8 (E4M3, E5M2) types and the intrinsics our kernels use,
// for host C++. Conversions are written from the IEEE-754 definitions (one rounding of the exact
// value, round-to-nearest-even), not from native/runtime/dtype.h, so the emulated kernels are not
// checked against the code they are compared with.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "emu_vector.h"

namespace cuda_emu::fp {

/** Rounds v (exact double) to a binary format with `mant` stored mantissa bits and minimum normal
 *  exponent `emin` (subnormals below), round-to-nearest-even; no overflow handling. */
inline double roundToFormat(double v, int mant, int emin) {
  if (v == 0 || !std::isfinite(v)) return v;
  int e;
  std::frexp(v, &e);  // |v| = m * 2^e, m in [0.5, 1): leading bit has exponent e - 1
  int lead = e - 1 < emin ? emin : e - 1;
  double quantum = std::ldexp(1.0, lead - mant);
  return std::nearbyint(v / quantum) * quantum;  // default rounding mode: to nearest, ties to even
}

/** Encodes an exactly representable finite value (or inf/nan) into bits of a format. */
inline uint32_t encode(double v, int expBits, int mant, bool hasInf) {
  const int bias = (1 << (expBits - 1)) - 1;
  uint32_t sign = std::signbit(v) ? 1u : 0u;
  uint32_t out;
  double a = std::fabs(v);
  if (std::isnan(v)) {
    out = hasInf ? ((((1u << expBits) - 1) << mant) | (1u << (mant - 1))) : ((1u << (expBits + mant)) - 1);
  } else if (std::isinf(v)) {
    out = ((1u << expBits) - 1) << mant;
  } else if (a == 0) {
    out = 0;
  } else {
    int e;
    double m = std::frexp(a, &e);  // a = m * 2^e
    int exp = e - 1 + bias;
    if (exp <= 0) {  // subnormal: a = man * 2^(1 - bias - mant)
      out = uint32_t(std::ldexp(a, mant - 1 + bias));
    } else {
      out = (uint32_t(exp) << mant) | (uint32_t(std::ldexp(m * 2 - 1, mant)) & ((1u << mant) - 1));
    }
  }
  return (sign << (expBits + mant)) | out;
}

inline double decode(uint32_t bits, int expBits, int mant, bool hasInf) {
  const int bias = (1 << (expBits - 1)) - 1;
  uint32_t sign = (bits >> (expBits + mant)) & 1u;
  uint32_t exp = (bits >> mant) & ((1u << expBits) - 1), man = bits & ((1u << mant) - 1);
  double v;
  if (hasInf && exp == (1u << expBits) - 1) v = man ? NAN : INFINITY;
  else if (!hasInf && exp == (1u << expBits) - 1 && man == (1u << mant) - 1) v = NAN;
  else if (exp == 0) v = std::ldexp(double(man), 1 - bias - mant);
  else v = std::ldexp(double(man | (1u << mant)), int(exp) - bias - mant);
  return sign ? -v : v;
}

// bf16: 8 exponent bits, 7 mantissa bits, emin -126, max finite (2 - 2^-7) * 2^127.
inline uint16_t toBf16(float f) {
  double r = roundToFormat(double(f), 7, -126);
  if (std::isfinite(r) && std::fabs(r) >= std::ldexp(1.0, 128)) r = std::copysign(INFINITY, r);
  return uint16_t(encode(r, 8, 7, true));
}
/** decode() of every code of a small format, computed once: the emulated kernels decode operands
 *  millions of times, and ldexp per value dominated the emulator's time. */
template <int kCodes>
struct DecodeTable {
  float v[kCodes];
  DecodeTable(int expBits, int mant, bool hasInf) {
    for (int c = 0; c < kCodes; ++c) v[c] = float(decode(uint32_t(c), expBits, mant, hasInf));
  }
};
inline float fromBf16(uint16_t b) {
  static const DecodeTable<65536> table(8, 7, true);
  return table.v[b];
}
// IEEE half: 5 exponent bits, 10 mantissa bits, emin -14, overflow (>= 65520 before rounding) to inf.
inline uint16_t toHalf(float f) {
  double r = roundToFormat(double(f), 10, -14);
  if (std::isfinite(r) && std::fabs(r) >= 65536.0) r = std::copysign(INFINITY, r);
  return uint16_t(encode(r, 5, 10, true));
}
inline float fromHalf(uint16_t h) {
  static const DecodeTable<65536> table(5, 10, true);
  return table.v[h];
}
// E4M3 (fn): 4 exponent bits, 3 mantissa bits, bias 7, no infinities, NaN = S.1111.111, max 448.
// CUDA's __nv_fp8_e4m3(float) converts with __NV_SATFINITE: out-of-range values clamp to ±448.
inline uint8_t toE4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  double r = roundToFormat(double(f), 3, -6);
  if (std::fabs(r) > 448.0) r = std::copysign(448.0, r);
  return uint8_t(encode(r, 4, 3, false));
}
inline float fromE4m3(uint8_t c) {
  static const DecodeTable<256> table(4, 3, false);
  return table.v[c];
}
// E5M2: 5 exponent bits, 2 mantissa bits, IEEE-like with infinities; saturating to ±57344.
inline uint8_t toE5m2(float f) {
  if (std::isnan(f)) return 0x7f;
  double r = roundToFormat(double(f), 2, -14);
  if (std::fabs(r) > 57344.0) r = std::copysign(57344.0, r);
  return uint8_t(encode(r, 5, 2, true));
}
inline float fromE5m2(uint8_t c) { return float(decode(c, 5, 2, true)); }

}  // namespace cuda_emu::fp

struct __nv_bfloat16 {
  uint16_t __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(cuda_emu::fp::toBf16(f)) {}
  __nv_bfloat16(double f) : __x(cuda_emu::fp::toBf16(float(f))) {}
  __nv_bfloat16(int v) : __x(cuda_emu::fp::toBf16(float(v))) {}
  operator float() const { return cuda_emu::fp::fromBf16(__x); }
};
struct __half {
  uint16_t __x;
  __half() = default;
  __half(float f) : __x(cuda_emu::fp::toHalf(f)) {}
  __half(double f) : __x(cuda_emu::fp::toHalf(float(f))) {}
  __half(int v) : __x(cuda_emu::fp::toHalf(float(v))) {}
  operator float() const { return cuda_emu::fp::fromHalf(__x); }
};
struct alignas(4) __nv_bfloat162 { __nv_bfloat16 x, y; };
struct alignas(4) __half2 { __half x, y; };
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;
typedef __half half;
typedef __half2 half2;

struct __nv_fp8_e4m3 {
  uint8_t __x;
  __nv_fp8_e4m3() = default;
  explicit __nv_fp8_e4m3(float f) : __x(cuda_emu::fp::toE4m3(f)) {}
  explicit __nv_fp8_e4m3(double f) : __x(cuda_emu::fp::toE4m3(float(f))) {}
  explicit __nv_fp8_e4m3(__nv_bfloat16 f) : __x(cuda_emu::fp::toE4m3(float(f))) {}
  explicit __nv_fp8_e4m3(__half f) : __x(cuda_emu::fp::toE4m3(float(f))) {}
  explicit operator float() const { return cuda_emu::fp::fromE4m3(__x); }
};
struct __nv_fp8_e5m2 {
  uint8_t __x;
  __nv_fp8_e5m2() = default;
  explicit __nv_fp8_e5m2(float f) : __x(cuda_emu::fp::toE5m2(f)) {}
  explicit operator float() const { return cuda_emu::fp::fromE5m2(__x); }
};
typedef uint8_t __nv_fp8_storage_t;
typedef uint16_t __nv_fp8x2_storage_t;

inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return {__nv_bfloat16(v.x), __nv_bfloat16(v.y)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {float(v.x), float(v.y)}; }
inline float __low2float(__nv_bfloat162 v) { return float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return float(v.y); }
inline __nv_bfloat162 make_bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return {a, b}; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 h; h.__x = u; return h; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline float __half2float(__half h) { return float(h); }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half2 __floats2half2_rn(float a, float b) { return {__half(a), __half(b)}; }
inline float __low2float(__half2 v) { return float(v.x); }
inline float __high2float(__half2 v) { return float(v.y); }
inline __half __ushort_as_half(unsigned short u) { __half h; h.__x = u; return h; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16(float(a) * float(b)); }
inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16(float(a) + float(b)); }
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) { return __nv_bfloat16(std::fma(float(a), float(b), float(c))); }
inline __half __hmul(__half a, __half b) { return __half(float(a) * float(b)); }
inline __half __hadd(__half a, __half b) { return __half(float(a) + float(b)); }
/** Converts an f32 to E4M3 storage; saturate is __NV_SATFINITE or __NV_NOSAT. */
enum __nv_saturation_t { __NV_NOSAT, __NV_SATFINITE };
enum __nv_fp8_interpretation_t { __NV_E4M3, __NV_E5M2 };
inline __nv_fp8_storage_t __nv_cvt_float_to_fp8(float f, __nv_saturation_t, __nv_fp8_interpretation_t t) {
  return t == __NV_E4M3 ? cuda_emu::fp::toE4m3(f) : cuda_emu::fp::toE5m2(f);
}
