// Params of cast, used by native/cpu/cast.cc and cuda/cast.cu alike. Plain data; g++ and nvcc both
// compile this header.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"

namespace dsn {

/** Element-wise conversion between f32, bf16, f16 and f8e4m3 (round-to-nearest-even, f8 saturating). */
struct CastParams {
  /** Input, n elements, dtype `from`. */
  const void* x = nullptr;
  /** Dtype of x: f32, bf16, f16 or f8e4m3. */
  DType from = DType::f32;
  /** Output, n elements, dtype `to`. */
  void* y = nullptr;
  /** Dtype of y: f32, bf16, f16 or f8e4m3. */
  DType to = DType::f32;
  /** Number of elements. */
  int64_t n = 0;
};

}  // namespace dsn
