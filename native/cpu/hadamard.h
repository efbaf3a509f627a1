// CPU Walsh-Hadamard transform over the last dimension: y = (H_D x) / sqrt(D) with H_D the
// Sylvester (natural order) Hadamard matrix, as fast_hadamard_transform computes it; f32 math,
// output rounded to x's dtype.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct HadamardParams {
  const void* x = nullptr;  // [rows, dim], dtype type (bf16 | f32)
  void* out = nullptr;      // [rows, dim], dtype type
  DType type = DType::f32;
  int64_t rows = 0;
  int64_t dim = 0;          // a power of two
};
void hadamard(const HadamardParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
