// CPU kernels of DeepSeek Sparse Attention's lightning indexer: FP8 index scores over the paged
// indexer-key cache, and the top-k selection of keys per query.
#pragma once
#include <cstdint>

#include "../params/indexer.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

/** scores[t, s] = kScale[s] * sum_h weights[t, h] * relu(q[t, h] . k[s]) for s <= qPos[t], else -inf. */
void indexerScores(const IndexerScoresParams& p, ThreadPool& pool);

/** The k largest of each row, selected exactly as torch.topk does on the CPU (NaN ranks above +inf). */
void topK(const TopKParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
