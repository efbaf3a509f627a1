// AVX-512 f32 kernel set of the GEMM engine: a 6 × 64 f32 register tile over packed panels, and
// streaming kernels for few rows of A: lanes along k for [N, K] weights, along n for [K, N] (bmmHeads).
#include "gemm_x86.h"

#if defined(__x86_64__)

namespace dsn::cpu::gemmk {

namespace {

// ---- AVX-512: 6 × 64 f32 ----

constexpr int kMr = 6, kNr = 64;

/** A rows → [group][i][k] f32. */
DSN_TARGET_AVX512 void packAAvx512(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  if (klen % 16 != 0) return packAGeneric(p, m0, rows, k0, klen, kMr, false, dst);
  const int64_t padded = (rows + kMr - 1) / kMr * kMr;
  for (int64_t r = 0; r < padded; ++r) {
    float* d = reinterpret_cast<float*>(dst + r * klen);
    if (r >= rows) {
      for (int64_t k = 0; k < klen; k += 16) _mm512_storeu_ps(d + k, _mm512_setzero_ps());
      continue;
    }
    const int64_t base = (m0 + r) * p.lda + k0;
    for (int64_t k = 0; k < klen; k += 16) _mm512_storeu_ps(d + k, load16F32(p.a, p.aType, base + k));
  }
}

/** W panel of 64 columns → [k][64] f32: from [N, K] by 16 × 16 transposes, from [K, N] by rows. */
DSN_TARGET_AVX512 void packWAvx512(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  float* d = reinterpret_cast<float*>(dst);
  if (p.wKN) {
    if (n0 + kNr > p.N) return packWGeneric(p, n0, k0, klen, kNr, false, dst);
    for (int64_t k = 0; k < klen; ++k)
      for (int v = 0; v < 4; ++v) _mm512_store_ps(d + k * kNr + 16 * v, load16F32(p.w, p.wType, (k0 + k) * p.ldw + n0 + 16 * v));
    return;
  }
  if (klen % 16 != 0) return packWGeneric(p, n0, k0, klen, kNr, false, dst);
  for (int g = 0; g < 4; ++g)
    for (int64_t k = 0; k < klen; k += 16) {
      __m512i rowsv[16], cols[16];
      for (int i = 0; i < 16; ++i) {
        int64_t n = n0 + 16 * g + i;
        rowsv[i] = n < p.N ? _mm512_castps_si512(load16F32(p.w, p.wType, n * p.ldw + k0 + k)) : _mm512_setzero_si512();
      }
      transpose16(rowsv, cols);
      for (int c = 0; c < 16; ++c) _mm512_store_si512(d + (k + c) * kNr + 16 * g, cols[c]);
    }
}

DSN_TARGET_AVX512 void microAvx512(int64_t slots, const uint32_t* ap_, const uint32_t* wp_, const float* scale, float* c, int64_t ldc) {
  const float* ap = reinterpret_cast<const float*>(ap_);
  const float* wp = reinterpret_cast<const float*>(wp_);
  __m512 t[kMr][4];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) t[i][0] = t[i][1] = t[i][2] = t[i][3] = _mm512_setzero_ps();
  for (int64_t s = 0; s < slots; ++s) {
    const float* w = wp + s * kNr;
    __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16), w2 = _mm512_load_ps(w + 32), w3 = _mm512_load_ps(w + 48);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      __m512 a = _mm512_set1_ps(ap[i * slots + s]);
      t[i][0] = _mm512_fmadd_ps(a, w0, t[i][0]);
      t[i][1] = _mm512_fmadd_ps(a, w1, t[i][1]);
      t[i][2] = _mm512_fmadd_ps(a, w2, t[i][2]);
      t[i][3] = _mm512_fmadd_ps(a, w3, t[i][3]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
    __m512 sc = _mm512_set1_ps(scale[i]);
    float* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(ci + 16 * v, _mm512_fmadd_ps(t[i][v], sc, _mm512_loadu_ps(ci + 16 * v)));
  }
}

// ---- AVX-512 f32, few rows of A: W streamed once, lanes along k ----


/** Writes the horizontal sums of acc[m] to y[m, n]. */
template <int M>
DSN_TARGET_AVX512 inline void finishRow(const Problem& p, int64_t n, const __m512* acc) {
  for (int m = 0; m < M; ++m) {
    float v = _mm512_reduce_add_ps(acc[m]);
    if (p.yType == DType::f32) static_cast<float*>(p.y)[m * p.ldy + n] = v;
    else static_cast<uint16_t*>(p.y)[m * p.ldy + n] = f32ToBf16(v);
  }
}

template <int M, DType WT>
DSN_TARGET_AVX512 void smallMF32Rows(const Problem& p, int64_t n0, int64_t n1) {
  static_assert(WT != DType::f8e4m3, "FP8 W goes to smallMFp8Avx2");
  const int64_t K = p.K, Kp = (K + 15) / 16 * 16;
  float* ap = tlsSmallA.get<float>(size_t(M * Kp));
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < Kp; k += 16) {
      __mmask16 mask = K - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (K - k)) - 1);
      _mm512_store_ps(ap + m * Kp + k, load16F32Masked(p.a, p.aType, m * p.lda + k, mask));
    }
  // A chunk in L1 (≤ 16 KB, a multiple of 128 elements); accumulators of rowsPerPass rows ≤ 8 KB.
  const int64_t chunk = std::max<int64_t>(kBlockK, (4096 / M) / kBlockK * kBlockK);
  const int64_t rowsPerPass = 128 / M;
  __m512* cbuf = tlsSmallC.get<__m512>(size_t(rowsPerPass * M));
  const size_t es = dtypeSize(WT);
  for (int64_t r0 = n0; r0 < n1; r0 += rowsPerPass) {
    const int64_t r1 = std::min(n1, r0 + rowsPerPass);
    for (int64_t c0 = 0; c0 < K; c0 += chunk) {
      const int64_t c1 = std::min(K, c0 + chunk);
      for (int64_t n = r0; n < r1; ++n) {
        __m512 acc[M];
#pragma GCC unroll 8
        for (int m = 0; m < M; ++m) acc[m] = c0 == 0 ? _mm512_setzero_ps() : cbuf[(n - r0) * M + m];
        const char* row = static_cast<const char*>(p.w) + n * p.ldw * int64_t(es);
        const char* ahead = n + 2 < r1 ? row + 2 * p.ldw * int64_t(es) : row;
        {
          __m512 acc2[M];
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) acc2[m] = _mm512_setzero_ps();
          int64_t k = c0;
          for (; k + 32 <= c1; k += 32) {
            _mm_prefetch(ahead + k * int64_t(es), _MM_HINT_T0);
            if (es == 4) _mm_prefetch(ahead + k * int64_t(es) + 64, _MM_HINT_T0);
            __m512 w0 = load16F32(row, WT, k), w1 = load16F32(row, WT, k + 16);
#pragma GCC unroll 8
            for (int m = 0; m < M; ++m) {
              acc[m] = _mm512_fmadd_ps(_mm512_load_ps(ap + m * Kp + k), w0, acc[m]);
              acc2[m] = _mm512_fmadd_ps(_mm512_load_ps(ap + m * Kp + k + 16), w1, acc2[m]);
            }
          }
          for (; k < c1; k += 16) {
            __mmask16 mask = c1 - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (c1 - k)) - 1);
            __m512 w0 = load16F32Masked(row, WT, k, mask);
#pragma GCC unroll 8
            for (int m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(_mm512_load_ps(ap + m * Kp + k), w0, acc[m]);
          }
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) acc[m] = _mm512_add_ps(acc[m], acc2[m]);
        }
        if (c1 < K) {
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) cbuf[(n - r0) * M + m] = acc[m];
        } else {
          finishRow<M>(p, n, acc);
        }
      }
    }
  }
}

