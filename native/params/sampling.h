// Params of the token-selection family (argmax, sample, sampleRows): used by native/cpu/sampling.cc
// and cuda/sampling.cu alike, with the one seeded draw both compute. Plain data; g++ and nvcc both
// compile this header.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define DSN_SAMPLING_HD __host__ __device__
#else
#define DSN_SAMPLING_HD
#endif

namespace dsn {

struct ArgmaxParams {
  const float* logits = nullptr;  // [rows, vocab] f32
  int64_t rows = 0, vocab = 0;
  int32_t* out = nullptr;         // [rows] i32: index of the largest value (ties: lower; NaN skipped; 0 when no value > -inf)
};

struct SampleParams {
  const float* logits = nullptr;  // [rows, vocab] f32
  int64_t rows = 0, vocab = 0;
  float temperature = 1.0f;       // > 0 (0 is argmax, handled by the caller)
  int64_t topK = 0;               // keep the topK most likely ids; 0 = all
  float topP = 1.0f;              // then the smallest prefix holding >= topP of their mass; 1 = all
  uint64_t seed = 0;              // with the row index, seeds the row's draw
  int32_t* out = nullptr;         // [rows] i32
  float* workspace = nullptr;     // CUDA only: [rows, vocab] f32, the row's softmax weights (CPU: null)
};

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
  const RowSampling* params = nullptr;  // [rows] (on the logits' device)
  const int32_t* historyOffsets = nullptr;  // [rows + 1]: row r's history is entries [off[r], off[r+1])
  const int32_t* historyIds = nullptr;      // ids in [0, vocab), each at most once per row
  const int32_t* historyCounts = nullptr;   // times generated (0: in the prompt only)
  int32_t* out = nullptr;               // [rows] i32
  int64_t topLogprobs = 0;              // N most likely ids to report
  float* logprobs = nullptr;            // [rows, 1 + N] f32 or null: chosen id's, then the top N's
  int32_t* topIds = nullptr;            // [rows, N] i32 (−1 past the vocabulary)
  float* workspace = nullptr;           // CUDA only: [rows, 2 · vocab] f32, the penalised row and its
                                        // softmax weights (CPU: null)
};

/** splitmix64 (Vigna): a Weyl step and an avalanche of the state. */
DSN_SAMPLING_HD inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/** The uniform [0, 1) draw of (seed, row): splitmix64 of splitmix64(seed) + row, top 53 bits. The
 *  CPU and CUDA kernels both call this one definition. */
DSN_SAMPLING_HD inline double sampleUniform(uint64_t seed, uint64_t row) {
  return double(splitmix64(splitmix64(seed) + row) >> 11) * 0x1.0p-53;
}

}  // namespace dsn
