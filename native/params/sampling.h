// Params of the token-selection family that runs on CUDA devices (argmax): used by
// native/cpu/sampling.cc and cuda/sampling.cu alike. Plain data; g++ and nvcc both compile this header.
#pragma once
#include <cstdint>

namespace dsn {

struct ArgmaxParams {
  const float* logits = nullptr;  // [rows, vocab] f32
  int64_t rows = 0, vocab = 0;
  int32_t* out = nullptr;         // [rows] i32: index of the largest value (ties: lower; NaN skipped; 0 when no value > -inf)
};

}  // namespace dsn
