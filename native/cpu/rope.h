// CPU rotary position embedding (the reference's apply_rotary_emb): pairs of dims rotated by the
// angle of the token's position, in f32, rounded to x's dtype; the dims outside the rotary range
// are copied.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

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
void rope(const RopeParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
