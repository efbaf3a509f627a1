// Row conversions between storage dtypes and f32 working buffers, used by every CPU kernel that
// computes in f32 (norms, casts, activations). Plain loops the compiler vectorises.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"

namespace dsn::cpu {

/** dst[i] = float(src[i]) for n elements of `type` (f32, bf16, f16, f8e4m3). */
inline void loadF32(const void* src, DType type, int64_t n, float* dst) {
  switch (type) {
    case DType::f32: { auto* s = static_cast<const float*>(src); for (int64_t i = 0; i < n; ++i) dst[i] = s[i]; break; }
    case DType::bf16: { auto* s = static_cast<const uint16_t*>(src); for (int64_t i = 0; i < n; ++i) dst[i] = bf16ToF32(s[i]); break; }
    case DType::f16: { auto* s = static_cast<const uint16_t*>(src); for (int64_t i = 0; i < n; ++i) dst[i] = f16ToF32(s[i]); break; }
    case DType::f8e4m3: { auto* s = static_cast<const uint8_t*>(src); for (int64_t i = 0; i < n; ++i) dst[i] = f8e4m3ToF32(s[i]); break; }
    default: break;
  }
}

/** dst[i] = type(src[i]) with round-to-nearest-even (f8e4m3 saturates at ±448). */
inline void storeF32(const float* src, DType type, int64_t n, void* dst) {
  switch (type) {
    case DType::f32: { auto* d = static_cast<float*>(dst); for (int64_t i = 0; i < n; ++i) d[i] = src[i]; break; }
    case DType::bf16: { auto* d = static_cast<uint16_t*>(dst); for (int64_t i = 0; i < n; ++i) d[i] = f32ToBf16(src[i]); break; }
    case DType::f16: { auto* d = static_cast<uint16_t*>(dst); for (int64_t i = 0; i < n; ++i) d[i] = f32ToF16(src[i]); break; }
    case DType::f8e4m3: { auto* d = static_cast<uint8_t*>(dst); for (int64_t i = 0; i < n; ++i) d[i] = f32ToF8e4m3(src[i]); break; }
    default: break;
  }
}

/** Pointer to element `index` of a buffer of `type`. */
inline const void* at(const void* base, DType type, int64_t index) {
  return static_cast<const char*>(base) + index * int64_t(dtypeSize(type));
}
inline void* at(void* base, DType type, int64_t index) {
  return static_cast<char*>(base) + index * int64_t(dtypeSize(type));
}

}  // namespace dsn::cpu
