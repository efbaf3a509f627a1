// CPU RMSNorm and LayerNorm over the last dimension. Math in f32, output rounded to its dtype.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct RmsNormParams {
  const void* x = nullptr;          // [rows, dim], dtype xType (f32, bf16, f16)
  DType xType = DType::f32;
  const void* residual = nullptr;   // optional [rows, dim], dtype xType: normalises x + residual
  const void* weight = nullptr;     // [dim], dtype wType (f32, bf16)
  DType wType = DType::f32;
  void* out = nullptr;              // [rows, dim], dtype xType
  void* residualOut = nullptr;      // [rows, dim], dtype xType: x + residual (when residual is set)
  int64_t rows = 0, dim = 0;
  float eps = 1e-6f;
};
/** out = weight · (x · 1/sqrt(mean(x²) + eps)); the sum of squares runs in a fixed order (64
 *  interleaved partial sums, then a fixed tree), so every SIMD path gives the same bits. */
void rmsNorm(const RmsNormParams& p, ThreadPool& pool);

struct LayerNormParams {
  const void* x = nullptr;      // [rows, dim], dtype xType (f32, bf16)
  DType xType = DType::f32;
  const void* weight = nullptr; // [dim], dtype wType (f32, bf16)
  DType wType = DType::f32;
  const void* bias = nullptr;   // optional [dim], dtype bType (f32, bf16)
  DType bType = DType::f32;
  void* out = nullptr;          // [rows, dim], dtype xType
  int64_t rows = 0, dim = 0;
  float eps = 1e-5f;
};
/** out = (x − mean) · 1/sqrt(var + eps) · weight + bias, mean and biased variance in f32. */
void layerNorm(const LayerNormParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