// ---- AVX-512 f32, few rows of A against a bf16 [N, K] W: W streamed once, decoded on the bits ----
//
// A 64-byte load holds 32 bf16 of a W row as 16 dwords (k = 2j, 2j + 1): `dword << 16` is the f32 of
// the even k, `dword & 0xffff0000` that of the odd k: two bit operations widen 32 weights. A's rows are
// packed in the same order (per 32 k: the 16 even, then the 16 odd, zero-padded). NR rows of W share
// each A load when rows are long; short rows are read one at a time (see gemm_avx512bf16.cc).

template <int M, int NR>
DSN_TARGET_AVX512 inline void smallMBf16WGroupF32(const Problem& p, int64_t n, int64_t Kp, const float* ap, const uint16_t* ahead,
                                                  int64_t c0, int64_t c1, __m512* cb) {
  constexpr bool kSplit = M * NR <= 8;  // separate even / odd sums: more independent chains
  const int64_t K = p.K, ldw = p.ldw;
  const uint16_t* row = static_cast<const uint16_t*>(p.w) + n * ldw;
  const __m512i hiMask = _mm512_set1_epi32(int(0xffff0000u));
  __m512 acc[NR][M], acc2[NR][kSplit ? M : 1];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      acc[r][m] = c0 == 0 ? _mm512_setzero_ps() : cb[r * M + m];
      if constexpr (kSplit) acc2[r][m] = _mm512_setzero_ps();
    }
  for (int64_t k = c0; k < c1; k += 32) {
    __m512 we[NR], wo[NR];
    if (k + 32 <= K) {
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + k), _MM_HINT_T0);
        const __m512i w = _mm512_loadu_si512(row + r * ldw + k);
        we[r] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
        wo[r] = _mm512_castsi512_ps(_mm512_and_si512(w, hiMask));
      }
    } else {  // the tail of K: W masked, A zero-padded
      const int64_t have = std::max<int64_t>(0, K - k);
      const __mmask32 mask = have ? __mmask32(~0u >> (32 - have)) : 0;
      for (int r = 0; r < NR; ++r) {
        const __m512i w = _mm512_maskz_loadu_epi16(mask, row + r * ldw + k);
        we[r] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
        wo[r] = _mm512_castsi512_ps(_mm512_and_si512(w, hiMask));
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      const __m512 ae = _mm512_load_ps(ap + m * Kp + k), ao = _mm512_load_ps(ap + m * Kp + k + 16);
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        acc[r][m] = _mm512_fmadd_ps(ae, we[r], acc[r][m]);
        if constexpr (kSplit) acc2[r][m] = _mm512_fmadd_ps(ao, wo[r], acc2[r][m]);
        else acc[r][m] = _mm512_fmadd_ps(ao, wo[r], acc[r][m]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) {
    if constexpr (kSplit)
      for (int m = 0; m < M; ++m) acc[r][m] = _mm512_add_ps(acc[r][m], acc2[r][m]);
    if (c1 < Kp) {
      for (int m = 0; m < M; ++m) cb[r * M + m] = acc[r][m];
    } else {
      finishRow<M>(p, n + r, acc[r]);
    }
  }
}

template <int M, int NR>
DSN_TARGET_AVX512 void smallMBf16WF32Rows(const Problem& p, int64_t n0, int64_t n1) {
  const int64_t K = p.K, Kp = (K + 31) / 32 * 32;
  float* ap = tlsSmallA.get<float>(size_t(M * Kp));
  const __m512i evenIdx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i oddIdx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < Kp; k += 32) {
      const int64_t h0 = std::max<int64_t>(0, std::min<int64_t>(16, K - k)), h1 = std::max<int64_t>(0, std::min<int64_t>(16, K - k - 16));
      const __m512 x0 = h0 ? load16F32Masked(p.a, p.aType, m * p.lda + k, __mmask16((1u << h0) - 1)) : _mm512_setzero_ps();
      const __m512 x1 = h1 ? load16F32Masked(p.a, p.aType, m * p.lda + k + 16, __mmask16((1u << h1) - 1)) : _mm512_setzero_ps();
      _mm512_store_ps(ap + m * Kp + k, _mm512_permutex2var_ps(x0, evenIdx, x1));
      _mm512_store_ps(ap + m * Kp + k + 16, _mm512_permutex2var_ps(x0, oddIdx, x1));
    }
  // A chunk in L1: M rows × chunk f32 ≤ 16 KB; parked accumulators of rowsPerPass rows ≤ 16 KB. One or
  // two rows of A are read whole (from L2 when long): measured 1.1 × faster at K = 7168 than chunks.
  const int64_t chunk = M <= 2 ? Kp : std::max<int64_t>(32, (4096 / M) / 32 * 32);
  const int64_t rowsPerPass = std::max<int64_t>(NR, 256 / M / NR * NR);
  __m512* cbuf = tlsSmallC.get<__m512>(size_t(rowsPerPass * M));
  for (int64_t r0 = n0; r0 < n1; r0 += rowsPerPass) {
    const int64_t r1 = std::min(n1, r0 + rowsPerPass);
    for (int64_t c0 = 0; c0 < Kp; c0 += chunk) {
      const int64_t c1 = std::min(Kp, c0 + chunk);
      int64_t n = r0;
      for (; n + NR <= r1; n += NR) {
        const uint16_t* row = static_cast<const uint16_t*>(p.w) + n * p.ldw;
        const uint16_t* ahead = n + 3 * NR <= r1 ? row + 2 * NR * p.ldw : row;
        smallMBf16WGroupF32<M, NR>(p, n, Kp, ap, ahead, c0, c1, cbuf + (n - r0) * M);
      }
      for (; n < r1; ++n) {
        const uint16_t* row = static_cast<const uint16_t*>(p.w) + n * p.ldw;
        smallMBf16WGroupF32<M, 1>(p, n, Kp, ap, row, c0, c1, cbuf + (n - r0) * M);
      }
    }
  }
}

