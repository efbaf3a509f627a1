// CPU element-wise kernels (add, mul, silu, scale, swiglu's product) and copies (slice, concat,
// row gathers). Math in f32, inputs and outputs f32 or bf16, the same bits on every SIMD path.
//
// The map drivers below apply a functor to one or two input streams: the functor has one
// operator() per path (float, __m256 under DSN_TARGET_AVX2, __m512 under DSN_TARGET_AVX512),
// and each path keeps to the determinism rule of convert.h.
#pragma once
#include <cstdint>
#include <limits>

#include "../params/elementwise.h"
#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"
#include "convert.h"

namespace dsn::cpu {

// ---------------- functors ----------------
struct AddOp {
  float operator()(float a, float b) const { return a + b; }
  DSN_TARGET_AVX2 __m256 operator()(__m256 a, __m256 b) const { return _mm256_add_ps(a, b); }
  DSN_TARGET_AVX512 __m512 operator()(__m512 a, __m512 b) const { return _mm512_add_ps(a, b); }
};
struct MulOp {
  float operator()(float a, float b) const { return a * b; }
  DSN_TARGET_AVX2 __m256 operator()(__m256 a, __m256 b) const { return _mm256_mul_ps(a, b); }
  DSN_TARGET_AVX512 __m512 operator()(__m512 a, __m512 b) const { return _mm512_mul_ps(a, b); }
};
/** silu(g)·u = g / (1 + e^−g) · u */
struct SwigluOp {
  float operator()(float g, float u) const { return sc::silu(g) * u; }
  DSN_TARGET_AVX2 __m256 operator()(__m256 g, __m256 u) const { return _mm256_mul_ps(x256::silu(g), u); }
  DSN_TARGET_AVX512 __m512 operator()(__m512 g, __m512 u) const { return _mm512_mul_ps(x512::silu(g), u); }
};
struct SiluOp {
  float operator()(float x) const { return sc::silu(x); }
  DSN_TARGET_AVX2 __m256 operator()(__m256 x) const { return x256::silu(x); }
  DSN_TARGET_AVX512 __m512 operator()(__m512 x) const { return x512::silu(x); }
};
struct ScaleOp {
  float s;
  float operator()(float x) const { return x * s; }
  DSN_TARGET_AVX2 __m256 operator()(__m256 x) const { return _mm256_mul_ps(x, _mm256_set1_ps(s)); }
  DSN_TARGET_AVX512 __m512 operator()(__m512 x) const { return _mm512_mul_ps(x, _mm512_set1_ps(s)); }
};

// ---------------- drivers: out[i] = op(a[i]) or op(a[i], b[i]) for i < n ----------------
namespace detail {

template <DType TA, DType TO, class Op>
void map1Scalar(const void* a, void* out, int64_t n, const Op& op) {
  for (int64_t i = 0; i < n; ++i) sc::store<TO>(out, i, op(sc::load<TA>(a, i)));
}
template <DType TA, DType TO, class Op>
DSN_TARGET_AVX2 void map1Avx2(const void* a, void* out, int64_t n, const Op& op, bool stream) {
  int64_t i = 0;
  if (stream && reinterpret_cast<uintptr_t>(out) % dtypeSize(TO) == 0) {
    for (const int64_t head = headToAlign(out, dtypeSize(TO), n); i < head;) {
      const int64_t k = head - i < 8 ? head - i : 8;
      x256::storePart<TO>(out, i, op(x256::loadPart<TA>(a, i, k)), k);
      i += k;
    }
    for (; i + 8 <= n; i += 8) x256::storeStream<TO>(out, i, op(x256::load<TA>(a, i)));
    _mm_sfence();
  }
  for (; i + 8 <= n; i += 8) x256::store<TO>(out, i, op(x256::load<TA>(a, i)));
  if (i < n) x256::storePart<TO>(out, i, op(x256::loadPart<TA>(a, i, n - i)), n - i);
}
template <DType TA, DType TO, class Op>
DSN_TARGET_AVX512 void map1Avx512(const void* a, void* out, int64_t n, const Op& op, bool stream) {
  int64_t i = 0;
  if (stream && reinterpret_cast<uintptr_t>(out) % dtypeSize(TO) == 0) {
    for (const int64_t head = headToAlign(out, dtypeSize(TO), n); i < head;) {
      const int64_t k = head - i < 16 ? head - i : 16;
      x512::storePart<TO>(out, i, op(x512::loadPart<TA>(a, i, k)), k);
      i += k;
    }
    for (; i + 16 <= n; i += 16) x512::storeStream<TO>(out, i, op(x512::load<TA>(a, i)));
    _mm_sfence();
  }
  for (; i + 16 <= n; i += 16) x512::store<TO>(out, i, op(x512::load<TA>(a, i)));
  if (i < n) x512::storePart<TO>(out, i, op(x512::loadPart<TA>(a, i, n - i)), n - i);
}

template <DType TA, DType TB, DType TO, class Op>
void map2Scalar(const void* a, const void* b, void* out, int64_t n, const Op& op) {
  for (int64_t i = 0; i < n; ++i) sc::store<TO>(out, i, op(sc::load<TA>(a, i), sc::load<TB>(b, i)));
}
template <DType TA, DType TB, DType TO, class Op>
DSN_TARGET_AVX2 void map2Avx2(const void* a, const void* b, void* out, int64_t n, const Op& op, bool stream) {
  int64_t i = 0;
  if (stream && reinterpret_cast<uintptr_t>(out) % dtypeSize(TO) == 0) {
    for (const int64_t head = headToAlign(out, dtypeSize(TO), n); i < head;) {
      const int64_t k = head - i < 8 ? head - i : 8;
      x256::storePart<TO>(out, i, op(x256::loadPart<TA>(a, i, k), x256::loadPart<TB>(b, i, k)), k);
      i += k;
    }
    for (; i + 8 <= n; i += 8) x256::storeStream<TO>(out, i, op(x256::load<TA>(a, i), x256::load<TB>(b, i)));
    _mm_sfence();
  }
  for (; i + 8 <= n; i += 8) x256::store<TO>(out, i, op(x256::load<TA>(a, i), x256::load<TB>(b, i)));
  if (i < n) x256::storePart<TO>(out, i, op(x256::loadPart<TA>(a, i, n - i), x256::loadPart<TB>(b, i, n - i)), n - i);
}
template <DType TA, DType TB, DType TO, class Op>
DSN_TARGET_AVX512 void map2Avx512(const void* a, const void* b, void* out, int64_t n, const Op& op, bool stream) {
  int64_t i = 0;
  if (stream && reinterpret_cast<uintptr_t>(out) % dtypeSize(TO) == 0) {
    for (const int64_t head = headToAlign(out, dtypeSize(TO), n); i < head;) {
      const int64_t k = head - i < 16 ? head - i : 16;
      x512::storePart<TO>(out, i, op(x512::loadPart<TA>(a, i, k), x512::loadPart<TB>(b, i, k)), k);
      i += k;
    }
    for (; i + 16 <= n; i += 16) x512::storeStream<TO>(out, i, op(x512::load<TA>(a, i), x512::load<TB>(b, i)));
    _mm_sfence();
  }
  for (; i + 16 <= n; i += 16) x512::store<TO>(out, i, op(x512::load<TA>(a, i), x512::load<TB>(b, i)));
  if (i < n) x512::storePart<TO>(out, i, op(x512::loadPart<TA>(a, i, n - i), x512::loadPart<TB>(b, i, n - i)), n - i);
}

}  // namespace detail

/** Calls f(std::integral_constant<DType, T>{}) for an activation dtype t (f32 or bf16). */
template <typename F>
inline void withActType(DType t, F&& f) {
  if (t == DType::f32) f(std::integral_constant<DType, DType::f32>{});
  else if (t == DType::bf16) f(std::integral_constant<DType, DType::bf16>{});
}

/** out[i] = op(a[i]) for n elements; a and out f32 or bf16. `stream`: non-temporal stores (for
 *  outputs of kStreamBytes and more). */
template <class Op>
void map1(const void* a, DType ta, void* out, DType to, int64_t n, const Op& op, bool stream = false) {
  if (n <= 0) return;
  Simd level = simdLevel();
  withActType(ta, [&](auto A) {
    withActType(to, [&](auto O) {
      constexpr DType TA = decltype(A)::value, TO = decltype(O)::value;
      if (level == Simd::Avx512) detail::map1Avx512<TA, TO>(a, out, n, op, stream);
      else if (level == Simd::Avx2) detail::map1Avx2<TA, TO>(a, out, n, op, stream);
      else detail::map1Scalar<TA, TO>(a, out, n, op);
    });
  });
}

/** out[i] = op(a[i], b[i]) for n elements; a, b and out f32 or bf16. `stream`: as for map1. */
template <class Op>
void map2(const void* a, DType ta, const void* b, DType tb, void* out, DType to, int64_t n, const Op& op, bool stream = false) {
  if (n <= 0) return;
  Simd level = simdLevel();
  withActType(ta, [&](auto A) {
    withActType(tb, [&](auto B) {
      withActType(to, [&](auto O) {
        constexpr DType TA = decltype(A)::value, TB = decltype(B)::value, TO = decltype(O)::value;
        if (level == Simd::Avx512) detail::map2Avx512<TA, TB, TO>(a, b, out, n, op, stream);
        else if (level == Simd::Avx2) detail::map2Avx2<TA, TB, TO>(a, b, out, n, op, stream);
        else detail::map2Scalar<TA, TB, TO>(a, b, out, n, op);
      });
    });
  });
}

// ---------------- reductions with one order on every path ----------------
namespace detail {
/** Folds 16 partial sums: l + l+8, l + l+4, l + l+2, l + l+1. */
inline float foldSum16(float* s) {
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) s[l] = s[l] + s[l + w];
  return s[0];
}
inline float sumScalar(const float* x, int64_t n) {
  float s[16] = {};
  for (int64_t i = 0; i < n; ++i) s[i % 16] = s[i % 16] + x[i];
  return foldSum16(s);
}
DSN_TARGET_AVX2 inline float sumAvx2(const float* x, int64_t n) {
  __m256 a = _mm256_setzero_ps(), b = a;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a = _mm256_add_ps(a, _mm256_loadu_ps(x + i));
    b = _mm256_add_ps(b, _mm256_loadu_ps(x + i + 8));
  }
  if (i < n) {
    a = _mm256_add_ps(a, n - i >= 8 ? _mm256_loadu_ps(x + i) : x256::loadPart<DType::f32>(x, i, n - i));
    if (n - i > 8) b = _mm256_add_ps(b, x256::loadPart<DType::f32>(x, i + 8, n - i - 8));
  }
  alignas(32) float s[16];
  _mm256_store_ps(s, a);
  _mm256_store_ps(s + 8, b);
  return foldSum16(s);
}
DSN_TARGET_AVX512 inline float sumAvx512(const float* x, int64_t n) {
  __m512 a = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) a = _mm512_add_ps(a, _mm512_loadu_ps(x + i));
  if (i < n) a = _mm512_add_ps(a, x512::loadPart<DType::f32>(x, i, n - i));
  alignas(64) float s[16];
  _mm512_store_ps(s, a);
  return foldSum16(s);
}
inline float maxScalar(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
DSN_TARGET_AVX512 inline float maxAvx512(const float* x, int64_t n) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 m = ninf;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(x + i), m);  // a NaN element keeps m
  if (i < n) m = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, x512::firstLanes(n - i), x + i), m);
  return _mm512_reduce_max_ps(m);
}
}  // namespace detail

