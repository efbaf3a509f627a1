// CUDA element-wise dtype conversion between f32, bf16, f16 and f8e4m3 (RNE, f8 saturating).
// Same contract as native/cpu/cast.h.
#pragma once
#include <cstdint>
#include <string>

#include "../native/runtime/dtype.h"

namespace dsn::cuda {

struct CastParams {
  const void* x = nullptr;  // [n], dtype from
  DType from = DType::f32;
  void* y = nullptr;        // [n], dtype to
  DType to = DType::f32;
  int64_t n = 0;
  void* stream = nullptr;   // cudaStream_t
};

std::string castLaunch(const CastParams& p);

}  // namespace dsn::cuda