template <int M>
void smallMBf16WF32(const Problem& p, int64_t n0, int64_t n1) {
  if (p.K * 2 >= 4096 && M <= 2) smallMBf16WF32Rows<M, 4>(p, n0, n1);
  else smallMBf16WF32Rows<M, 1>(p, n0, n1);
}

bool smallMBf16WAvx512(const Problem& p, int64_t n0, int64_t n1) {
  return dispatchSmallM(p.M, [&](auto m) { smallMBf16WF32<decltype(m)::value>(p, n0, n1); });
}

template <DType WT>
bool smallMF32Typed(const Problem& p, int64_t n0, int64_t n1) {
  return dispatchSmallM(p.M, [&](auto m) { smallMF32Rows<decltype(m)::value, WT>(p, n0, n1); });
}

/** W stored [K, N] (bmmHeads), few rows: lanes along n, A broadcast, W rows streamed once. */
template <int M>
DSN_TARGET_AVX512 void smallMKNRows(const Problem& p, int64_t n0, int64_t n1) {
  constexpr int V = M <= 6 ? 4 : 3;  // 16-column vectors a step: M·V accumulators ≤ 24
  float* ap = tlsSmallA.get<float>(size_t(M * p.K));
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < p.K; ++k) ap[m * p.K + k] = f32FromAny(p.a, p.aType, m * p.lda + k);
  const int64_t es = int64_t(dtypeSize(p.wType));
  for (int64_t c = n0; c < n1; c += 16 * V) {
    __mmask16 mask[V];
    for (int v = 0; v < V; ++v) {
      int64_t have = std::max<int64_t>(0, std::min<int64_t>(16, n1 - c - 16 * v));
      mask[v] = __mmask16((1u << have) - 1);
    }
    __m512 acc[M][V];
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[m][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < p.K; ++k) {
      const int64_t base = k * p.ldw + c;
      _mm_prefetch(static_cast<const char*>(p.w) + (base + 8 * p.ldw) * es, _MM_HINT_T0);
      __m512 wv[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) wv[v] = load16F32Masked(p.w, p.wType, base + 16 * v, mask[v]);
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) {
        const __m512 a = _mm512_set1_ps(ap[m * p.K + k]);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[m][v] = _mm512_fmadd_ps(a, wv[v], acc[m][v]);
      }
    }
    for (int m = 0; m < M; ++m)
      for (int v = 0; v < V; ++v) {
        if (!mask[v]) continue;
        if (p.yType == DType::f32) {
          _mm512_mask_storeu_ps(static_cast<float*>(p.y) + m * p.ldy + c + 16 * v, mask[v], acc[m][v]);
        } else {
          alignas(64) float tmp[16];
          _mm512_store_ps(tmp, acc[m][v]);
          uint16_t* y = static_cast<uint16_t*>(p.y) + m * p.ldy + c + 16 * v;
          for (int j = 0; j < 16; ++j)
            if (mask[v] >> j & 1) y[j] = f32ToBf16(tmp[j]);
        }
      }
  }
}

