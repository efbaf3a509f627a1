// The f32 kernel sets of the GEMM engine, avx2Set() and avx512Set(): every kernel is one body over
// vec.h's vector type V, compiled for AVX2 (8 lanes, 16 registers) and AVX-512 (16 lanes, 32
// registers) through OnTarget<V>. Register tiles are sized from V::kRegisters, so each path keeps the
// shape that fits its register file:
//   packed tile      6 rows × (kRegisters / 8) vectors of W: 6 × 16 (AVX2), 6 × 64 (AVX-512)
//   few rows of A    W streamed once, lanes along k for [N, K] weights (f32, or bf16 decoded on the
//                    bits), lanes along n for [K, N] weights (bmmHeads)
// An FP8 W with few rows of A goes to the AVX2 even/odd kernel (gemm_fp8_avx2.cc) on both paths.
// Operands are widened exactly (vec.h's loads), so each kernel's sums depend only on its order of
// operations, which is the same on both paths wherever the lane count does not enter it: the packed
// tile and the [K, N] few-rows kernel give the same bits on AVX2 and AVX-512 (test/ops/gemm.test.ts);
// the lanes-along-k few-rows kernels sum in lane-count-dependent order.
#include "gemm_x86.h"

namespace dsn::cpu::gemmk {

namespace {

/** The packed register tile of path V: kMr rows of A × kNr columns of W (kNv vectors), so that the
 *  kMr · kNv accumulators, kNv W vectors and one broadcast fit the register file. */
template <class V>
struct Tile {
  static constexpr int kMr = 6, kNv = V::kRegisters / 8, kNr = kNv * V::kLanes;
};

/** y[m, n] of an f32 or bf16 output. */
inline void storeY(const Problem& p, int64_t m, int64_t n, float v) {
  if (p.yType == DType::f32) static_cast<float*>(p.y)[m * p.ldy + n] = v;
  else static_cast<uint16_t*>(p.y)[m * p.ldy + n] = f32ToBf16(v);
}

// ---- packed tiles ----

/** A rows [m0, m0 + rows), k in [k0, k0 + klen) → dst[group][i][k] f32, rows padded to a multiple of
 *  kMr with zeros. */
struct PackA {
  template <class V>
  static void run(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
    constexpr int L = V::kLanes, MR = Tile<V>::kMr;
    const int64_t padded = (rows + MR - 1) / MR * MR;
    float* d = reinterpret_cast<float*>(dst);
    for (int64_t r = 0; r < padded; ++r) {
      const int64_t base = (m0 + r) * p.lda + k0;
      for (int64_t k = 0; k < klen; k += L) {
        const int64_t have = std::min<int64_t>(L, klen - k);
        const auto v = r < rows ? loadAnyUpTo<V>(p.a, p.aType, base + k, have) : V::zero();
        if (have == L) store<V, DType::f32>(d, r * klen + k, v);
        else storePart<V, DType::f32>(d, r * klen + k, v, have);
      }
    }
  }
};

/** W columns [n0, n0 + kNr) (zero past N), same k range → dst[k][kNr] f32: from [N, K] by
 *  kLanes × kLanes transposes, from [K, N] row by row. */
struct PackW {
  template <class V>
  static void run(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
    constexpr int L = V::kLanes, NV = Tile<V>::kNv, NR = Tile<V>::kNr;
    float* d = reinterpret_cast<float*>(dst);
    if (p.wKN) {
      for (int64_t k = 0; k < klen; ++k)
        for (int v = 0; v < NV; ++v)
          store<V, DType::f32>(d, k * NR + L * v, loadAnyUpTo<V>(p.w, p.wType, (k0 + k) * p.ldw + n0 + L * v, p.N - n0 - L * v));
      return;
    }
    for (int g = 0; g < NV; ++g)
      for (int64_t k = 0; k < klen; k += L) {
        const int64_t have = std::min<int64_t>(L, klen - k);
        typename V::F r[L];
        for (int i = 0; i < L; ++i) {
          const int64_t n = n0 + L * g + i;
          r[i] = n < p.N ? loadAnyUpTo<V>(p.w, p.wType, n * p.ldw + k0 + k, have) : V::zero();
        }
        V::transpose(r);
        for (int c = 0; c < have; ++c) store<V, DType::f32>(d, (k + c) * NR + L * g, r[c]);
      }
  }
};

/** c[i][j] += (Σ_s ap[i][s] · wp[s][j]) · scale[i] over the kMr × kNr tile, one fused multiply-add
 *  chain per element in s order. */
struct Micro {
  template <class V>
  static void run(int64_t slots, const uint32_t* ap_, const uint32_t* wp_, const float* scale, float* c, int64_t ldc) {
    constexpr int L = V::kLanes, MR = Tile<V>::kMr, NV = Tile<V>::kNv, NR = Tile<V>::kNr;
    using F = typename V::F;
    const float* ap = reinterpret_cast<const float*>(ap_);
    const float* wp = reinterpret_cast<const float*>(wp_);
    F t[MR][NV];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) t[i][v] = V::zero();
    for (int64_t s = 0; s < slots; ++s) {
      F w[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) w[v] = load<V, DType::f32>(wp, s * NR + L * v);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const F a = V::set1(ap[i * slots + s]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) t[i][v] = V::fma(a, w[v], t[i][v]);
      }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const F sc = V::set1(scale[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) store<V, DType::f32>(c, i * ldc + L * v, V::fma(t[i][v], sc, load<V, DType::f32>(c, i * ldc + L * v)));
    }
  }
};

// ---- few rows of A against an f32 [N, K] W: W streamed once, lanes along k ----

/** W row n over k in [c0, c1): M accumulators from / to cb between K chunks, y after the last. */
template <class V, int M>
inline void f32WRow(const Problem& p, int64_t n, int64_t Kp, const float* ap, const float* ahead, int64_t c0, int64_t c1,
                    typename V::F* cb) {
  constexpr int L = V::kLanes;
  using F = typename V::F;
  F acc[M], acc2[M];  // two chains a row of A: even and odd steps of L
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m) {
    acc[m] = c0 == 0 ? V::zero() : cb[m];
    acc2[m] = V::zero();
  }
  const float* row = static_cast<const float*>(p.w) + n * p.ldw;
  int64_t k = c0;
  for (; k + 2 * L <= c1; k += 2 * L) {
    for (int b = 0; b < 2 * L; b += 16) _mm_prefetch(reinterpret_cast<const char*>(ahead + k + b), _MM_HINT_T0);
    const F w0 = load<V, DType::f32>(row, k), w1 = load<V, DType::f32>(row, k + L);
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      acc[m] = V::fma(load<V, DType::f32>(ap, m * Kp + k), w0, acc[m]);
      acc2[m] = V::fma(load<V, DType::f32>(ap, m * Kp + k + L), w1, acc2[m]);
    }
  }
  for (; k < c1; k += L) {
    const F w0 = loadAnyUpTo<V>(row, DType::f32, k, c1 - k);
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) acc[m] = V::fma(load<V, DType::f32>(ap, m * Kp + k), w0, acc[m]);
  }
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m) acc[m] = acc[m] + acc2[m];
  if (c1 < p.K) {
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) cb[m] = acc[m];
  } else {
    for (int m = 0; m < M; ++m) storeY(p, m, n, V::reduceAdd(acc[m]));
  }
}

