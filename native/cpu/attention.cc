#include "attention.h"

#include <algorithm>
#include <vector>

#include "../runtime/errors.h"
#include "attention_kernels.h"
#include "cache.h"
#include "latent_cache.h"

namespace dsn::cpu {

using attn::Keys;
using attn::kGroup;
using attn::kMaxLanes;
using attn::Lanes;
using attn::Problem;

namespace {

/** Sorted, unique copy of the listed keys of one query that are <= limit (-1 entries skipped). */
void listedKeys(const int32_t* list, int64_t n, int64_t limit, std::vector<int64_t>& out) {
  out.clear();
  for (int64_t j = 0; j < n; ++j)
    if (list[j] >= 0 && list[j] <= limit) out.push_back(list[j]);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

/** Splits H heads into chunks of whole lane groups: enough items to feed the threads. */
int64_t headChunk(int64_t heads, int64_t tokens, int threads) {
  int64_t minChunks = (heads + kMaxLanes - 1) / kMaxLanes;
  int64_t maxChunks = (heads + kGroup - 1) / kGroup;
  int64_t want = (threads + tokens - 1) / tokens;
  int64_t chunks = std::max(minChunks, std::min(maxChunks, want));
  int64_t per = (heads + chunks - 1) / chunks;
  return (per + kGroup - 1) / kGroup * kGroup;
}

}  // namespace

void mlaDecode(const MlaDecodeParams& p, ThreadPool& pool) {
  const int64_t capacity = p.maxBlocks * kBlockTokens;
  // Every id the kernel will follow is checked before anything is read.
  for (int64_t t = 0; t < p.tokens; ++t) {
    int64_t seq = p.seqIdx[t], pos = p.qPos[t];
    if (seq < 0 || seq >= p.batch) throwRange("seqIdx[", t, "] = ", seq, " is out of range [0, ", p.batch, ")");
    if (pos < 0 || pos >= capacity) throwRange("qPos[", t, "] = ", pos, " is out of range [0, ", capacity, ")");
    const int32_t* table = p.blockTable + seq * p.maxBlocks;
    auto checkBlock = [&](int64_t b) {
      if (table[b] < 0 || table[b] >= p.numBlocks)
        throwRange("blockTable[", seq, ", ", b, "] = ", table[b], " is out of range [0, ", p.numBlocks, ")");
    };
    if (p.indices) {
      const int32_t* list = p.indices + t * p.topk;
      for (int64_t j = 0; j < p.topk; ++j) {
        if (list[j] < -1 || list[j] >= capacity)
          throwRange("indices[", t, ", ", j, "] = ", list[j], " is out of range [-1, ", capacity, ")");
        if (list[j] >= 0 && list[j] <= pos) checkBlock(list[j] / kBlockTokens);
      }
    } else {
      for (int64_t b = 0; b <= pos / kBlockTokens; ++b) checkBlock(b);
    }
  }

  if (p.tokens == 0 || p.heads == 0) return;

  // The keys of each query: physical cache rows, visible to every head.
  std::vector<Keys> keys(size_t(p.tokens));
  pool.parallelFor(p.tokens, [&](int64_t t0, int64_t t1) {
    std::vector<int64_t> logical;
    for (int64_t t = t0; t < t1; ++t) {
      int64_t pos = p.qPos[t];
      const int32_t* table = p.blockTable + int64_t(p.seqIdx[t]) * p.maxBlocks;
      if (p.indices) {
        listedKeys(p.indices + t * p.topk, p.topk, pos, logical);
      } else {
        logical.resize(size_t(pos + 1));
        for (int64_t s = 0; s <= pos; ++s) logical[size_t(s)] = s;
      }
      Keys& k = keys[size_t(t)];
      k.rows.resize(logical.size());
      k.lanes.assign(logical.size(), ~uint64_t(0));
      for (size_t i = 0; i < logical.size(); ++i)
        k.rows[i] = int64_t(table[logical[i] / kBlockTokens]) * kBlockTokens + logical[i] % kBlockTokens;
    }
  }, 1);

  const size_t es = dtypeSize(p.type);
  const int64_t width = p.latent + p.dr;
  const int64_t chunk = headChunk(p.heads, p.tokens, pool.threads());
  const int64_t chunks = (p.heads + chunk - 1) / chunk;

  // Runs the queries [t0, t1); key rows of query t are read from rowsOf(t) (C + Dr elements a row).
  auto attendTokens = [&](int64_t t0, int64_t t1, auto rowsOf) {
    pool.parallelFor((t1 - t0) * chunks, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        int64_t t = t0 + i / chunks, h0 = (i % chunks) * chunk;
        const char* rows = rowsOf(t);
        Problem pr;
        pr.type = p.type;
        pr.a = rows; pr.aStride = width; pr.da = p.latent;
        pr.b = rows + p.latent * es; pr.bStride = width; pr.db = p.dr;
        pr.v = rows; pr.vStride = width; pr.dv = p.latent;
        pr.scale = p.scale;
        pr.scoreRounding = p.bf16Scores ? attn::ScoreRounding::perSegment : attn::ScoreRounding::none;
        Lanes lanes;
        lanes.n = int(std::min(chunk, p.heads - h0));
        for (int l = 0; l < lanes.n; ++l) {
          int64_t th = t * p.heads + h0 + l;
          lanes.qa[l] = static_cast<const char*>(p.qLatent) + th * p.latent * es;
          lanes.qb[l] = static_cast<const char*>(p.qPe) + th * p.dr * es;
          lanes.out[l] = static_cast<char*>(p.out) + th * p.latent * es;
        }
        attn::attend(pr, lanes, keys[size_t(t)]);
      }
    }, 1);
  };

