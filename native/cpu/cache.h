// CPU paged cache: rows of W elements stored in blocks of kBlockTokens (64) rows; a slot is
// block * 64 + row. Writes scatter token rows into slots, gathers read slots back.
#pragma once
#include <cstdint>

#include "../runtime/threadpool.h"

namespace dsn::cpu {

/** Tokens per cache block (the paged KV cache's page size). */
constexpr int64_t kBlockTokens = 64;

/** Throws "slots[i] = v is out of range [0, numSlots)" for the first slot outside the cache. */
void checkSlots(const int32_t* slots, int64_t n, int64_t numSlots);

struct PagedWriteParams {
  void* cache = nullptr;           // [numBlocks, 64, W], rowBytes bytes a row
  const void* rows = nullptr;      // [T, W], same dtype
  const int32_t* slots = nullptr;  // [T] (checked: 0 <= slot < numSlots)
  int64_t tokens = 0;              // T
  int64_t rowBytes = 0;            // W * element size
  int64_t numSlots = 0;            // numBlocks * 64
};
/** Copies rows[t] to slot slots[t], in order of t (a later row wins a repeated slot). */
void pagedWrite(const PagedWriteParams& p, ThreadPool& pool);

struct PagedGatherParams {
  const void* cache = nullptr;     // [numBlocks, 64, W]
  const int32_t* slots = nullptr;  // [S] (checked: 0 <= slot < numSlots)
  void* out = nullptr;             // [S, W]
  int64_t count = 0;               // S
  int64_t rowBytes = 0;
  int64_t numSlots = 0;
};
void pagedGather(const PagedGatherParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
