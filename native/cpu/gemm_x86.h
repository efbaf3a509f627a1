// Shared pieces of the SIMD kernel sets of the GEMM engine (gemm_vec.cc: the f32 sets, one body per
// kernel over vec.h's V; gemm_fp8_avx2.cc; gemm_avx512bf16.cc): element loads of a row of any operand
// dtype as f32 vectors, the few-rows kernels' A packers, row walk and per-thread scratch. Internal to
// native/cpu.
#pragma once
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "../runtime/dtype.h"
#include "gemm_engine.h"
#include "vec.h"

// GCC 12 flags the undefined vectors inside its own AVX-512 intrinsics headers (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace dsn::cpu::gemmk {

/** kLanes elements of a row of operand dtype t (f32 | bf16 | f8e4m3) from element i, as f32. */
template <class V>
inline typename V::F loadAny(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return load<V, DType::f32>(base, i);
    case DType::bf16: return load<V, DType::bf16>(base, i);
    default: return load<V, DType::f8e4m3>(base, i);
  }
}

/** loadAny when n ≥ kLanes elements are left, else the first n (none when n ≤ 0) and zeros; reads
 *  nothing past them. */
template <class V>
inline typename V::F loadAnyUpTo(const void* base, DType t, int64_t i, int64_t n) {
  if (n >= V::kLanes) return loadAny<V>(base, t, i);
  if (n <= 0) return V::zero();
  switch (t) {
    case DType::f32: return loadPart<V, DType::f32>(base, i, n);
    case DType::bf16: return loadPart<V, DType::bf16>(base, i, n);
    default: return loadPart<V, DType::f8e4m3>(base, i, n);
  }
}

/** A's M rows as f32 for the few-rows kernels: ap[m · Kp + k], zero from K up to Kp (a multiple of
 *  kLanes). Call inside a kernel body (OnTarget<V>). */
template <class V>
inline void loadARows(const Problem& p, int M, int64_t Kp, float* ap) {
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < Kp; k += V::kLanes) store<V, DType::f32>(ap, m * Kp + k, loadAnyUpTo<V>(p.a, p.aType, m * p.lda + k, p.K - k));
}

/** loadARows in the order the few-rows kernels decode W in: per 2·kLanes k, the even-indexed elements,
 *  then the odd ones; Kp a multiple of 2·kLanes. */
struct PackAEvenOdd {
  template <class V>
  static void run(const Problem& p, int M, int64_t Kp, float* ap) {
    constexpr int L = V::kLanes;
    for (int m = 0; m < M; ++m)
      for (int64_t k = 0; k < Kp; k += 2 * L) {
        const typename V::F x0 = loadAnyUpTo<V>(p.a, p.aType, m * p.lda + k, p.K - k);
        const typename V::F x1 = loadAnyUpTo<V>(p.a, p.aType, m * p.lda + k + L, p.K - k - L);
        typename V::F even, odd;
        V::deinterleave(x0, x1, even, odd);
        store<V, DType::f32>(ap, m * Kp + k, even);
        store<V, DType::f32>(ap, m * Kp + k + L, odd);
      }
  }
};

/** The walk of a few-rows kernel over W rows [n0, n1) (W[n] = w + n · ldw): passes of rowsPerPass
 *  rows, whose accumulators wait between K chunks; each pass walks K in chunks [c0, c1) of `chunk`,
 *  up to kEnd, its rows in groups of NR and then one at a time:
 *  group(std::integral_constant<int, R>, n, ahead, c0, c1, slot) for R = NR or 1, where ahead is the
 *  row to prefetch (a group: 2·NR rows on while those exist; a row left over: itself) and slot = n −
 *  the pass's first row. */
template <int NR, class T, class Group>
inline void forRowGroups(const T* w, int64_t ldw, int64_t n0, int64_t n1, int64_t rowsPerPass, int64_t kEnd, int64_t chunk,
                         Group&& group) {
  for (int64_t r0 = n0; r0 < n1; r0 += rowsPerPass) {
    const int64_t r1 = std::min(n1, r0 + rowsPerPass);
    for (int64_t c0 = 0; c0 < kEnd; c0 += chunk) {
      const int64_t c1 = std::min(kEnd, c0 + chunk);
      int64_t n = r0;
      for (; n + NR <= r1; n += NR) {
        const T* row = w + n * ldw;
        group(std::integral_constant<int, NR>{}, n, n + 3 * NR <= r1 ? row + 2 * NR * ldw : row, c0, c1, n - r0);
      }
      for (; n < r1; ++n) {
        const T* row = w + n * ldw;
        group(std::integral_constant<int, 1>{}, n, row, c0, c1, n - r0);
      }
    }
  }
}

/** Per-thread scratch of the few-rows kernels: A rows, parked accumulators, scale products. */
inline thread_local Scratch tlsSmallA, tlsSmallC, tlsSmallS;

/** The AVX-512 f32 few-rows kernels (gemm_vec.cc); the BF16 set hands them the products it does not
 *  take (bf16 or f32 operands). Returns false when they do not handle the problem either. */
bool smallMAvx512(const Problem& p, int64_t n0, int64_t n1);

/** The AVX2 few-rows kernel for an FP8 W (gemm_fp8_avx2.cc), which the AVX-512 f32 set uses too.
 *  Returns false when it does not handle the problem (no scales, K % 128 ≠ 0, W [K, N], M > 8). */
bool smallMFp8Avx2(const Problem& p, int64_t n0, int64_t n1);

}  // namespace dsn::cpu::gemmk
