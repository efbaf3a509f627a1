#include "indexer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "../runtime/dtype.h"
#include "../runtime/errors.h"
#include "cache.h"
#include "indexer_kernels.h"

namespace dsn::cpu {

void indexerScores(const IndexerScoresParams& p, ThreadPool& pool) {
  const int64_t capacity = p.maxBlocks * kBlockTokens;
  for (int64_t t = 0; t < p.tokens; ++t) {
    int64_t seq = p.seqIdx[t], pos = p.qPos[t];
    if (seq < 0 || seq >= p.batch) throwRange("seqIdx[", t, "] = ", seq, " is out of range [0, ", p.batch, ")");
    if (pos < 0 || pos >= capacity) throwRange("qPos[", t, "] = ", pos, " is out of range [0, ", capacity, ")");
    if (pos >= p.maxKeys) throwRange("qPos[", t, "] = ", pos, " needs maxKeys > ", pos, " but maxKeys is ", p.maxKeys);
    const int32_t* table = p.blockTable + seq * p.maxBlocks;
    for (int64_t b = 0; b <= pos / kBlockTokens; ++b)
      if (table[b] < 0 || table[b] >= p.numBlocks)
        throwRange("blockTable[", seq, ", ", b, "] = ", table[b], " is out of range [0, ", p.numBlocks, ")");
  }
  // Work items: (query, a run of keys), about four per thread; keys past qPos get -inf.
  const int64_t perQuery = std::max<int64_t>(1, (4 * pool.threads() + p.tokens - 1) / p.tokens);
  int64_t chunk = std::max(indexer::kMinKeysPerItem, (p.maxKeys + perQuery - 1) / perQuery);
  chunk = (chunk + kBlockTokens - 1) / kBlockTokens * kBlockTokens;
  const int64_t chunks = (p.maxKeys + chunk - 1) / chunk;
  pool.parallelFor(p.tokens * chunks, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      int64_t t = i / chunks, s0 = (i % chunks) * chunk, s1 = std::min(p.maxKeys, s0 + chunk);
      int64_t last = std::min<int64_t>(s1, int64_t(p.qPos[t]) + 1);  // keys [s0, last) are visible
      float* row = p.scores + t * p.maxKeys;
      if (last > s0) indexer::scoreKeys(p, t, s0, last, row + s0);
      for (int64_t s = std::max(s0, last); s < s1; ++s) row[s] = -std::numeric_limits<float>::infinity();
    }
  }, 1);
}

namespace {

/** An unsigned key whose order is the float order (NaN on top, -0 == +0). */
inline uint32_t orderKey(float f) {
  if (std::isnan(f)) return 0xffffffffu;
  if (f == 0) f = 0;
  uint32_t u = f32Bits(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/**
 * The `take` best entries of keys[0, n) (take < n) by radix select: three histogram passes (12,
 * 12 and 8 bits) find the take-th largest key T; every key above T is in, and of the keys equal to
 * T the lowest indices fill the rest. Appends (key << 32 | ~index) for each, unsorted.
 */
void radixSelect(const uint32_t* keys, int64_t n, int64_t take, std::vector<uint64_t>& sel) {
  static constexpr int kShift[3] = {20, 8, 0}, kBits[3] = {12, 12, 8};
  uint32_t prefix = 0, mask = 0;
  int64_t need = take;  // of the keys matching prefix, how many are still to take from the top
  std::vector<int64_t> hist(size_t(1) << 12);
  for (int pass = 0; pass < 3; ++pass) {
    const int shift = kShift[pass];
    const uint32_t bins = uint32_t(1) << kBits[pass], low = bins - 1;
    std::fill(hist.begin(), hist.begin() + bins, 0);
    for (int64_t i = 0; i < n; ++i)
      if ((keys[i] & mask) == prefix) ++hist[(keys[i] >> shift) & low];
    uint32_t b = low;
    while (hist[b] < need) need -= hist[b--];
    prefix |= b << shift;
    mask |= low << shift;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (keys[i] > prefix || (keys[i] == prefix && need-- > 0))
      sel.push_back((uint64_t(keys[i]) << 32) | uint32_t(0xffffffffu - uint32_t(i)));
  }
}

}  // namespace

void topK(const TopKParams& p, ThreadPool& pool) {
  if (p.lengths)
    for (int64_t t = 0; t < p.rows; ++t)
      if (p.lengths[t] < 0 || p.lengths[t] > p.cols)
        throwRange("lengths[", t, "] = ", p.lengths[t], " is out of range [0, ", p.cols, "]");
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    std::vector<uint32_t> keys;
    std::vector<uint64_t> sel;
    for (int64_t t = r0; t < r1; ++t) {
      const int64_t n = p.lengths ? p.lengths[t] : p.cols;
      const float* row = p.scores + t * p.cols;
      const int64_t take = std::min(p.k, n);
      keys.resize(size_t(n));
      for (int64_t s = 0; s < n; ++s) keys[size_t(s)] = orderKey(row[s]);
      // Larger composite = better: the score's order, then the lower index.
      sel.clear();
      if (take < n) {
        radixSelect(keys.data(), n, take, sel);
      } else {
        for (int64_t s = 0; s < n; ++s) sel.push_back((uint64_t(keys[size_t(s)]) << 32) | uint32_t(0xffffffffu - uint32_t(s)));
      }
      std::sort(sel.begin(), sel.end(), std::greater<uint64_t>());
      int32_t* out = p.indices + t * p.k;
      for (int64_t j = 0; j < take; ++j) out[j] = int32_t(0xffffffffu - uint32_t(sel[size_t(j)]));
      for (int64_t j = take; j < p.k; ++j) out[j] = -1;
    }
  }, 1);
}

}  // namespace dsn::cpu
