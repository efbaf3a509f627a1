// CUDA RMSNorm over the last dimension (optionally fused with the residual add): one block per row,
// f32 math, output rounded to x's dtype. Same contract as native/cpu/norm.h.
#pragma once
#include <cstdint>
#include <string>

#include "../native/runtime/dtype.h"

namespace dsn::cuda {

struct RmsNormParams {
  const void* x = nullptr;          // [rows, dim], dtype xType (f32, bf16, f16)
  DType xType = DType::f32;
  const void* residual = nullptr;   // optional [rows, dim], dtype xType
  const void* weight = nullptr;     // [dim], dtype wType (f32, bf16)
  DType wType = DType::f32;
  void* out = nullptr;              // [rows, dim], dtype xType
  void* residualOut = nullptr;      // [rows, dim], dtype xType, when residual is set
  int64_t rows = 0, dim = 0;
  float eps = 1e-6f;
  void* stream = nullptr;           // cudaStream_t
};

/** Launches on p.stream; returns "" or the CUDA error string. */
std::string rmsNormLaunch(const RmsNormParams& p);

}  // namespace dsn::cuda
