// convert: a buffer of one float dtype to another (f32, bf16, f16, f8e4m3), one body for every SIMD
// path (vec.h), rounding as dtype.h bit for bit; loadF32 / storeF32 are its f32 forms.
#pragma once
#include "vec.h"

namespace dsn::cpu {

namespace detail {
template <DType From, DType To>
struct ConvertKernel {
  template <class V>
  static void run(const void* src, void* dst, int64_t n, bool stream) {
    constexpr int L = V::kLanes;
    int64_t i = 0;
    if (stream && L > 1 && reinterpret_cast<uintptr_t>(dst) % dtypeSize(To) == 0) {
      for (const int64_t head = headToAlign(dst, dtypeSize(To), n); i < head;) {
        const int64_t k = head - i < L ? head - i : L;
        storePart<V, To>(dst, i, loadPart<V, From>(src, i, k), k);
        i += k;
      }
      for (; i + L <= n; i += L) storeStream<V, To>(dst, i, load<V, From>(src, i));
      V::streamFence();
    }
    for (; i + 2 * L <= n; i += 2 * L) {
      const typename V::F a = load<V, From>(src, i), b = load<V, From>(src, i + L);
      store<V, To>(dst, i, a);
      store<V, To>(dst, i + L, b);
    }
    for (; i + L <= n; i += L) store<V, To>(dst, i, load<V, From>(src, i));
    if (i < n) storePart<V, To>(dst, i, loadPart<V, From>(src, i, n - i), n - i);
  }
};
}  // namespace detail

/** dst[i] = to(from(src[i])) for n elements; float dtypes only; same bits on every path. `stream`
 *  writes with non-temporal stores (for outputs of kStreamBytes and more). */
inline void convert(const void* src, DType from, void* dst, DType to, int64_t n, bool stream = false) {
  if (n <= 0) return;
  if (from == to) {
    std::memcpy(dst, src, size_t(n) * dtypeSize(from));
    return;
  }
  const Simd level = simdLevel();
  withFloatType(from, [&](auto f) {
    withFloatType(to, [&](auto t) {
      constexpr DType F = decltype(f)::value, T = decltype(t)::value;
      runOn<detail::ConvertKernel<F, T>>(level, src, dst, n, stream);
    });
  });
}

/** dst[i] = float(src[i]) for n elements of `type` (f32, bf16, f16, f8e4m3). */
inline void loadF32(const void* src, DType type, int64_t n, float* dst) { convert(src, type, dst, DType::f32, n); }

/** dst[i] = type(src[i]) with round-to-nearest-even (f8e4m3 saturates at ±448). */
inline void storeF32(const float* src, DType type, int64_t n, void* dst) { convert(src, DType::f32, dst, type, n); }

}  // namespace dsn::cpu