  if (!p.fp8Cache) {
    attendTokens(0, p.tokens, [&](int64_t) { return static_cast<const char*>(p.cache); });
    return;
  }

  // FP8 cache: each query's key rows are dequantised once into a buffer that its head chunks share
  // (rows renumbered 0..n-1), a batch of queries at a time so the buffers stay under ~64 MiB. The
  // decode is ~250 flop per cached byte, so the extra pass over the rows costs little.
  const LatentCacheLayout layout{p.latent, p.dr, p.type};
  const int64_t rowBytes = layout.rowBytes(), denseBytes = width * int64_t(es);
  const auto* cache = static_cast<const uint8_t*>(p.cache);
  constexpr int64_t kBudget = int64_t(64) << 20;
  std::vector<std::vector<char>> dense;
  for (int64_t t0 = 0; t0 < p.tokens;) {
    int64_t t1 = t0, bytes = 0;
    while (t1 < p.tokens && (t1 == t0 || bytes + int64_t(keys[size_t(t1)].rows.size()) * denseBytes <= kBudget))
      bytes += int64_t(keys[size_t(t1++)].rows.size()) * denseBytes;
    dense.assign(size_t(t1 - t0), {});
    pool.parallelFor(t1 - t0, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        Keys& k = keys[size_t(t0 + j)];
        std::vector<char>& buf = dense[size_t(j)];
        buf.resize(std::max<size_t>(k.rows.size(), 1) * size_t(denseBytes));
        for (size_t r = 0; r < k.rows.size(); ++r) latentRowDequant(layout, cache + k.rows[r] * rowBytes, buf.data() + r * denseBytes);
        for (size_t r = 0; r < k.rows.size(); ++r) k.rows[r] = int64_t(r);  // now rows of buf
      }
    }, 1);
    attendTokens(t0, t1, [&](int64_t t) { return static_cast<const char*>(dense[size_t(t - t0)].data()); });
    t0 = t1;
  }
}

