#include "norm.h"

#include <cmath>
#include <vector>

#include "convert.h"
#include "quant.h"

namespace dsn::cpu {

namespace {

// The sum of squares of a row: element i goes to partial sum i mod 64 (a fused multiply-add), the
// 64 partial sums are then folded l + l+32, l + l+16, and the last 16 by treeSum16. Every path
// below computes exactly this.
constexpr int kPartials = 64;

inline float treeSum16(float* s) {
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) s[l] = s[l] + s[l + w];
  return s[0];
}

inline float inverseRms(float ss, const RmsNormParams& p) { return 1.0f / std::sqrt(ss / float(p.dim) + p.eps); }

/** Rows [r0, r1) of rmsNorm, one body for every path: with L lanes, 64 / L vectors hold the 64
 *  partial sums (element i in lane i mod L of vector (i mod 64) / L). `sum` is a row of scratch for
 *  x + residual. */
template <DType XT, DType WT>
struct RmsNormRows {
  template <class V>
  static void run(const RmsNormParams& p, int64_t r0, int64_t r1, float* sum, bool stream) {
    using F = typename V::F;
    constexpr int L = V::kLanes, NV = kPartials / L;
    static_assert(kPartials % L == 0, "a block of partial sums is whole vectors");
    const int64_t D = p.dim, full = D / kPartials * kPartials;
    const bool hasRes = p.residual != nullptr;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t o = r * D;
      const void* x = at(p.x, XT, o);
      const void* res = hasRes ? at(p.residual, XT, o) : nullptr;
      void* resOut = hasRes ? at(p.residualOut, XT, o) : nullptr;
      F acc[NV];
      for (auto& a : acc) a = V::zero();
      for (int64_t i = 0; i < full; i += kPartials)
        for (int q = 0; q < NV; ++q) {
          const int64_t j = i + q * L;
          F v = load<V, XT>(x, j);
          if (hasRes) {
            v = v + load<V, XT>(res, j);
            store<V, XT>(resOut, j, v);
            store<V, DType::f32>(sum, j, v);
          }
          acc[q] = V::fma(v, v, acc[q]);
        }
      for (int q = 0; q < NV && full + q * L < D; ++q) {
        const int64_t j = full + q * L, n = D - j < L ? D - j : L;
        F v = loadPart<V, XT>(x, j, n);
        if (hasRes) {
          v = v + loadPart<V, XT>(res, j, n);
          storePart<V, XT>(resOut, j, v, n);
          storePart<V, DType::f32>(sum, j, v, n);
        }
        acc[q] = V::fma(v, v, acc[q]);
      }
      alignas(64) float part[kPartials];
      for (int q = 0; q < NV; ++q) V::toArray(part + q * L, acc[q]);
      for (int l = 0; l < 32; ++l) part[l] = part[l] + part[l + 32];
      for (int l = 0; l < 16; ++l) part[l] = part[l] + part[l + 16];
      const F inv = V::set1(inverseRms(treeSum16(part), p));
      auto value = [&](int64_t i, int64_t n) {  // weight · (x · inv) for elements i … i + n − 1
        if (n == L) return load<V, WT>(p.weight, i) * ((hasRes ? load<V, DType::f32>(sum, i) : load<V, XT>(x, i)) * inv);
        return loadPart<V, WT>(p.weight, i, n) * ((hasRes ? loadPart<V, DType::f32>(sum, i, n) : loadPart<V, XT>(x, i, n)) * inv);
      };
      void* out = at(p.out, XT, o);
      int64_t i = 0;
      if (stream && L > 1) {
        for (const int64_t head = headToAlign(out, dtypeSize(XT), D); i < head;) {
          const int64_t n = head - i < L ? head - i : L;
          storePart<V, XT>(out, i, value(i, n), n);
          i += n;
        }
        // While this row streams out, fetch the next one, so reads and writes overlap.
        const char* next = r + 1 < r1 ? static_cast<const char*>(at(p.x, XT, o + D)) : nullptr;
        const char* nextRes = r + 1 < r1 && hasRes ? static_cast<const char*>(at(p.residual, XT, o + D)) : nullptr;
        for (; i + L <= D; i += L) {
          if (next) {
            __builtin_prefetch(next + i * int64_t(dtypeSize(XT)));
            if (nextRes) __builtin_prefetch(nextRes + i * int64_t(dtypeSize(XT)));
          }
          storeStream<V, XT>(out, i, value(i, L));
        }
      }
      for (; i + L <= D; i += L) store<V, XT>(out, i, value(i, L));
      if (i < D) storePart<V, XT>(out, i, value(i, D - i), D - i);
    }
  }
};

}  // namespace