template <int M>
struct SmallMF32 {
  template <class V>
  static void run(const Problem& p, int64_t n0, int64_t n1) {
    constexpr int L = V::kLanes;
    using F = typename V::F;
    const int64_t K = p.K, Kp = (K + L - 1) / L * L;
    float* ap = tlsSmallA.get<float>(size_t(M * Kp));
    loadARows<V>(p, M, Kp, ap);
    // A chunk in L1 (≤ 16 KB, a multiple of 128 elements); accumulators of rowsPerPass rows.
    const int64_t chunk = std::max<int64_t>(kBlockK, (4096 / M) / kBlockK * kBlockK);
    const int64_t rowsPerPass = 128 / M;
    F* cbuf = tlsSmallC.get<F>(size_t(rowsPerPass * M));
    forRowGroups<1>(static_cast<const float*>(p.w), p.ldw, n0, n1, rowsPerPass, K, chunk,
                    [&](auto, int64_t n, const float* ahead, int64_t c0, int64_t c1, int64_t slot) {
                      f32WRow<V, M>(p, n, Kp, ap, ahead, c0, c1, cbuf + slot * M);
                    });
  }
};

// ---- few rows of A against a bf16 [N, K] W: W streamed once, decoded on the bits ----
//
// A load of 2·kLanes bf16 of a W row holds them as kLanes dwords (k = 2j, 2j + 1): `dword << 16` is
// the f32 of the even k, `dword & 0xffff0000` that of the odd k: two bit operations widen them all.
// A's rows are packed in the same order (per 2·kLanes k: the even ones, then the odd ones, zero-
// padded). NR rows of W share each A load when rows are long; short rows are read one at a time.