/** Σ x[i] in f32: x[i] goes to partial sum i mod 16, then a fixed fold; the same bits on every path. */
inline float sumF32(const float* x, int64_t n) {
  switch (simdLevel()) {
    case Simd::Avx512: return detail::sumAvx512(x, n);
    case Simd::Avx2: return detail::sumAvx2(x, n);
    default: return detail::sumScalar(x, n);
  }
}

/** The largest non-NaN x[i] (−inf when there is none); exact, so the same on every path. */
inline float maxF32(const float* x, int64_t n) {
  return simdLevel() == Simd::Avx512 ? detail::maxAvx512(x, n) : detail::maxScalar(x, n);
}

// ---------------- ops ----------------
// The params (native/params/elementwise.h) are the ones cuda/elementwise.cu takes.
using dsn::BinaryKind;
using dsn::BinaryParams;
using dsn::CopyStridedParams;
using dsn::UnaryKind;
using dsn::UnaryParams;

/** out = a + b or a · b (p.kind), b broadcast along a's rows when p.period > 0. */
void binary(const BinaryParams& p, ThreadPool& pool);

/** out = silu(x) or x · scale (p.kind). */
void unary(const UnaryParams& p, ThreadPool& pool);

/** memcpy of `bytes`; with `stream`, non-temporal stores for the 64-byte-aligned part of dst. */
void copyBytes(void* dst, const void* src, int64_t bytes, bool stream);

/** Copies `rows` blocks of rowBytes from src (rows srcStride bytes apart) to dst (dstStride apart). */
void copyStrided(void* dst, int64_t dstStride, const void* src, int64_t srcStride, int64_t rows, int64_t rowBytes, ThreadPool& pool);
/** copyStrided with its arguments in params (slice, each part of concat). */
void copyStrided(const CopyStridedParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
