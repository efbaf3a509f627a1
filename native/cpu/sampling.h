// CPU token selection from logits: argmax and seeded sampling (temperature, top-k, top-p).
#pragma once
#include <cstdint>

#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct ArgmaxParams {
  const float* logits = nullptr;  // [rows, vocab] f32
  int64_t rows = 0, vocab = 0;
  int32_t* out = nullptr;         // [rows] i32: index of the largest value (ties: lower; NaN skipped)
};
void argmax(const ArgmaxParams& p, ThreadPool& pool);

struct SampleParams {
  const float* logits = nullptr;  // [rows, vocab] f32
  int64_t rows = 0, vocab = 0;
  float temperature = 1.0f;       // > 0 (0 is argmax, handled by the caller)
  int64_t topK = 0;               // keep the topK most likely ids; 0 = all
  float topP = 1.0f;              // then the smallest prefix holding >= topP of their mass; 1 = all
  uint64_t seed = 0;              // with the row index, seeds the row's draw
  int32_t* out = nullptr;         // [rows] i32
};
void sample(const SampleParams& p, ThreadPool& pool);

/** The uniform [0, 1) draw of (seed, row): splitmix64 of splitmix64(seed) + row, top 53 bits. */
double sampleUniform(uint64_t seed, uint64_t row);

}  // namespace dsn::cpu