void rmsNorm(const RmsNormParams& p, ThreadPool& pool) {
  const Simd level = simdLevel();
  // With the fused actQuant, out is read back at once: keep it in cache rather than streaming it.
  const bool stream = !p.codes && p.rows * p.dim * int64_t(dtypeSize(p.xType)) >= kStreamBytes;
  ActQuantParams quant;  // actQuant of out, a row at a time right after the row is written
  quant.x = p.out; quant.xType = p.xType; quant.codes = p.codes; quant.scales = p.scales;
  quant.rows = p.rows; quant.K = p.dim; quant.blockSize = kQuantBlock; quant.ue8m0 = p.ue8m0;
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> sum(p.residual ? size_t(p.dim) : 0);
    withFloatType(p.xType, [&](auto xt) {
      withFloatType(p.wType, [&](auto wt) {
        constexpr DType XT = decltype(xt)::value, WT = decltype(wt)::value;
        if constexpr ((XT == DType::f32 || XT == DType::bf16 || XT == DType::f16) && (WT == DType::f32 || WT == DType::bf16)) {
          auto rows = [&](int64_t a, int64_t b) {
            runOn<RmsNormRows<XT, WT>>(level, p, a, b, sum.data(), stream);
          };
          if (!p.codes) rows(r0, r1);
          else
            for (int64_t r = r0; r < r1; ++r) {
              rows(r, r + 1);
              actQuantRows(quant, r, r + 1, level);
            }
          if (stream) _mm_sfence();  // order the non-temporal stores before the op completes
        }
      });
    });
  }, 1);
}

void layerNorm(const LayerNormParams& p, ThreadPool& pool) {
  const bool stream = p.rows * p.dim * int64_t(dtypeSize(p.xType)) >= kStreamBytes;
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    const int64_t D = p.dim;
    std::vector<float> x(static_cast<size_t>(D)), w(static_cast<size_t>(D)), b(static_cast<size_t>(D), 0.0f);
    loadF32(p.weight, p.wType, D, w.data());
    if (p.bias) loadF32(p.bias, p.bType, D, b.data());
    for (int64_t r = r0; r < r1; ++r) {
      loadF32(at(p.x, p.xType, r * D), p.xType, D, x.data());
      // 8 partial sums in f32 (the same on every path: this part is plain scalar code).
      float s[8] = {};
      for (int64_t i = 0; i < D; ++i) s[i % 8] += x[i];
      const float mean = (((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]))) / float(D);
      float q[8] = {};
      for (int64_t i = 0; i < D; ++i) {
        const float d = x[i] - mean;
        q[i % 8] += d * d;
      }
      const float var = (((q[0] + q[4]) + (q[2] + q[6])) + ((q[1] + q[5]) + (q[3] + q[7]))) / float(D);
      const float rstd = 1.0f / std::sqrt(var + p.eps);
      for (int64_t i = 0; i < D; ++i) x[i] = (x[i] - mean) * rstd * w[i] + b[i];
      convert(x.data(), DType::f32, at(p.out, p.xType, r * D), p.xType, D, stream);
    }
  }, 1);
}

}  // namespace dsn::cpu
