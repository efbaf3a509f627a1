#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "convert.h"
#include "elementwise.h"

namespace dsn::cpu {

namespace {

// ---------------- argmax of one row: first index of the largest non-NaN value ----------------
struct ArgmaxKernel {
  /** Lanes keep their own first best (lane indices as f32, exact below 2^24: hence chunks of 2^23);
   *  the lanes' results are merged by (value desc, index asc), then the tail, which comes after. */
  template <class V>
  static int32_t run(const float* x, int64_t n) {
    using F = typename V::F;
    constexpr int L = V::kLanes;
    constexpr int64_t kChunk = int64_t(1) << 23;
    float best = -std::numeric_limits<float>::infinity();
    int64_t at = 0;
    const int64_t full = n / L * L;
    for (int64_t c0 = 0; c0 < full; c0 += kChunk) {
      const int64_t c1 = full - c0 < kChunk ? full : c0 + kChunk;
      F lane = V::set1(-std::numeric_limits<float>::infinity()), laneAt = V::zero(), idx = V::iota();
      for (int64_t i = c0; i < c1; i += L) {
        const F v = load<V, DType::f32>(x, i);
        laneAt = V::selectGreater(v, lane, idx, laneAt);
        lane = V::selectGreater(v, lane, v, lane);
        idx = idx + V::set1(float(L));
      }
      alignas(64) float vals[L], ids[L];
      V::toArray(vals, lane);
      V::toArray(ids, laneAt);
      for (int l = 0; l < L; ++l) {
        const int64_t i = c0 + int64_t(ids[l]);
        if (vals[l] > best || (vals[l] == best && i < at)) { best = vals[l]; at = i; }
      }
    }
    for (int64_t i = full; i < n; ++i)
      if (x[i] > best) { best = x[i]; at = i; }
    return int32_t(at);
  }
};

int32_t argmaxRow(const float* x, int64_t n, Simd level) { return runOn<ArgmaxKernel>(level, x, n); }

/** e^((x − shift)/t)-style weights: e^(x/t − m), x/t rounded to f32 first. */
struct TempExpOp {
  float temperature, shift;
  template <class V> typename V::F apply(typename V::F x) const { return V::exp(x / V::set1(temperature) - V::set1(shift)); }
};

}  // namespace

void argmax(const ArgmaxParams& p, ThreadPool& pool) {
  const Simd level = simdLevel();
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) p.out[r] = argmaxRow(p.logits + r * p.vocab, p.vocab, level);
  }, 1);
}

/**
 * One row's draw from logits x[V]: p = softmax(x / t) (f32 weights, max-subtracted), restricted to the
 * topK largest (ties: lower id), then to the smallest prefix in descending p holding topP of what is
 * left, then to the ids with p >= minP · max p; the draw u in [0, 1) is mapped through the cumulative p
 * of the kept ids in ascending id order. `w` and `kept` are scratch of V entries.
 */
static int32_t sampleRow(const float* x, int64_t V, float temperature, int64_t topK, float topP, float minP, double u,
                         Simd level, std::vector<float>& w, std::vector<int32_t>& kept) {
  const int32_t best = argmaxRow(x, V, level);
  const float m = x[best] / temperature;
  if (!(std::isfinite(m))) return best;  // no finite logit (or an infinite one): the argmax is the draw
  // Unnormalised softmax weights; only ratios matter below. NaN logits weigh nothing.
  map1(x, DType::f32, w.data(), DType::f32, V, TempExpOp{temperature, m});
  for (int64_t i = 0; i < V; ++i)
    if (std::isnan(w[size_t(i)])) w[size_t(i)] = 0.0f;
  // Candidates by weight descending, ties by lower id.
  auto before = [&](int32_t a, int32_t b) { return w[size_t(a)] > w[size_t(b)] || (w[size_t(a)] == w[size_t(b)] && a < b); };
  const int64_t K = topK > 0 && topK < V ? topK : V;
  kept.resize(size_t(V));
  for (int64_t i = 0; i < V; ++i) kept[size_t(i)] = int32_t(i);
  if (K < V) {
    std::nth_element(kept.begin(), kept.begin() + K, kept.end(), before);
    kept.resize(size_t(K));
  }
  if (topP < 1.0f) {
    double total = 0;
    for (int32_t i : kept) total += w[size_t(i)];
    const double need = double(topP) * total;
    // Sort a growing head of the candidates until it holds the mass asked for.
    size_t head = std::min<size_t>(kept.size(), 256);
    for (;;) {
      std::partial_sort(kept.begin(), kept.begin() + head, kept.end(), before);
      double mass = 0;
      size_t n = 0;
      while (n < head && mass < need) mass += w[size_t(kept[n++])];
      if (mass >= need || head == kept.size()) {
        kept.resize(n);
        break;
      }
      head = std::min(kept.size(), head * 4);
    }
  }
  if (minP > 0.0f) {
    // The best weight is e^0 = 1 (the max was subtracted), so p_i / p_max is the weight itself.
    const float floor = minP;
    kept.erase(std::remove_if(kept.begin(), kept.end(), [&](int32_t i) { return w[size_t(i)] < floor && i != best; }), kept.end());
  }
  // Inverse CDF over the kept ids in ascending id order.
  std::sort(kept.begin(), kept.end());
  double total = 0;
  for (int32_t i : kept) total += w[size_t(i)];
  const double target = u * total;
  double cum = 0;
  int32_t pick = best;
  for (int32_t i : kept) {
    if (w[size_t(i)] <= 0) continue;
    pick = i;
    cum += w[size_t(i)];
    if (cum > target) break;
  }
  return pick;
}

