// Params of the element-wise family (add, mul, silu, scale) and the layout copies (slice, concat,
// transpose): used by native/cpu/elementwise.cc, native/cpu/layout.cc and cuda/elementwise.cu alike.
// Plain data (pointers are device pointers of the op's device); g++ and nvcc both compile this header.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"

namespace dsn {

enum class BinaryKind : uint8_t { Add, Mul };
/** out[i] = a[i] op b[i] (or b[i % period]) in f32, rounded once to outType. */
struct BinaryParams {
  const void* a = nullptr;  // [n], dtype aType (f32, bf16)
  DType aType = DType::f32;
  const void* b = nullptr;  // [n], or [period] repeated along a when period > 0; dtype bType
  DType bType = DType::f32;
  void* out = nullptr;      // [n], dtype outType
  DType outType = DType::f32;
  int64_t n = 0;
  int64_t period = 0;       // 0: b has n elements; else b has `period` (a's last dim) elements
  BinaryKind kind = BinaryKind::Add;
};

enum class UnaryKind : uint8_t { Silu, Scale };
/** out[i] = silu(x[i]) or x[i] · scale in f32, rounded once to outType. */
struct UnaryParams {
  const void* x = nullptr;  // [n], dtype xType (f32, bf16)
  DType xType = DType::f32;
  void* out = nullptr;      // [n], dtype outType
  DType outType = DType::f32;
  int64_t n = 0;
  float scale = 1.0f;       // Scale: the factor
  UnaryKind kind = UnaryKind::Silu;
};

/** `rows` blocks of rowBytes bytes copied from src (rows srcStride bytes apart) to dst (dstStride
 *  apart): a slice, or one part of a concat. */
struct CopyStridedParams {
  void* dst = nullptr;
  int64_t dstStride = 0;
  const void* src = nullptr;
  int64_t srcStride = 0;
  int64_t rows = 0;
  int64_t rowBytes = 0;
};

/** y[o, j, m, i, :] = x[o, i, m, j, :]: two dimensions swapped (a == b's sizes may differ). */
struct TransposeParams {
  const void* x = nullptr;  // [outer, a, mid, b, inner] elements of elemBytes
  void* y = nullptr;        // [outer, b, mid, a, inner]
  int64_t outer = 1, a = 1, mid = 1, b = 1, inner = 1;
  int64_t elemBytes = 4;
};

}  // namespace dsn
