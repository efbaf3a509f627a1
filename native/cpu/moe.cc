#include "moe.h"

#include <cstring>
#include <vector>

#include "../runtime/errors.h"
#include "convert.h"
#include "elementwise.h"

namespace dsn::cpu {

namespace {

struct SigmoidOp {
  float operator()(float x) const { return sc::sigmoid(x); }
  DSN_TARGET_AVX2 __m256 operator()(__m256 x) const { return x256::sigmoid(x); }
  DSN_TARGET_AVX512 __m512 operator()(__m512 x) const { return x512::sigmoid(x); }
};
/** e^(x − shift) */
struct ExpShiftOp {
  float shift;
  float operator()(float x) const { return sc::exp(x - shift); }
  DSN_TARGET_AVX2 __m256 operator()(__m256 x) const { return x256::exp(_mm256_sub_ps(x, _mm256_set1_ps(shift))); }
  DSN_TARGET_AVX512 __m512 operator()(__m512 x) const { return x512::exp(_mm512_sub_ps(x, _mm512_set1_ps(shift))); }
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

}  // namespace

void moeRoute(const MoeRouteParams& p, ThreadPool& pool) {
  const int64_t E = p.experts, G = p.nGroups, gs = E / G;
  pool.parallelFor(p.tokens, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores(static_cast<size_t>(E)), chosen(static_cast<size_t>(E)), groupScore(static_cast<size_t>(G)), topVals(static_cast<size_t>(p.topk));
    std::vector<char> keep(static_cast<size_t>(G));
    for (int64_t t = t0; t < t1; ++t) {
      const float* logits = p.logits + t * E;
      if (p.softmax) {
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t e = 0; e < E; ++e) mx = logits[e] > mx ? logits[e] : mx;
        map1(logits, DType::f32, scores.data(), DType::f32, E, ExpShiftOp{mx});
        float sum = 0;
        for (int64_t e = 0; e < E; ++e) sum += scores[e];
        for (int64_t e = 0; e < E; ++e) scores[e] = scores[e] / sum;
      } else {
        map1(logits, DType::f32, scores.data(), DType::f32, E, SigmoidOp{});
      }
      for (int64_t e = 0; e < E; ++e) chosen[e] = p.bias ? scores[e] + p.bias[e] : scores[e];
      // Group-limited routing: keep the topkGroups groups with the best group scores.
      if (G > 1) {
        for (int64_t g = 0; g < G; ++g) {
          const float* c = chosen.data() + g * gs;
          if (p.bias) {
            float a = -std::numeric_limits<float>::infinity(), b = a;  // a >= b: the top two
            for (int64_t e = 0; e < gs; ++e) {
              if (c[e] > a) { b = a; a = c[e]; }
              else if (c[e] > b) b = c[e];
            }
            groupScore[g] = a + b;
          } else {
            float a = -std::numeric_limits<float>::infinity();
            for (int64_t e = 0; e < gs; ++e) a = c[e] > a ? c[e] : a;
            groupScore[g] = a;
          }
          keep[g] = 0;
        }
        for (int k = 0; k < p.topkGroups; ++k) {
          int64_t best = -1;
          for (int64_t g = 0; g < G; ++g)
            if (!keep[g] && (best < 0 || groupScore[g] > groupScore[best])) best = g;
          keep[best] = 1;
        }
      }
      int32_t* ids = p.ids + t * p.topk;
      TopK top{p.topk, 0, topVals.data(), ids};
      for (int64_t g = 0; g < G; ++g) {
        if (G > 1 && !keep[g]) continue;
        for (int64_t e = g * gs; e < (g + 1) * gs; ++e) top.offer(chosen[e], int32_t(e));
      }
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
  pool.parallelFor(p.count, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::memcpy(dst + r * p.rowBytes, src + int64_t(p.index[r]) * p.rowBytes, size_t(p.rowBytes));
  }, grain);
}

void swiglu(const SwigluParams& p, ThreadPool& pool) {
  const int64_t I = p.inter;
  const int64_t grain = I > 0 ? (16384 + I - 1) / I : 1;
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const void* gate = at(p.gateUp, p.inType, r * 2 * I);
      const void* up = at(p.gateUp, p.inType, r * 2 * I + I);
      map2(gate, p.inType, up, p.inType, at(p.out, p.outType, r * I), p.outType, I, SwigluOp{});
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

// The product is rounded before it is added, as in the reference. The empty asm keeps the
// compiler from fusing the multiply into the add (it may in FMA-enabled code).
inline float opaque(float v) {
  __asm__("" : "+x"(v));
  return v;
}

template <DType ET, DType ST, DType OT>
void combineScalar(const MoeCombineParams& p, int64_t t0, int64_t t1, float* acc) {
  const int64_t D = p.dim, k = p.k;
  std::vector<int> order(static_cast<size_t>(k));
  for (int64_t t = t0; t < t1; ++t) {
    sumOrder(p.ids + t * k, k, order.data());
    for (int64_t i = 0; i < D; ++i) acc[i] = 0.0f;
    for (int64_t jj = 0; jj < k; ++jj) {
      const int j = order[jj];
      const float w = p.weights[t * k + j];
      const void* row = at(p.expertOut, ET, int64_t(p.rowOfSlot[t * k + j]) * D);
      for (int64_t i = 0; i < D; ++i) acc[i] = acc[i] + opaque(w * sc::load<ET>(row, i));
    }
    for (int64_t i = 0; i < D; ++i) {
      float v = p.shared ? acc[i] + sc::load<ST>(p.shared, t * D + i) : acc[i];
      sc::store<OT>(p.out, t * D + i, v);
    }
  }
}

template <DType ET, DType ST, DType OT>
DSN_TARGET_AVX2 void combineAvx2(const MoeCombineParams& p, int64_t t0, int64_t t1, float*) {
  using namespace x256;
  const int64_t D = p.dim, k = p.k;
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
    for (int64_t i = 0; i < D; i += 8) {
      const int64_t n = D - i < 8 ? D - i : 8;
      __m256 acc = _mm256_setzero_ps();
      for (int64_t jj = 0; jj < k; ++jj) {
        __m256 e = n == 8 ? load<ET>(rows[jj], i) : loadPart<ET>(rows[jj], i, n);
        __m256 prod = _mm256_mul_ps(_mm256_set1_ps(ws[jj]), e);
        __asm__("" : "+x"(prod));
        acc = _mm256_add_ps(acc, prod);
      }
      if (shared) acc = _mm256_add_ps(acc, n == 8 ? load<ST>(shared, i) : loadPart<ST>(shared, i, n));
      if (n == 8) store<OT>(out, i, acc);
      else storePart<OT>(out, i, acc, n);
    }
  }
}

template <DType ET, DType ST, DType OT>
DSN_TARGET_AVX512 void combineAvx512(const MoeCombineParams& p, int64_t t0, int64_t t1, float*) {
  using namespace x512;
  const int64_t D = p.dim, k = p.k;
  std::vector<int> order(static_cast<size_t>(k));
  std::vector<const void*> rows(static_cast<size_t>(k));
  std::vector<float> ws(static_cast<size_t>(k));
  const int64_t full = D / 64 * 64;
  for (int64_t t = t0; t < t1; ++t) {
    sumOrder(p.ids + t * k, k, order.data());
    for (int64_t jj = 0; jj < k; ++jj) {
      const int j = order[jj];
      ws[jj] = p.weights[t * k + j];
      rows[jj] = at(p.expertOut, ET, int64_t(p.rowOfSlot[t * k + j]) * D);
    }
    const void* shared = p.shared ? at(p.shared, ST, t * D) : nullptr;
    void* out = at(p.out, OT, t * D);
    // Blocks of 64 columns: four accumulators stay in registers across the k rows.
    for (int64_t i = 0; i < full; i += 64) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t jj = 0; jj < k; ++jj) {
        const __m512 w = _mm512_set1_ps(ws[jj]);
        __m512 p0 = _mm512_mul_ps(w, load<ET>(rows[jj], i)), p1 = _mm512_mul_ps(w, load<ET>(rows[jj], i + 16));
        __m512 p2 = _mm512_mul_ps(w, load<ET>(rows[jj], i + 32)), p3 = _mm512_mul_ps(w, load<ET>(rows[jj], i + 48));
        __asm__("" : "+v"(p0), "+v"(p1), "+v"(p2), "+v"(p3));
        a0 = _mm512_add_ps(a0, p0);
        a1 = _mm512_add_ps(a1, p1);
        a2 = _mm512_add_ps(a2, p2);
        a3 = _mm512_add_ps(a3, p3);
      }
      if (shared) {
        a0 = _mm512_add_ps(a0, load<ST>(shared, i));
        a1 = _mm512_add_ps(a1, load<ST>(shared, i + 16));
        a2 = _mm512_add_ps(a2, load<ST>(shared, i + 32));
        a3 = _mm512_add_ps(a3, load<ST>(shared, i + 48));
      }
      store<OT>(out, i, a0);
      store<OT>(out, i + 16, a1);
      store<OT>(out, i + 32, a2);
      store<OT>(out, i + 48, a3);
    }
    for (int64_t i = full; i < D; i += 16) {
      const int64_t n = D - i < 16 ? D - i : 16;
      __m512 acc = _mm512_setzero_ps();
      for (int64_t jj = 0; jj < k; ++jj) {
        __m512 prod = _mm512_mul_ps(_mm512_set1_ps(ws[jj]), loadPart<ET>(rows[jj], i, n));
        __asm__("" : "+v"(prod));
        acc = _mm512_add_ps(acc, prod);
      }
      if (shared) acc = _mm512_add_ps(acc, loadPart<ST>(shared, i, n));
      storePart<OT>(out, i, acc, n);
    }
  }
}

}  // namespace

