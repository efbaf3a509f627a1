// CPU RMSNorm and LayerNorm over the last dimension. Math in f32, output rounded to its dtype.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct RmsNormParams {
  const void* x = nullptr;          // [rows, dim], dtype xType
  DType xType = DType::f32;
  const void* residual = nullptr;   // optional [rows, dim], dtype xType: normalises x + residual
  const void* weight = nullptr;     // [dim], dtype wType
  DType wType = DType::f32;
  void* out = nullptr;              // [rows, dim], dtype xType
  void* residualOut = nullptr;      // [rows, dim], dtype xType: x + residual (when residual is set)
  int64_t rows = 0, dim = 0;
  float eps = 1e-6f;
};
void rmsNorm(const RmsNormParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
