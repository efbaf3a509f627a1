#include "moe.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "../runtime/errors.h"
#include "convert.h"
#include "elementwise.h"
#include "quant.h"

namespace dsn::cpu {

namespace {

struct SigmoidOp {
  template <class V> typename V::F apply(typename V::F x) const { return V::sigmoid(x); }
};
/** The choosing score: a + b, a NaN as −inf (it never wins: max returns its second operand for a
 *  NaN), −0 as +0. */
struct ChooseOp {
  template <class V> typename V::F apply(typename V::F a, typename V::F b) const {
    return V::max(a + b, V::set1(-std::numeric_limits<float>::infinity())) + V::zero();
  }
};
/** e^(x − shift) */
struct ExpShiftOp {
  float shift;
  template <class V> typename V::F apply(typename V::F x) const { return V::exp(x - V::set1(shift)); }
};

/** Keeps the `cap` largest values seen, descending; a later equal value ranks after (lower index first). */
struct TopK {
  int cap, size = 0;
  float* vals;
  int32_t* idx;
  void offer(float v, int32_t i) {
    if (size == cap) {
      if (!(v > vals[size - 1])) return;
      --size;
    }
    int pos = size++;
    while (pos > 0 && vals[pos - 1] < v) {
      vals[pos] = vals[pos - 1];
      idx[pos] = idx[pos - 1];
      --pos;
    }
    vals[pos] = v;
    idx[pos] = i;
  }
};

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Group scores: the group's max, or (with a bias) the sum of its two largest values. Any correct
// method gives the same f32 result, so the paths agree.
void groupScoresScalar(const float* c, int64_t G, int64_t gs, bool top2, float* out) {
  for (int64_t g = 0; g < G; ++g) {
    const float* x = c + g * gs;
    float a = kNegInf, b = kNegInf;  // a >= b: the top two so far
    for (int64_t e = 0; e < gs; ++e) {
      const float lo = x[e] < a ? x[e] : a;
      a = x[e] > a ? x[e] : a;
      b = lo > b ? lo : b;
    }
    out[g] = top2 ? a + b : a;
  }
}

DSN_TARGET_AVX512 void groupScoresAvx512(const float* c, int64_t G, int64_t gs, bool top2, float* out) {
  const __m512 ninf = _mm512_set1_ps(kNegInf);
  for (int64_t g = 0; g < G; ++g) {
    const float* x = c + g * gs;
    __m512 a = ninf, b = ninf;  // per lane: the top two of the lane's elements
    for (int64_t e = 0; e < gs; e += 16) {
      const __m512 v = gs - e >= 16 ? _mm512_loadu_ps(x + e) : _mm512_mask_loadu_ps(ninf, Avx512::firstLanes(gs - e), x + e);
      b = _mm512_max_ps(b, _mm512_min_ps(a, v));
      a = _mm512_max_ps(a, v);
    }
    const float first = _mm512_reduce_max_ps(a);
    if (!top2) {
      out[g] = first;
      continue;
    }
    // The runner-up: the best once one lane holding `first` gives up its max for its second.
    const __mmask16 at = _mm512_cmp_ps_mask(a, _mm512_set1_ps(first), _CMP_EQ_OQ);
    float second;
    if (__builtin_popcount(at) >= 2) {
      second = first;
    } else {
      const __mmask16 lane = __mmask16(at & -at);
      second = _mm512_reduce_max_ps(_mm512_mask_blend_ps(lane, a, b));
    }
    out[g] = first + second;
  }
}

/** ids = the k largest eligible c (descending, ties: lower index), by insertion. */
void selectScalar(const float* c, int64_t G, int64_t gs, const char* keep, int k, float* vals, int32_t* ids) {
  TopK top{k, 0, vals, ids};
  for (int64_t g = 0; g < G; ++g) {
    if (G > 1 && !keep[g]) continue;
    for (int64_t e = g * gs; e < (g + 1) * gs; ++e) top.offer(c[e], int32_t(e));
  }
}

/** The same selection on order-preserving integer keys of c (INT_MIN marks a taken or ineligible
 *  lane): each round takes the best of the per-vector maxima, then the first lane holding it. */
DSN_TARGET_AVX512 void selectAvx512(const float* c, int64_t E, int64_t G, int64_t gs, const char* keep, int k, __mmask16* avail, int32_t* keys,
                                    int32_t* vmax, int32_t* ids) {
  const int64_t nv = (E + 15) / 16;
  for (int64_t v = 0; v < nv; ++v) avail[v] = 0;
  for (int64_t g = 0; g < G; ++g) {
    if (G > 1 && !keep[g]) continue;
    for (int64_t e = g * gs; e < (g + 1) * gs;) {  // set bits e … end of the group or the vector
      const int64_t v = e / 16, lo = e % 16, hi = std::min<int64_t>(16, lo + (g + 1) * gs - e);
      avail[v] = __mmask16(avail[v] | (((1u << hi) - 1u) & ~((1u << lo) - 1u)));
      e += hi - lo;
    }
  }
  const __m512i none = _mm512_set1_epi32(std::numeric_limits<int32_t>::min());
  for (int64_t v = 0; v < nv; ++v) {
    // Float order as signed integers: negative floats get their magnitude bits flipped.
    const __m512i b = _mm512_castps_si512(_mm512_mask_loadu_ps(_mm512_setzero_ps(), avail[v], c + v * 16));
    const __m512i key = _mm512_mask_blend_epi32(avail[v], none, _mm512_xor_si512(b, _mm512_and_si512(_mm512_srai_epi32(b, 31), _mm512_set1_epi32(0x7fffffff))));
    _mm512_storeu_si512(keys + v * 16, key);
    vmax[v] = _mm512_reduce_max_epi32(key);
  }
  if (nv <= 16) {
    // Up to 256 experts: the per-vector maxima live in one register, updated in place (a scalar
    // store followed by a vector load of the same line would stall on store forwarding).
    const __mmask16 m = Avx512::firstLanes(nv);
    __m512i vm = _mm512_mask_loadu_epi32(none, m, vmax);
    for (int j = 0; j < k; ++j) {
      const int32_t best = _mm512_reduce_max_epi32(vm);
      const int bv = __builtin_ctz(_mm512_mask_cmpeq_epi32_mask(m, vm, _mm512_set1_epi32(best)));
      __m512i key = _mm512_loadu_si512(keys + bv * 16);
      const int lane = __builtin_ctz(_mm512_cmpeq_epi32_mask(key, _mm512_set1_epi32(best)));
      ids[j] = int32_t(bv * 16 + lane);
      key = _mm512_mask_blend_epi32(__mmask16(1u << lane), key, none);
      _mm512_storeu_si512(keys + bv * 16, key);
      vm = _mm512_mask_set1_epi32(vm, __mmask16(1u << bv), _mm512_reduce_max_epi32(key));
    }
    return;
  }
  for (int j = 0; j < k; ++j) {
    int32_t best = std::numeric_limits<int32_t>::min();
    int64_t bv = 0;
    for (int64_t w = 0; w < nv; w += 16) {
      const __mmask16 m = Avx512::firstLanes(std::min<int64_t>(16, nv - w));
      const __m512i x = _mm512_mask_loadu_epi32(none, m, vmax + w);
      const int32_t top = _mm512_reduce_max_epi32(x);
      if (top > best || w == 0) {
        best = top;
        bv = w + __builtin_ctz(_mm512_mask_cmpeq_epi32_mask(m, x, _mm512_set1_epi32(top)));
      }
    }
    __m512i key = _mm512_loadu_si512(keys + bv * 16);
    const int lane = __builtin_ctz(_mm512_cmpeq_epi32_mask(key, _mm512_set1_epi32(best)));
    ids[j] = int32_t(bv * 16 + lane);
    key = _mm512_mask_blend_epi32(__mmask16(1u << lane), key, none);
    _mm512_storeu_si512(keys + bv * 16, key);
    vmax[bv] = _mm512_reduce_max_epi32(key);
  }
}

}  // namespace

void moeRoute(const MoeRouteParams& p, ThreadPool& pool) {
  const int64_t E = p.experts, G = p.nGroups, gs = E / G;
  const Simd level = simdLevel();
  pool.parallelFor(p.tokens, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores(static_cast<size_t>(E)), chosen(static_cast<size_t>(E)), groupScore(static_cast<size_t>(G)), topVals(static_cast<size_t>(p.topk));
    std::vector<char> keep(static_cast<size_t>(G));
    std::vector<__mmask16> avail(static_cast<size_t>((E + 15) / 16));
    std::vector<float> zeros(p.bias ? 0 : static_cast<size_t>(E), 0.0f);
    std::vector<int32_t> keys(static_cast<size_t>((E + 15) / 16 * 16)), vmax(static_cast<size_t>((E + 15) / 16));
    for (int64_t t = t0; t < t1; ++t) {
      const float* logits = p.logits + t * E;
      if (p.softmax) {
        map1(logits, DType::f32, scores.data(), DType::f32, E, ExpShiftOp{maxF32(logits, E)});
        const float sum = sumF32(scores.data(), E);
        for (int64_t e = 0; e < E; ++e) scores[e] = scores[e] / sum;
      } else {
        map1(logits, DType::f32, scores.data(), DType::f32, E, SigmoidOp{});
      }
      // Biased scores choose; a NaN never does (and −0 counts as +0).
      map2(scores.data(), DType::f32, p.bias ? p.bias : zeros.data(), DType::f32, chosen.data(), DType::f32, E, ChooseOp{});
      // Group-limited routing: keep the topkGroups groups with the best scores (ties: lower group).
      if (G > 1) {
        if (level == Simd::Avx512) groupScoresAvx512(chosen.data(), G, gs, p.bias != nullptr, groupScore.data());
        else groupScoresScalar(chosen.data(), G, gs, p.bias != nullptr, groupScore.data());
        for (int64_t g = 0; g < G; ++g) keep[g] = 0;
        for (int k = 0; k < p.topkGroups; ++k) {
          int64_t best = -1;
          for (int64_t g = 0; g < G; ++g)
            if (!keep[g] && (best < 0 || groupScore[g] > groupScore[best])) best = g;
          keep[best] = 1;
        }
      }
      int32_t* ids = p.ids + t * p.topk;
      if (level == Simd::Avx512) selectAvx512(chosen.data(), E, G, gs, keep.data(), p.topk, avail.data(), keys.data(), vmax.data(), ids);
      else selectScalar(chosen.data(), G, gs, keep.data(), p.topk, topVals.data(), ids);
      float* w = p.weights + t * p.topk;
      for (int j = 0; j < p.topk; ++j) w[j] = scores[ids[j]];
      if (p.normalize) {
        float sum = 0;
        for (int j = 0; j < p.topk; ++j) sum += w[j];
        for (int j = 0; j < p.topk; ++j) w[j] = w[j] / sum;
      }
      for (int j = 0; j < p.topk; ++j) w[j] = w[j] * p.routeScale;
    }
  }, 16);
}