/** W rows [n, n + NR) over k in [c0, c1): accumulators from / to cb ([NR][M]) between K chunks, the
 *  horizontal sums into y after the last. */
template <class V, int M, int NR>
inline void bf16WGroup(const Problem& p, int64_t n, int64_t Kp, const float* ap, const uint16_t* ahead, int64_t c0, int64_t c1,
                       typename V::F* cb) {
  constexpr int L = V::kLanes;
  constexpr bool kSplit = M * NR <= V::kRegisters / 4;  // even and odd sums apart while registers allow
  using F = typename V::F;
  const int64_t K = p.K, ldw = p.ldw;
  const uint16_t* row = static_cast<const uint16_t*>(p.w) + n * ldw;
  F acc[NR][M], acc2[NR][kSplit ? M : 1];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      acc[r][m] = c0 == 0 ? V::zero() : cb[r * M + m];
      if constexpr (kSplit) acc2[r][m] = V::zero();
    }
  for (int64_t k = c0; k < c1; k += 2 * L) {
    F we[NR], wo[NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      if (k + 2 * L <= K) {
        if (k % 32 == 0) _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + k), _MM_HINT_T0);
        V::loadBf16Pairs(row + r * ldw + k, we[r], wo[r]);
      } else {  // the tail of K: W zero-padded (A is too)
        alignas(64) uint16_t tmp[2 * L] = {};
        for (int64_t j = k; j < K; ++j) tmp[j - k] = row[r * ldw + j];
        V::loadBf16Pairs(tmp, we[r], wo[r]);
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      const F ae = load<V, DType::f32>(ap, m * Kp + k), ao = load<V, DType::f32>(ap, m * Kp + k + L);
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        acc[r][m] = V::fma(ae, we[r], acc[r][m]);
        if constexpr (kSplit) acc2[r][m] = V::fma(ao, wo[r], acc2[r][m]);
        else acc[r][m] = V::fma(ao, wo[r], acc[r][m]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) {
    if constexpr (kSplit)
      for (int m = 0; m < M; ++m) acc[r][m] = acc[r][m] + acc2[r][m];
    for (int m = 0; m < M; ++m) {
      if (c1 < Kp) cb[r * M + m] = acc[r][m];
      else storeY(p, m, n + r, V::reduceAdd(acc[r][m]));
    }
  }
}

template <class V, int M, int NR>
inline void bf16WRows(const Problem& p, int64_t n0, int64_t n1) {
  constexpr int L = V::kLanes;
  using F = typename V::F;
  const int64_t K = p.K, Kp = (K + 2 * L - 1) / (2 * L) * (2 * L);
  float* ap = tlsSmallA.get<float>(size_t(M * Kp));
  PackAEvenOdd::run<V>(p, M, Kp, ap);
  // A chunk in L1: M rows × chunk f32 ≤ 16 KB; parked accumulators of rowsPerPass rows. One or two
  // rows of A are read whole (from L2 when long): measured 1.1 × faster at K = 7168 than chunks.
  const int64_t chunk = M <= 2 ? Kp : std::max<int64_t>(2 * L, (4096 / M) / (2 * L) * (2 * L));
  const int64_t rowsPerPass = std::max<int64_t>(NR, 256 / M / NR * NR);
  F* cbuf = tlsSmallC.get<F>(size_t(rowsPerPass * M));
  forRowGroups<NR>(static_cast<const uint16_t*>(p.w), p.ldw, n0, n1, rowsPerPass, Kp, chunk,
                   [&](auto rows, int64_t n, const uint16_t* ahead, int64_t c0, int64_t c1, int64_t slot) {
                     bf16WGroup<V, M, decltype(rows)::value>(p, n, Kp, ap, ahead, c0, c1, cbuf + slot * M);
                   });
}

template <int M>
struct SmallMBf16W {
  /** Long rows (≥ 4 KB) and one or two rows of A: kRegisters / 8 rows of W side by side. */
  template <class V>
  static void run(const Problem& p, int64_t n0, int64_t n1) {
    if (p.K * 2 >= 4096 && M <= 2) bf16WRows<V, M, V::kRegisters / 8>(p, n0, n1);
    else bf16WRows<V, M, 1>(p, n0, n1);
  }
};

// ---- few rows of A against a [K, N] W (bmmHeads): lanes along n, A broadcast, W rows streamed once ----

