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

void topK(const TopKParams& p, ThreadPool& pool) {
  if (p.lengths)
    for (int64_t t = 0; t < p.rows; ++t)
      if (p.lengths[t] < 0 || p.lengths[t] > p.cols)
        throwRange("lengths[", t, "] = ", p.lengths[t], " is out of range [0, ", p.cols, "]");
  // Which entries win among equal scores decides which keys DSA attends to (ties are common: a key
  // whose every head is cut by relu scores exactly 0). We select exactly as torch.topk does on the
  // CPU, which the reference runs: (value, index) pairs ordered by `greater` with NaN first, through
  // std::partial_sort when k·64 <= n and std::nth_element otherwise (the same libstdc++ algorithms
  // torch's Linux builds use). The selected set is then listed in descending order.
  using Elem = std::pair<float, int64_t>;
  auto torchGreater = [](const Elem& x, const Elem& y) {
    return (std::isnan(x.first) && !std::isnan(y.first)) || (x.first > y.first);
  };
  auto listOrder = [&](const Elem& x, const Elem& y) {
    if (torchGreater(x, y)) return true;
    if (torchGreater(y, x)) return false;
    return x.second < y.second;
  };
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    std::vector<Elem> q;
    for (int64_t t = r0; t < r1; ++t) {
      const int64_t n = p.lengths ? p.lengths[t] : p.cols;
      const float* row = p.scores + t * p.cols;
      q.resize(size_t(n));
      for (int64_t s = 0; s < n; ++s) q[size_t(s)] = {row[s], s};
      const int64_t take = std::min(p.k, n);
      if (take > 0) {
        if (take * 64 <= n) std::partial_sort(q.begin(), q.begin() + take, q.end(), torchGreater);
        else std::nth_element(q.begin(), q.begin() + (take - 1), q.end(), torchGreater);
        std::sort(q.begin(), q.begin() + take, listOrder);
      }
      int32_t* out = p.indices + t * p.k;
      for (int64_t j = 0; j < take; ++j) out[j] = int32_t(q[size_t(j)].second);
      for (int64_t j = take; j < p.k; ++j) out[j] = -1;
    }
  }, 1);
}

}  // namespace dsn::cpu
