// CPU element-wise kernels (add, mul, silu, scale, swiglu's product) and copies (slice, concat,
// row gathers). Math in f32, inputs and outputs f32 or bf16, the same bits on every SIMD path.
//
// The map drivers below apply a functor to one or two input streams: the functor's apply<V> is
// written once for every path's vector type (vec.h) and keeps to vec.h's determinism rule.
#pragma once
#include <cstdint>
#include <limits>

#include "../params/elementwise.h"
#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"
#include "convert.h"

namespace dsn::cpu {

// ---------------- functors: one operator() for every path's vector type ----------------
struct AddOp {
  template <class V> typename V::F apply(typename V::F a, typename V::F b) const { return a + b; }
};
struct MulOp {
  template <class V> typename V::F apply(typename V::F a, typename V::F b) const { return a * b; }
};
/** silu(g)·u = g / (1 + e^−g) · u */
struct SwigluOp {
  template <class V> typename V::F apply(typename V::F g, typename V::F u) const { return V::silu(g) * u; }
};
struct SiluOp {
  template <class V> typename V::F apply(typename V::F x) const { return V::silu(x); }
};
struct ScaleOp {
  float s;
  template <class V> typename V::F apply(typename V::F x) const { return x * V::set1(s); }
};

// ---------------- drivers: out[i] = op(a[i]) or op(a[i], b[i]) for i < n ----------------
namespace detail {

/** out[i] = op(in(i)) for i < n, `in` giving kLanes (or the first k) elements at i. */
template <class V, DType TO, class In, class Op>
inline void mapLanes(void* out, int64_t n, bool stream, In&& in, const Op& op) {
  constexpr int L = V::kLanes;
  int64_t i = 0;
  if (stream && L > 1 && reinterpret_cast<uintptr_t>(out) % dtypeSize(TO) == 0) {
    for (const int64_t head = headToAlign(out, dtypeSize(TO), n); i < head;) {
      const int64_t k = head - i < L ? head - i : L;
      storePart<V, TO>(out, i, in(i, k), k);
      i += k;
    }
    for (; i + L <= n; i += L) storeStream<V, TO>(out, i, in(i, L));
    V::streamFence();
  }
  for (; i + L <= n; i += L) store<V, TO>(out, i, in(i, L));
  if (i < n) storePart<V, TO>(out, i, in(i, n - i), n - i);
}

template <DType TA, DType TO, class Op>
struct Map1Kernel {
  template <class V>
  static void run(const void* a, void* out, int64_t n, const Op& op, bool stream) {
    mapLanes<V, TO>(out, n, stream, [&](int64_t i, int64_t k) {
      return op.template apply<V>(k == V::kLanes ? load<V, TA>(a, i) : loadPart<V, TA>(a, i, k));
    }, op);
  }
};

template <DType TA, DType TB, DType TO, class Op>
struct Map2Kernel {
  template <class V>
  static void run(const void* a, const void* b, void* out, int64_t n, const Op& op, bool stream) {
    mapLanes<V, TO>(out, n, stream, [&](int64_t i, int64_t k) {
      const bool full = k == V::kLanes;
      return op.template apply<V>(full ? load<V, TA>(a, i) : loadPart<V, TA>(a, i, k), full ? load<V, TB>(b, i) : loadPart<V, TB>(b, i, k));
    }, op);
  }
};

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
  const Simd level = simdLevel();
  withActType(ta, [&](auto A) {
    withActType(to, [&](auto O) {
      runOn<detail::Map1Kernel<decltype(A)::value, decltype(O)::value, Op>>(level, a, out, n, op, stream);
    });
  });
}

/** out[i] = op(a[i], b[i]) for n elements; a, b and out f32 or bf16. `stream`: as for map1. */
template <class Op>
void map2(const void* a, DType ta, const void* b, DType tb, void* out, DType to, int64_t n, const Op& op, bool stream = false) {
  if (n <= 0) return;
  const Simd level = simdLevel();
  withActType(ta, [&](auto A) {
    withActType(tb, [&](auto B) {
      withActType(to, [&](auto O) {
        runOn<detail::Map2Kernel<decltype(A)::value, decltype(B)::value, decltype(O)::value, Op>>(level, a, b, out, n, op, stream);
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
struct SumKernel {
  /** x[i] into partial sum i mod 16 (16 / kLanes vectors), then foldSum16. */
  template <class V>
  static float run(const float* x, int64_t n) {
    constexpr int L = V::kLanes, NV = 16 / L;
    typename V::F acc[NV];
    for (auto& a : acc) a = V::zero();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      for (int q = 0; q < NV; ++q) acc[q] = acc[q] + load<V, DType::f32>(x, i + q * L);
    for (int q = 0; q < NV && i + q * L < n; ++q) {
      const int64_t j = i + q * L, k = n - j < L ? n - j : L;
      acc[q] = acc[q] + (k == L ? load<V, DType::f32>(x, j) : loadPart<V, DType::f32>(x, j, k));
    }
    alignas(64) float s[16];
    for (int q = 0; q < NV; ++q) V::toArray(s + q * L, acc[q]);
    return foldSum16(s);
  }
};
struct MaxKernel {
  /** max is exact, so any order gives the same value; NaN elements never win (maxps keeps m). */
  template <class V>
  static float run(const float* x, int64_t n) {
    constexpr int L = V::kLanes;
    typename V::F m = V::set1(-std::numeric_limits<float>::infinity());
    int64_t i = 0;
    for (; i + L <= n; i += L) m = V::max(load<V, DType::f32>(x, i), m);
    alignas(64) float s[L];
    V::toArray(s, m);
    float r = -std::numeric_limits<float>::infinity();
    for (int l = 0; l < L; ++l) r = s[l] > r ? s[l] : r;
    for (; i < n; ++i) r = x[i] > r ? x[i] : r;
    return r;
  }
};
}  // namespace detail

/** Σ x[i] in f32: x[i] goes to partial sum i mod 16, then a fixed fold; the same bits on every path. */
inline float sumF32(const float* x, int64_t n) { return runOn<detail::SumKernel>(simdLevel(), x, n); }

/** The largest non-NaN x[i] (−inf when there is none); exact, so the same on every path. */
inline float maxF32(const float* x, int64_t n) { return runOn<detail::MaxKernel>(simdLevel(), x, n); }

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