template <int M>
struct SmallMKN {
  template <class V>
  static void run(const Problem& p, int64_t n0, int64_t n1) {
    constexpr int L = V::kLanes;
    constexpr int NV = std::min(4, V::kRegisters * 3 / 4 / M);  // M · NV accumulators: 3/4 of the registers
    using F = typename V::F;
    const int64_t Kp = (p.K + L - 1) / L * L;
    float* ap = tlsSmallA.get<float>(size_t(M * Kp));
    loadARows<V>(p, M, Kp, ap);
    const int64_t es = int64_t(dtypeSize(p.wType));
    for (int64_t c = n0; c < n1; c += L * NV) {
      int64_t have[NV];
      for (int v = 0; v < NV; ++v) have[v] = std::max<int64_t>(0, std::min<int64_t>(L, n1 - c - L * v));
      F acc[M][NV];
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[m][v] = V::zero();
      for (int64_t k = 0; k < p.K; ++k) {
        const int64_t base = k * p.ldw + c;
        _mm_prefetch(static_cast<const char*>(p.w) + (base + 8 * p.ldw) * es, _MM_HINT_T0);
        F wv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) wv[v] = loadAnyUpTo<V>(p.w, p.wType, base + L * v, have[v]);
#pragma GCC unroll 8
        for (int m = 0; m < M; ++m) {
          const F a = V::set1(ap[m * Kp + k]);
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[m][v] = V::fma(a, wv[v], acc[m][v]);
        }
      }
      for (int m = 0; m < M; ++m)
        for (int v = 0; v < NV; ++v) {
          const int64_t at = m * p.ldy + c + L * v;
          if (have[v] == L) {
            if (p.yType == DType::f32) store<V, DType::f32>(p.y, at, acc[m][v]);
            else store<V, DType::bf16>(p.y, at, acc[m][v]);
          } else if (have[v] > 0) {
            if (p.yType == DType::f32) storePart<V, DType::f32>(p.y, at, acc[m][v], have[v]);
            else storePart<V, DType::bf16>(p.y, at, acc[m][v], have[v]);
          }
        }
    }
  }
};

// ---- the sets ----

template <class V>
struct F32Set {
  static void packA(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
    OnTarget<V>::template run<PackA>(p, m0, rows, k0, klen, dst);
  }
  static void packW(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
    OnTarget<V>::template run<PackW>(p, n0, k0, klen, dst);
  }
  static void micro(int64_t slots, const uint32_t* ap, const uint32_t* wp, const float* scale, float* c, int64_t ldc) {
    OnTarget<V>::template run<Micro>(slots, ap, wp, scale, c, ldc);
  }
  /** Few rows of A (M ≤ 8): the streaming kernels; false for what they do not handle. */
  static bool smallM(const Problem& p, int64_t n0, int64_t n1) {
    if (p.wKN) {
      if (p.aScales || p.wScales || p.wType == DType::f8e4m3) return false;
      return dispatchSmallM(p.M, [&](auto m) { OnTarget<V>::template run<SmallMKN<decltype(m)::value>>(p, n0, n1); });
    }
    switch (p.wType) {
      case DType::f8e4m3:
        // The AVX2 kernel on both paths: on cores with AVX-512 but not AVX512-BF16 (Intel Skylake-SP
        // to Ice Lake) it ran 1.1–1.8× as fast as a 16-lane one at M = 1…4 (bench/README.md).
        return smallMFp8Avx2(p, n0, n1);
      case DType::bf16:
        if (p.aScales || p.wScales) return false;
        return dispatchSmallM(p.M, [&](auto m) { OnTarget<V>::template run<SmallMBf16W<decltype(m)::value>>(p, n0, n1); });
      case DType::f32:
        if (p.aScales || p.wScales) return false;
        return dispatchSmallM(p.M, [&](auto m) { OnTarget<V>::template run<SmallMF32<decltype(m)::value>>(p, n0, n1); });
      default: return false;
    }
  }
  static const KernelSet* get(const char* name) {
    static const KernelSet set = {name, Tile<V>::kMr, Tile<V>::kNr, false, packA, packW, micro, smallM};
    return &set;
  }
};

}  // namespace

bool smallMAvx512(const Problem& p, int64_t n0, int64_t n1) { return F32Set<Avx512>::smallM(p, n0, n1); }

const KernelSet* avx2Set() { return F32Set<Avx2>::get("avx2"); }
const KernelSet* avx512Set() { return F32Set<Avx512>::get("avx512"); }

}  // namespace dsn::cpu::gemmk