bool smallMKN(const Problem& p, int64_t n0, int64_t n1) {
  if (p.aScales || p.wScales || p.wType == DType::f8e4m3) return false;
  return dispatchSmallM(p.M, [&](auto m) { smallMKNRows<decltype(m)::value>(p, n0, n1); });
}

}  // namespace

bool smallMAvx512(const Problem& p, int64_t n0, int64_t n1) {
  if (p.wKN) return smallMKN(p, n0, n1);
  switch (p.wType) {
    case DType::f8e4m3:
      // The AVX2 kernel: on cores with AVX-512 but not AVX512-BF16 (Intel Skylake-SP to Ice Lake)
      // it ran 1.1–1.8× as fast as the 16-lane one at M = 1…4 (bench/README.md).
      return smallMFp8Avx2(p, n0, n1);
    case DType::bf16:
      if (p.aScales || p.wScales) return false;
      return smallMBf16WAvx512(p, n0, n1);
    case DType::f32:
      if (p.aScales || p.wScales) return false;
      return smallMF32Typed<DType::f32>(p, n0, n1);
    default: return false;
  }
}

const KernelSet* avx512Set() {
  static const KernelSet set = {"avx512", kMr, kNr, false, packAAvx512, packWAvx512, microAvx512, smallMAvx512};
  return &set;
}

}  // namespace dsn::cpu::gemmk

#else  // not x86-64: no such kernel set

#include "gemm_engine.h"

namespace dsn::cpu::gemmk {
const KernelSet* avx512Set() { return nullptr; }
bool smallMAvx512(const Problem&, int64_t, int64_t) { return false; }
}  // namespace dsn::cpu::gemmk

#endif
