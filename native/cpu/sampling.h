// CPU token selection from logits: argmax and seeded sampling (temperature, top-k, top-p).
#pragma once
#include <cstdint>

#include "../params/sampling.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The params (native/params/sampling.h) are the ones cuda/sampling.cu takes.
using dsn::ArgmaxParams;
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

/** One row's sampling settings (sampleRows). */
struct RowSampling {
  float temperature = 0.0f;       // 0: argmax of the penalised logits
  int64_t topK = 0;               // 0 = all
  float topP = 1.0f;              // 1 = all
  float minP = 0.0f;              // keep ids with p >= minP · max p; 0 = all
  float presencePenalty = 0.0f;   // subtracted once from ids generated at least once
  float frequencyPenalty = 0.0f;  // subtracted per time an id was generated
  float repetitionPenalty = 1.0f; // divides positive (multiplies negative) logits of listed ids
  uint64_t seed = 0;              // the row's draw is sampleUniform(seed, step)
  uint64_t step = 0;
};

struct SampleRowsParams {
  const float* logits = nullptr;        // [rows, vocab] f32
  int64_t rows = 0, vocab = 0;
  const RowSampling* params = nullptr;  // [rows]
  const int32_t* historyOffsets = nullptr;  // [rows + 1]: row r's history is entries [off[r], off[r+1])
  const int32_t* historyIds = nullptr;      // ids in [0, vocab), each at most once per row
  const int32_t* historyCounts = nullptr;   // times generated (0: in the prompt only)
  int32_t* out = nullptr;               // [rows] i32
  int64_t topLogprobs = 0;              // N most likely ids to report
  float* logprobs = nullptr;            // [rows, 1 + N] f32 or null: chosen id's, then the top N's
  int32_t* topIds = nullptr;            // [rows, N] i32 (−1 past the vocabulary)
};
/** Per-row penalties, greedy or seeded sampling with topK/topP/minP, and log-probabilities. */
void sampleRows(const SampleRowsParams& p, ThreadPool& pool);

/** The uniform [0, 1) draw of (seed, row): splitmix64 of splitmix64(seed) + row, top 53 bits. */
double sampleUniform(uint64_t seed, uint64_t row);

}  // namespace dsn::cpu