void moeDispatch(const MoeDispatchParams& p, ThreadPool& pool) {
  const int64_t S = p.tokens * p.k, E = p.experts;
  for (int64_t s = 0; s < S; ++s)
    if (p.ids[s] < 0 || p.ids[s] >= E)
      throwRange("expert id ", p.ids[s], " of token ", s / p.k, " (choice ", s % p.k, ") is outside the ", E, " experts");
  // Slots are split into chunks; chunk c places its slots of expert e after those of chunks < c.
  const int64_t chunks = S >= 16384 ? pool.threads() * 2 : 1;
  const int64_t per = (S + chunks - 1) / chunks;
  std::vector<int32_t> counts(size_t(chunks * E), 0);
  auto chunkRange = [&](int64_t c, int64_t* s0, int64_t* s1) {
    *s0 = c * per < S ? c * per : S;
    *s1 = (c + 1) * per < S ? (c + 1) * per : S;
  };
  pool.parallelFor(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t s0, s1;
      chunkRange(c, &s0, &s1);
      int32_t* cnt = counts.data() + c * E;
      for (int64_t s = s0; s < s1; ++s) ++cnt[p.ids[s]];
    }
  }, 1);
  int32_t row = 0;
  for (int64_t e = 0; e < E; ++e) {
    p.offsets[e] = row;
    for (int64_t c = 0; c < chunks; ++c) {
      int32_t n = counts[c * E + e];
      counts[c * E + e] = row;  // now: the first row of chunk c's slots of expert e
      row += n;
    }
  }
  p.offsets[E] = row;
  pool.parallelFor(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t s0, s1;
      chunkRange(c, &s0, &s1);
      int32_t* next = counts.data() + c * E;
      for (int64_t s = s0; s < s1; ++s) {
        int32_t r = next[p.ids[s]]++;
        p.tokenOfRow[r] = int32_t(s / p.k);
        p.rowOfSlot[s] = r;
      }
    }
  }, 1);
}

