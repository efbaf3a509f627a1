// CPU paged cache: rows of W elements stored in blocks of kBlockTokens (64) rows; a slot is
// block * 64 + row. Writes scatter token rows into slots, gathers read slots back.
#pragma once
#include <cstdint>

#include "../params/cache.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The page size and the params (native/params/cache.h) are the ones cuda/cache.cu takes.
using dsn::kBlockTokens;
using dsn::PagedGatherParams;
using dsn::PagedWriteParams;

/** Throws "slots[i] = v is out of range [0, numSlots)" for the first slot outside the cache. */
void checkSlots(const int32_t* slots, int64_t n, int64_t numSlots);

/** Copies rows[t] to slot slots[t], in order of t (a later row wins a repeated slot). */
void pagedWrite(const PagedWriteParams& p, ThreadPool& pool);

void pagedGather(const PagedGatherParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
