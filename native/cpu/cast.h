// CPU element-wise dtype conversion between f32, bf16, f16 and f8e4m3 (RNE, f8 saturating).
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct CastParams {
  const void* x = nullptr;  // [n], dtype from
  DType from = DType::f32;
  void* y = nullptr;        // [n], dtype to
  DType to = DType::f32;
  int64_t n = 0;
};
void cast(const CastParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