void moeCombine(const MoeCombineParams& p, ThreadPool& pool) {
  const int64_t S = p.tokens * p.k;
  for (int64_t s = 0; s < S; ++s)
    if (p.rowOfSlot[s] < 0 || p.rowOfSlot[s] >= p.expertRows)
      throwRange("rowOfSlot[", s, "] = ", p.rowOfSlot[s], " is outside the ", p.expertRows, " rows of expertOut");
  const Simd level = simdLevel();
  // Without a shared term its dtype does not matter: use the expert rows' to halve the variants.
  const DType sType = p.shared ? p.sType : p.eType;
  pool.parallelFor(p.tokens, [&](int64_t t0, int64_t t1) {
    std::vector<float> acc(level == Simd::Scalar ? size_t(p.dim) : 0);
    withActType(p.eType, [&](auto E) {
      withActType(sType, [&](auto S) {
        withActType(p.outType, [&](auto O) {
          constexpr DType ET = decltype(E)::value, ST = decltype(S)::value, OT = decltype(O)::value;
          if (level == Simd::Avx512) combineAvx512<ET, ST, OT>(p, t0, t1, acc.data());
          else if (level == Simd::Avx2) combineAvx2<ET, ST, OT>(p, t0, t1, acc.data());
          else combineScalar<ET, ST, OT>(p, t0, t1, acc.data());
        });
      });
    });
  }, 1);
}

}  // namespace dsn::cpu
