// CPU kernels of DeepSeek Sparse Attention's lightning indexer: FP8 index scores over the paged
// indexer-key cache, and the top-k selection of keys per query.
#pragma once
#include <cstdint>

#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct IndexerScoresParams {
  const uint8_t* q = nullptr;          // [T, Hi, Di] f8e4m3
  const float* weights = nullptr;      // [T, Hi] f32
  const uint8_t* kCache = nullptr;     // [numBlocks, 64, Di] f8e4m3
  const float* kScales = nullptr;      // [numBlocks, 64] f32
  const int32_t* blockTable = nullptr; // [B, maxBlocks] (block ids checked when used)
  const int32_t* seqIdx = nullptr;     // [T] (checked: 0 <= seqIdx < B)
  const int32_t* qPos = nullptr;       // [T] (checked: 0 <= qPos < min(maxKeys, maxBlocks * 64))
  float* scores = nullptr;             // [T, maxKeys] f32
  int64_t tokens = 0, heads = 0, dim = 0;  // T, Hi, Di
  int64_t numBlocks = 0, batch = 0, maxBlocks = 0, maxKeys = 0;
};
/** scores[t, s] = kScale[s] * sum_h weights[t, h] * relu(q[t, h] . k[s]) for s <= qPos[t], else -inf. */
void indexerScores(const IndexerScoresParams& p, ThreadPool& pool);

struct TopKParams {
  const float* scores = nullptr;    // [T, S] f32
  const int32_t* lengths = nullptr; // optional [T]: row t uses its first lengths[t] entries (checked: 0 <= len <= S)
  int32_t* indices = nullptr;       // [T, k] i32: torch.topk's selection (see topK), listed descending (ties: lower index), -1 padded
  int64_t rows = 0, cols = 0, k = 0;
};
/** The k largest of each row, selected exactly as torch.topk does on the CPU (NaN ranks above +inf). */
void topK(const TopKParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
