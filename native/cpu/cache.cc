#include "cache.h"

#include <cstring>

#include "../runtime/errors.h"

namespace dsn::cpu {

void checkSlots(const int32_t* slots, int64_t n, int64_t numSlots) {
  for (int64_t i = 0; i < n; ++i)
    if (slots[i] < 0 || slots[i] >= numSlots)
      throwRange("slots[", i, "] = ", slots[i], " is out of range [0, ", numSlots, ")");
}

void pagedWrite(const PagedWriteParams& p, ThreadPool&) {
  checkSlots(p.slots, p.tokens, p.numSlots);
  // One thread, in order: a repeated slot ends with the last row written to it, and the copy
  // (at most a prefill's worth of rows) is memory-bound anyway.
  auto* cache = static_cast<char*>(p.cache);
  auto* rows = static_cast<const char*>(p.rows);
  for (int64_t t = 0; t < p.tokens; ++t)
    std::memcpy(cache + int64_t(p.slots[t]) * p.rowBytes, rows + t * p.rowBytes, size_t(p.rowBytes));
}

void pagedGather(const PagedGatherParams& p, ThreadPool& pool) {
  checkSlots(p.slots, p.count, p.numSlots);
  auto* cache = static_cast<const char*>(p.cache);
  auto* out = static_cast<char*>(p.out);
  pool.parallelFor(p.count, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      std::memcpy(out + s * p.rowBytes, cache + int64_t(p.slots[s]) * p.rowBytes, size_t(p.rowBytes));
  }, 256);
}

}  // namespace dsn::cpu
