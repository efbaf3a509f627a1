// The index-score kernels behind indexerScores (internal to native/cpu): the Hi heads of one query
// sit side by side in vector lanes, each key element is broadcast into every head, and the heads'
// weighted ReLUs are summed per key. FP8 codes are widened exactly (to bf16 for AVX-512 BF16 dot
// products, else to f32); products are exact and summed in f32.
#pragma once
#include <cstdint>

#include "indexer.h"

namespace dsn::cpu::indexer {

/** Fewest keys in a work item (a run of one query's keys): each item widens its query once. */
constexpr int64_t kMinKeysPerItem = 256;

/** out[s - s0] for the visible keys s in [s0, s1) of query t (block ids already checked). */
void scoreKeys(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out);

}  // namespace dsn::cpu::indexer