void sample(const SampleParams& p, ThreadPool& pool) {
  const Simd level = simdLevel();
  const int64_t V = p.vocab;
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> w(static_cast<size_t>(V));
    std::vector<int32_t> kept;
    for (int64_t r = r0; r < r1; ++r)
      p.out[r] = sampleRow(p.logits + r * V, V, p.temperature, p.topK, p.topP, /*minP*/ 0.0f,
                           sampleUniform(p.seed, uint64_t(r)), level, w, kept);
  }, 1);
}

void sampleRows(const SampleRowsParams& p, ThreadPool& pool) {
  const Simd level = simdLevel();
  const int64_t V = p.vocab, N = p.topLogprobs;
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(V)), w(static_cast<size_t>(V));
    std::vector<int32_t> kept, order;
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = p.logits + r * V;
      const RowSampling& s = p.params[r];
      // Penalties on a copy: repetition on every listed id (prompt and output), frequency and
      // presence on ids the row has generated (count > 0), as vLLM applies them.
      std::copy(x, x + V, row.begin());
      for (int32_t k = p.historyOffsets[r]; k < p.historyOffsets[r + 1]; ++k) {
        const int32_t id = p.historyIds[k];
        const int32_t count = p.historyCounts[k];
        float& v = row[size_t(id)];
        if (s.repetitionPenalty != 1.0f) v = v > 0 ? v / s.repetitionPenalty : v * s.repetitionPenalty;
        if (count > 0) v -= s.frequencyPenalty * float(count) + s.presencePenalty;
      }
      const int32_t pick = s.temperature == 0.0f
          ? argmaxRow(row.data(), V, level)
          : sampleRow(row.data(), V, s.temperature, s.topK, s.topP, s.minP, sampleUniform(s.seed, s.step), level, w, kept);
      p.out[r] = pick;
      if (!p.logprobs) continue;
      // log softmax of the model's own logits (before penalties and temperature), in double.
      const float mx = x[argmaxRow(x, V, level)];
      double sum = 0;
      for (int64_t i = 0; i < V; ++i)
        if (!std::isnan(x[i])) sum += std::exp(double(x[i]) - double(mx));
      const double lse = double(mx) + std::log(sum);
      float* lp = p.logprobs + r * (1 + N);
      lp[0] = float(double(x[pick]) - lse);
      if (N > 0) {
        order.resize(size_t(V));
        for (int64_t i = 0; i < V; ++i) order[size_t(i)] = int32_t(i);
        auto larger = [&](int32_t a, int32_t b) {
          const float va = std::isnan(x[a]) ? -INFINITY : x[a], vb = std::isnan(x[b]) ? -INFINITY : x[b];
          return va > vb || (va == vb && a < b);
        };
        const int64_t n = std::min(N, V);
        std::partial_sort(order.begin(), order.begin() + n, order.end(), larger);
        for (int64_t j = 0; j < N; ++j) {
          const bool have = j < n;
          lp[1 + j] = have ? float(double(x[order[size_t(j)]]) - lse) : -INFINITY;
          p.topIds[r * N + j] = have ? order[size_t(j)] : -1;
        }
      }
    }
  }, 1);
}

}  // namespace dsn::cpu
