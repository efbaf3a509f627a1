// Params of rope (rotary position embedding) and hadamard (the indexer's Walsh-Hadamard rotation):
// used by native/cpu/rope.cc, native/cpu/hadamard.cc, cuda/rope.cu and cuda/hadamard.cu alike.
// Plain data (pointers are device pointers of the op's device); g++ and nvcc both compile this header.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"

namespace dsn {

/** Pairs of dims of each row rotated by the angle of the row's token position, in f32. */
struct RopeParams {
  const void* x = nullptr;            // [T, H, D], dtype type (bf16 | f32)
  void* out = nullptr;                // [T, H, D], dtype type
  DType type = DType::f32;
  const int32_t* positions = nullptr; // [T]: row of cos/sin for each token (checked: 0 <= p < tableRows)
  const float* cos = nullptr;         // [tableRows, half] f32
  const float* sin = nullptr;         // [tableRows, half] f32
  int64_t tokens = 0;                 // T
  int64_t heads = 1;                  // H (1 for x of shape [T, D])
  int64_t dim = 0;                    // D
  int64_t offset = 0;                 // first rotated dim; offset + 2 * half <= D
  int64_t half = 0;                   // R / 2: number of rotated pairs
  int64_t tableRows = 0;
  bool interleaved = false;           // pairs (offset + 2i, offset + 2i + 1), else (offset + i, offset + i + half)
};

/** y = (H_D x) / sqrt(D) over the last dimension, H_D the Sylvester (natural order) Hadamard matrix. */
struct HadamardParams {
  const void* x = nullptr;  // [rows, dim], dtype type (bf16 | f32)
  void* out = nullptr;      // [rows, dim], dtype type
  DType type = DType::f32;
  int64_t rows = 0;
  int64_t dim = 0;          // a power of two, <= 32768
};

}  // namespace dsn
