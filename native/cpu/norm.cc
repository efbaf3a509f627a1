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

// ---------------- scalar ----------------
template <DType XT, DType WT>
void rmsNormRowsScalar(const RmsNormParams& p, int64_t r0, int64_t r1, float* sum) {
  const int64_t D = p.dim;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * D;
    float acc[kPartials] = {};
    for (int64_t i = 0; i < D; ++i) {
      float v = sc::load<XT>(p.x, o + i);
      if (p.residual) {
        v = v + sc::load<XT>(p.residual, o + i);
        sc::store<XT>(p.residualOut, o + i, v);
        sum[i] = v;
      }
      acc[i % kPartials] = std::fma(v, v, acc[i % kPartials]);
    }
    for (int l = 0; l < 32; ++l) acc[l] = acc[l] + acc[l + 32];
    for (int l = 0; l < 16; ++l) acc[l] = acc[l] + acc[l + 16];
    const float inv = inverseRms(treeSum16(acc), p);
    for (int64_t i = 0; i < D; ++i) {
      float v = p.residual ? sum[i] : sc::load<XT>(p.x, o + i);
      sc::store<XT>(p.out, o + i, sc::load<WT>(p.weight, i) * (v * inv));
    }
  }
}

// ---------------- AVX2 ----------------
template <DType XT, DType WT>
DSN_TARGET_AVX2 void rmsNormRowsAvx2(const RmsNormParams& p, int64_t r0, int64_t r1, float* sum, bool stream) {
  using namespace x256;
  const int64_t D = p.dim;
  const bool hasRes = p.residual != nullptr;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * D;
    const void* x = at(p.x, XT, o);
    const void* res = hasRes ? at(p.residual, XT, o) : nullptr;
    void* resOut = hasRes ? at(p.residualOut, XT, o) : nullptr;
    __m256 acc[8];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t i = 0; i < D; i += kPartials) {
      for (int q = 0; q < 8; ++q) {
        const int64_t j = i + 8 * q, n = D - j;
        if (n <= 0) break;
        __m256 v;
        if (n >= 8) {
          v = load<XT>(x, j);
          if (hasRes) {
            v = _mm256_add_ps(v, load<XT>(res, j));
            store<XT>(resOut, j, v);
            _mm256_storeu_ps(sum + j, v);
          }
        } else {
          v = loadPart<XT>(x, j, n);
          if (hasRes) {
            v = _mm256_add_ps(v, loadPart<XT>(res, j, n));
            storePart<XT>(resOut, j, v, n);
            storePart<DType::f32>(sum, j, v, n);
          }
        }
        acc[q] = _mm256_fmadd_ps(v, v, acc[q]);
      }
    }
    alignas(32) float lanes[16];
    for (int q = 0; q < 4; ++q) acc[q] = _mm256_add_ps(acc[q], acc[q + 4]);
    _mm256_store_ps(lanes, _mm256_add_ps(acc[0], acc[2]));
    _mm256_store_ps(lanes + 8, _mm256_add_ps(acc[1], acc[3]));
    const __m256 inv = _mm256_set1_ps(inverseRms(treeSum16(lanes), p));
    int64_t i = 0;
    if (stream) {
      void* out = at(p.out, XT, o);
      for (const int64_t head = headToAlign(out, dtypeSize(XT), D); i < head;) {
        const int64_t n = head - i < 8 ? head - i : 8;
        __m256 v = hasRes ? loadPart<DType::f32>(sum, i, n) : loadPart<XT>(x, i, n);
        storePart<XT>(out, i, _mm256_mul_ps(loadPart<WT>(p.weight, i, n), _mm256_mul_ps(v, inv)), n);
        i += n;
      }
      // While this row streams out, fetch the next one, so reads and writes overlap.
      const char* next = r + 1 < r1 ? static_cast<const char*>(at(p.x, XT, o + D)) : nullptr;
      const char* nextRes = r + 1 < r1 && hasRes ? static_cast<const char*>(at(p.residual, XT, o + D)) : nullptr;
      for (; i + 8 <= D; i += 8) {
        if (next) {
          _mm_prefetch(next + i * int64_t(dtypeSize(XT)), _MM_HINT_T0);
          if (nextRes) _mm_prefetch(nextRes + i * int64_t(dtypeSize(XT)), _MM_HINT_T0);
        }
        __m256 v = hasRes ? _mm256_loadu_ps(sum + i) : load<XT>(x, i);
        storeStream<XT>(out, i, _mm256_mul_ps(load<WT>(p.weight, i), _mm256_mul_ps(v, inv)));
      }
    }
    for (; i + 8 <= D; i += 8) {
      __m256 v = hasRes ? _mm256_loadu_ps(sum + i) : load<XT>(x, i);
      store<XT>(p.out, o + i, _mm256_mul_ps(load<WT>(p.weight, i), _mm256_mul_ps(v, inv)));
    }
    if (i < D) {
      const int64_t n = D - i;
      __m256 v = hasRes ? loadPart<DType::f32>(sum, i, n) : loadPart<XT>(x, i, n);
      storePart<XT>(p.out, o + i, _mm256_mul_ps(loadPart<WT>(p.weight, i, n), _mm256_mul_ps(v, inv)), n);
    }
  }
}