void gatherRows(const GatherRowsParams& p, ThreadPool& pool) {
  for (int64_t r = 0; r < p.count; ++r)
    if (p.index[r] < 0 || p.index[r] >= p.rows)
      throwRange("row index ", p.index[r], " at position ", r, " is outside the ", p.rows, " rows of x");
  const auto* src = static_cast<const char*>(p.x);
  auto* dst = static_cast<char*>(p.out);
  const int64_t grain = p.rowBytes > 0 ? (65536 + p.rowBytes - 1) / p.rowBytes : 1;
  const bool stream = p.count * p.rowBytes >= kStreamBytes;
  pool.parallelFor(p.count, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) copyBytes(dst + r * p.rowBytes, src + int64_t(p.index[r]) * p.rowBytes, p.rowBytes, stream);
  }, grain);
}

void swiglu(const SwigluParams& p, ThreadPool& pool) {
  const int64_t I = p.inter;
  // With the fused actQuant, out is read back at once: keep it in cache rather than streaming it.
  const bool stream = !p.codes && p.rows * I * int64_t(dtypeSize(p.outType)) >= kStreamBytes;
  const int64_t grain = I > 0 ? (16384 + I - 1) / I : 1;
  const Simd level = simdLevel();
  ActQuantParams quant;  // actQuant of out, a row at a time right after the row is written
  quant.x = p.out; quant.xType = p.outType; quant.codes = p.codes; quant.scales = p.scales;
  quant.rows = p.rows; quant.K = I; quant.blockSize = kQuantBlock; quant.ue8m0 = p.ue8m0;
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const void* gate = at(p.gateUp, p.inType, r * 2 * I);
      const void* up = at(p.gateUp, p.inType, r * 2 * I + I);
      map2(gate, p.inType, up, p.inType, at(p.out, p.outType, r * I), p.outType, I, SwigluOp{}, stream);
      if (p.codes) actQuantRows(quant, r, r + 1, level);
    }
  }, grain);
}

