// Element types of a Tensor and the scalar conversions every backend agrees on.
//
// Rounding is round-to-nearest-even everywhere. FP8 is E4M3 "fn" (no infinities, NaN = 0x7f/0xff,
// largest finite 448); conversion to it saturates at ±448, as the reference clamps before casting.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace dsn {

enum class DType : int { f32 = 0, bf16, f16, f8e4m3, i32, i64, u8 };

inline size_t dtypeSize(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: return 2;
    case DType::f8e4m3: case DType::u8: return 1;
    case DType::i64: return 8;
  }
  return 0;
}

inline const char* dtypeName(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::f8e4m3: return "f8e4m3";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
  }
  return "?";
}

/** Parses a dtype name; returns false when the name is unknown. */
inline bool parseDtype(const std::string& s, DType* out) {
  static const DType all[] = {DType::f32, DType::bf16, DType::f16, DType::f8e4m3, DType::i32, DType::i64, DType::u8};
  for (DType t : all)
    if (s == dtypeName(t)) { *out = t; return true; }
  return false;
}

inline uint32_t f32Bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float bitsF32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// ---- bfloat16 ----
inline float bf16ToF32(uint16_t h) { return bitsF32(uint32_t(h) << 16); }
inline uint16_t f32ToBf16(float f) {
  uint32_t u = f32Bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
/** Rounds an f32 to the nearest bf16 value, kept in f32. */
inline float roundBf16(float f) { return bf16ToF32(f32ToBf16(f)); }

// ---- IEEE half ----
inline float f16ToF32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  if (exp == 0x1f) return bitsF32(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    float v = std::ldexp(float(man), -24);
    return sign ? -v : v;
  }
  return bitsF32(sign | ((exp + 112) << 23) | (man << 13));
}
inline uint16_t f32ToF16(float f) {
  uint32_t u = f32Bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: infinity
  if (a < 0x38800000u) {                                  // below 2^-14: subnormal half
    // Adding 0.5 makes the hardware round the value to a multiple of 2^-24 (RNE).
    float r = bitsF32(a) + 0.5f;
    return uint16_t(sign | uint16_t(f32Bits(r) - f32Bits(0.5f)));
  }
  a += 0xfffu + ((a >> 13) & 1u);
  return uint16_t(sign | uint16_t((a - (112u << 23)) >> 13));
}

// ---- FP8 E4M3 (fn) ----
inline float f8e4m3ToF32(uint8_t c) {
  uint32_t sign = uint32_t(c & 0x80u) << 24;
  uint32_t exp = (c >> 3) & 0xf, man = c & 0x7u;
  if (exp == 0xf && man == 0x7) return bitsF32(sign | 0x7fc00000u);
  if (exp == 0) {
    float v = std::ldexp(float(man), -9);
    return sign ? -v : v;
  }
  return bitsF32(sign | ((exp + 120) << 23) | (man << 20));
}
/** f32 -> E4M3 with round-to-nearest-even, saturating to ±448; NaN stays NaN. */
inline uint8_t f32ToF8e4m3(float f) {
  uint32_t u = f32Bits(f);
  uint8_t sign = uint8_t((u >> 24) & 0x80u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint8_t(sign | 0x7f);
  if (a >= 0x43e00000u) return uint8_t(sign | 0x7e);  // >= 448
  if (a < 0x3c800000u) {                              // below 2^-6: subnormal, multiples of 2^-9
    float r = bitsF32(a) + 16384.0f;                  // ulp(16384) = 2^-9: the add rounds (RNE)
    return uint8_t(sign | uint8_t(f32Bits(r) - f32Bits(16384.0f)));
  }
  a += 0x7ffffu + ((a >> 20) & 1u);
  return uint8_t(sign | uint8_t((a >> 20) - (120u << 3)));
}

}  // namespace dsn
