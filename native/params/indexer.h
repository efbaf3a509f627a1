// Params of the lightning-indexer family (indexerScores, topK): used by native/cpu/indexer.cc and
// cuda/indexer.cu / cuda/topk.cu alike. Plain data (pointers are device pointers of the op's device);
// g++ and nvcc both compile this header.
#pragma once
#include <cstdint>

namespace dsn {

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

struct TopKParams {
  const float* scores = nullptr;    // [T, S] f32
  const int32_t* lengths = nullptr; // optional [T]: row t uses its first lengths[t] entries (checked: 0 <= len <= S)
  int32_t* indices = nullptr;       // [T, k] i32: the selection (CPU: torch.topk's; CUDA: see cuda/topk.cuh), listed
                                    // descending (ties: lower index), -1 padded
  int64_t rows = 0, cols = 0, k = 0;
};

}  // namespace dsn