// ---------------- moeCombine ----------------
namespace {

/** The k choices of a token in ascending expert id (then choice index). */
inline void sumOrder(const int32_t* ids, int64_t k, int* order) {
  for (int j = 0; j < k; ++j) {
    int pos = j;
    while (pos > 0 && ids[order[pos - 1]] > ids[j]) {
      order[pos] = order[pos - 1];
      --pos;
    }
    order[pos] = j;
  }
}

// The product is rounded before it is added, as in the reference: opaque() keeps the compiler from
// fusing the multiply into the add (it may in FMA-enabled code).

template <DType ET, DType ST, DType OT>
struct CombineKernel {
  template <class V>
  static void run(const MoeCombineParams& p, int64_t t0, int64_t t1, bool stream) {
    using F = typename V::F;
    constexpr int L = V::kLanes, kBlock = 4 * L;  // four accumulators stay in registers across the k rows
    const int64_t D = p.dim, k = p.k, full = D / kBlock * kBlock;
    std::vector<int> order(static_cast<size_t>(k));
    std::vector<const void*> rows(static_cast<size_t>(k));
    std::vector<float> ws(static_cast<size_t>(k));
    for (int64_t t = t0; t < t1; ++t) {
      sumOrder(p.ids + t * k, k, order.data());
      for (int64_t jj = 0; jj < k; ++jj) {
        const int j = order[jj];
        ws[jj] = p.weights[t * k + j];
        rows[jj] = at(p.expertOut, ET, int64_t(p.rowOfSlot[t * k + j]) * D);
      }
      const void* shared = p.shared ? at(p.shared, ST, t * D) : nullptr;
      void* out = at(p.out, OT, t * D);
      const bool rowStream = stream && (reinterpret_cast<uintptr_t>(out) & 63) == 0;
      for (int64_t i = 0; i < full; i += kBlock) {
        F acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
        for (int64_t jj = 0; jj < k; ++jj) {
          const F w = V::set1(ws[jj]);
          for (int q = 0; q < 4; ++q) acc[q] = acc[q] + opaque(w * load<V, ET>(rows[jj], i + q * L));
        }
        if (shared)
          for (int q = 0; q < 4; ++q) acc[q] = acc[q] + load<V, ST>(shared, i + q * L);
        for (int q = 0; q < 4; ++q) {
          if (rowStream) storeStream<V, OT>(out, i + q * L, acc[q]);
          else store<V, OT>(out, i + q * L, acc[q]);
        }
      }
      for (int64_t i = full; i < D; i += L) {
        const int64_t n = D - i < L ? D - i : L;
        F acc = V::zero();
        for (int64_t jj = 0; jj < k; ++jj) acc = acc + opaque(V::set1(ws[jj]) * loadPart<V, ET>(rows[jj], i, n));
        if (shared) acc = acc + loadPart<V, ST>(shared, i, n);
        storePart<V, OT>(out, i, acc, n);
      }
    }
    if (stream) V::streamFence();
  }
};

}  // namespace

void moeCombine(const MoeCombineParams& p, ThreadPool& pool) {
  const int64_t S = p.tokens * p.k;
  for (int64_t s = 0; s < S; ++s)
    if (p.rowOfSlot[s] < 0 || p.rowOfSlot[s] >= p.expertRows)
      throwRange("rowOfSlot[", s, "] = ", p.rowOfSlot[s], " is outside the ", p.expertRows, " rows of expertOut");
  const Simd level = simdLevel();
  // Without a shared term its dtype does not matter: use the expert rows' to halve the variants.
  const DType sType = p.shared ? p.sType : p.eType;
  const bool stream = p.tokens * p.dim * int64_t(dtypeSize(p.outType)) >= kStreamBytes;
  pool.parallelFor(p.tokens, [&](int64_t t0, int64_t t1) {
    withActType(p.eType, [&](auto E) {
      withActType(sType, [&](auto S) {
        withActType(p.outType, [&](auto O) {
          runOn<CombineKernel<decltype(E)::value, decltype(S)::value, decltype(O)::value>>(level, p, t0, t1, stream);
        });
      });
    });
  }, 1);
}

}  // namespace dsn::cpu