void mlaPrefill(const MlaPrefillParams& p, ThreadPool& pool) {
  for (int64_t t = 0; t < p.tokens; ++t)
    if (p.qPos[t] < 0 || p.qPos[t] >= p.keys) throwRange("qPos[", t, "] = ", p.qPos[t], " is out of range [0, ", p.keys, ")");
  if (p.indices)
    for (int64_t i = 0; i < p.tokens * p.topk; ++i)
      if (p.indices[i] < -1 || p.indices[i] >= p.keys)
        throwRange("indices[", i / p.topk, ", ", i % p.topk, "] = ", p.indices[i], " is out of range [-1, ", p.keys, ")");

  // Lanes are queries: blocks of up to 64 consecutive queries share a key list (the union of what
  // they see) with a per-key mask of the queries that see it. Heads share the blocks' key lists.
  const int64_t blocks = (p.tokens + kMaxLanes - 1) / kMaxLanes;
  std::vector<Keys> keys(static_cast<size_t>(blocks));
  pool.parallelFor(blocks, [&](int64_t b0, int64_t b1) {
    std::vector<int64_t> listed, all;
    for (int64_t b = b0; b < b1; ++b) {
      int64_t t0 = b * kMaxLanes, n = std::min<int64_t>(kMaxLanes, p.tokens - t0);
      Keys& k = keys[size_t(b)];
      if (!p.indices) {
        int64_t last = 0;
        for (int64_t l = 0; l < n; ++l) last = std::max<int64_t>(last, p.qPos[t0 + l]);
        k.rows.resize(size_t(last + 1));
        k.lanes.assign(size_t(last + 1), 0);
        for (int64_t s = 0; s <= last; ++s) k.rows[size_t(s)] = s;
        for (int64_t l = 0; l < n; ++l)
          for (int64_t s = 0; s <= p.qPos[t0 + l]; ++s) k.lanes[size_t(s)] |= uint64_t(1) << l;
      } else {
        all.clear();
        for (int64_t l = 0; l < n; ++l) {
          listedKeys(p.indices + (t0 + l) * p.topk, p.topk, p.qPos[t0 + l], listed);
          all.insert(all.end(), listed.begin(), listed.end());
        }
        std::sort(all.begin(), all.end());
        all.erase(std::unique(all.begin(), all.end()), all.end());
        k.rows = all;
        k.lanes.assign(all.size(), 0);
        for (int64_t l = 0; l < n; ++l) {
          listedKeys(p.indices + (t0 + l) * p.topk, p.topk, p.qPos[t0 + l], listed);
          for (int64_t s : listed)
            k.lanes[size_t(std::lower_bound(all.begin(), all.end(), s) - all.begin())] |= uint64_t(1) << l;
        }
      }
    }
  }, 1);

  const size_t es = dtypeSize(p.type);
  const int64_t qWidth = p.dn + p.dr, kvWidth = p.dn + p.dv;
  pool.parallelFor(blocks * p.heads, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      int64_t b = i / p.heads, h = i % p.heads, t0 = b * kMaxLanes;
      Problem pr;
      pr.type = p.type;
      pr.a = static_cast<const char*>(p.kv) + h * kvWidth * es; pr.aStride = p.heads * kvWidth; pr.da = p.dn;
      pr.b = static_cast<const char*>(p.kPe); pr.bStride = p.dr; pr.db = p.dr;
      pr.v = static_cast<const char*>(p.kv) + (h * kvWidth + p.dn) * es; pr.vStride = p.heads * kvWidth; pr.dv = p.dv;
      pr.scale = p.scale;
      pr.scoreRounding = p.bf16Scores ? attn::ScoreRounding::once : attn::ScoreRounding::none;
      Lanes lanes;
      lanes.n = int(std::min<int64_t>(kMaxLanes, p.tokens - t0));
      for (int l = 0; l < lanes.n; ++l) {
        int64_t th = (t0 + l) * p.heads + h;
        lanes.qa[l] = static_cast<const char*>(p.q) + th * qWidth * es;
        lanes.qb[l] = lanes.qa[l] + p.dn * es;
        lanes.out[l] = static_cast<char*>(p.out) + th * p.dv * es;
      }
      attn::attend(pr, lanes, keys[size_t(b)]);
    }
  }, 1);
}

}  // namespace dsn::cpu