// ---------------- AVX-512 ----------------
template <DType XT, DType WT>
DSN_TARGET_AVX512 void rmsNormRowsAvx512(const RmsNormParams& p, int64_t r0, int64_t r1, float* sum, bool stream) {
  using namespace x512;
  const int64_t D = p.dim;
  const bool hasRes = p.residual != nullptr;
  const int64_t full = D / kPartials * kPartials;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * D;
    const void* x = at(p.x, XT, o);
    const void* res = hasRes ? at(p.residual, XT, o) : nullptr;
    void* resOut = hasRes ? at(p.residualOut, XT, o) : nullptr;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    if (hasRes) {
      for (int64_t i = 0; i < full; i += kPartials) {
        __m512 v[4];
        for (int q = 0; q < 4; ++q) {
          v[q] = _mm512_add_ps(load<XT>(x, i + 16 * q), load<XT>(res, i + 16 * q));
          store<XT>(resOut, i + 16 * q, v[q]);
          _mm512_storeu_ps(sum + i + 16 * q, v[q]);
        }
        a0 = _mm512_fmadd_ps(v[0], v[0], a0);
        a1 = _mm512_fmadd_ps(v[1], v[1], a1);
        a2 = _mm512_fmadd_ps(v[2], v[2], a2);
        a3 = _mm512_fmadd_ps(v[3], v[3], a3);
      }
    } else {
      for (int64_t i = 0; i < full; i += kPartials) {
        __m512 v0 = load<XT>(x, i), v1 = load<XT>(x, i + 16), v2 = load<XT>(x, i + 32), v3 = load<XT>(x, i + 48);
        a0 = _mm512_fmadd_ps(v0, v0, a0);
        a1 = _mm512_fmadd_ps(v1, v1, a1);
        a2 = _mm512_fmadd_ps(v2, v2, a2);
        a3 = _mm512_fmadd_ps(v3, v3, a3);
      }
    }
    if (full < D) {
      __m512* acc[4] = {&a0, &a1, &a2, &a3};
      for (int q = 0; q < 4; ++q) {
        const int64_t j = full + 16 * q, n = D - j < 16 ? D - j : 16;
        if (n <= 0) break;
        __m512 v = loadPart<XT>(x, j, n);
        if (hasRes) {
          v = _mm512_add_ps(v, loadPart<XT>(res, j, n));
          storePart<XT>(resOut, j, v, n);
          storePart<DType::f32>(sum, j, v, n);
        }
        *acc[q] = _mm512_fmadd_ps(v, v, *acc[q]);
      }
    }
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
    const __m512 inv = _mm512_set1_ps(inverseRms(treeSum16(lanes), p));
    int64_t i = 0;
    if (stream) {
      void* out = at(p.out, XT, o);
      for (const int64_t head = headToAlign(out, dtypeSize(XT), D); i < head;) {
        const int64_t n = head - i < 16 ? head - i : 16;
        __m512 v = hasRes ? loadPart<DType::f32>(sum, i, n) : loadPart<XT>(x, i, n);
        storePart<XT>(out, i, _mm512_mul_ps(loadPart<WT>(p.weight, i, n), _mm512_mul_ps(v, inv)), n);
        i += n;
      }
      // While this row streams out, fetch the next one, so reads and writes overlap.
      const char* next = r + 1 < r1 ? static_cast<const char*>(at(p.x, XT, o + D)) : nullptr;
      const char* nextRes = r + 1 < r1 && hasRes ? static_cast<const char*>(at(p.residual, XT, o + D)) : nullptr;
      for (; i + 16 <= D; i += 16) {
        if (next) {
          _mm_prefetch(next + i * int64_t(dtypeSize(XT)), _MM_HINT_T0);
          if (nextRes) _mm_prefetch(nextRes + i * int64_t(dtypeSize(XT)), _MM_HINT_T0);
        }
        __m512 v = hasRes ? _mm512_loadu_ps(sum + i) : load<XT>(x, i);
        storeStream<XT>(out, i, _mm512_mul_ps(load<WT>(p.weight, i), _mm512_mul_ps(v, inv)));
      }
    }
    for (; i + 16 <= D; i += 16) {
      __m512 v = hasRes ? _mm512_loadu_ps(sum + i) : load<XT>(x, i);
      store<XT>(p.out, o + i, _mm512_mul_ps(load<WT>(p.weight, i), _mm512_mul_ps(v, inv)));
    }
    if (i < D) {
      const int64_t n = D - i;
      __m512 v = hasRes ? loadPart<DType::f32>(sum, i, n) : loadPart<XT>(x, i, n);
      storePart<XT>(p.out, o + i, _mm512_mul_ps(loadPart<WT>(p.weight, i, n), _mm512_mul_ps(v, inv)), n);
    }
  }
}

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
            if (level == Simd::Avx512) rmsNormRowsAvx512<XT, WT>(p, a, b, sum.data(), stream);
            else if (level == Simd::Avx2) rmsNormRowsAvx2<XT, WT>(p, a, b, sum.data(), stream);
            else rmsNormRowsScalar<XT, WT>(p, a, b, sum.data());
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
