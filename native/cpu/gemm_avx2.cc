// AVX2 kernel set of the GEMM engine: a 6 × 16 f32 register tile over packed panels, and streaming
// kernels for few rows of A (lanes along k). FP8 is widened exactly through f16 (shifts, a mask and
// F16C's vcvtph2ps), never through f32 subnormals, which cost a microcode assist an operation on Intel.
#include "gemm_x86.h"

#if defined(__x86_64__)

namespace dsn::cpu::gemmk {

namespace {

// ---- AVX2: 6 × 16 f32 ----

constexpr int kAvx2Mr = 6, kAvx2Nr = 16;

/** FP8 E4M3 → f16, exactly, 2^-8 times the value: each 16-bit lane holds a code in bits 15…8 with
 *  its sign extended (or any bits 7…0); an arithmetic shift by 1 puts the sign at bit 15 and the
 *  4 exponent + 3 mantissa bits at bits 13…7, where an f16 with 5 exponent bits (bias 15 against
 *  E4M3's 7) reads them as 2^-8 times the E4M3 value, subnormals included. The mask clears bit 14
 *  and the low bits. NaN codes (magnitude 0x7f) give ±1.875, a finite value: callers check. */
DSN_TARGET_AVX2 inline __m128i fp8HiToF16Scaled(__m128i hi) {
  return _mm_and_si128(_mm_srai_epi16(hi, 1), _mm_set1_epi16(int16_t(0xbf80)));
}
/** The same for codes sign-extended to 16 bits (code in bits 7…0, bit 8 its sign). */
DSN_TARGET_AVX2 inline __m128i fp8ToF16Scaled(__m128i x) {
  return _mm_and_si128(_mm_slli_epi16(x, 7), _mm_set1_epi16(int16_t(0xbf80)));
}

/** 8 elements of a row of dtype t from element i, as f32 (FP8 exactly through f16, NaN codes → NaN). */
DSN_TARGET_AVX2 inline __m256 load8F32(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return _mm256_loadu_ps(static_cast<const float*>(base) + i);
    case DType::bf16: {
      __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    default: {
      __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(base) + i));
      __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(fp8ToF16Scaled(_mm_cvtepi8_epi16(c))), _mm256_set1_ps(256.0f));
      // A NaN code decodes to ±1.875 · 2^8 = ±480, a value no other code has.
      __m256 nan = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v), _mm256_set1_ps(480.0f), _CMP_EQ_OQ);
      return _mm256_blendv_ps(v, _mm256_set1_ps(__builtin_nanf("")), nan);
    }
  }
}

/** The first n (< 8) elements as load8F32 would give them, the rest 0; reads only those n. */
DSN_TARGET_AVX2 inline __m256 load8F32Partial(const void* base, DType t, int64_t i, int64_t n) {
  alignas(32) uint8_t tmp[32] = {};
  const size_t es = dtypeSize(t);
  std::memcpy(tmp, static_cast<const char*>(base) + i * int64_t(es), size_t(n) * es);
  return load8F32(tmp, t, 0);
}

DSN_TARGET_AVX2 inline void transpose8(__m256* r) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/** A rows → [group][k][i] f32: the mr values the micro-kernel broadcasts at one k are adjacent, so it
 *  reads them from one pointer. Per 8 k: the group's rows (zeros past `rows`) transposed 8 × 8, each
 *  k's column stored as 8 floats whose last two the next k's store overwrites (the group's last k
 *  stores only its 6). */
DSN_TARGET_AVX2 void packAAvx2(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  static_assert(kAvx2Mr == 6, "6 rows of a transposed 8 × 8 block are stored");
  const int64_t groups = (rows + kAvx2Mr - 1) / kAvx2Mr;
  const __m256i six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
  float* d = reinterpret_cast<float*>(dst);
  for (int64_t g = 0; g < groups; ++g) {
    float* dg = d + g * kAvx2Mr * klen;
    for (int64_t k = 0; k < klen; k += 8) {
      const int64_t have = std::min<int64_t>(8, klen - k);
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        const int64_t row = g * kAvx2Mr + i;
        const int64_t base = (m0 + row) * p.lda + k0 + k;
        if (i >= kAvx2Mr || row >= rows) r[i] = _mm256_setzero_ps();
        else if (have == 8) r[i] = load8F32(p.a, p.aType, base);
        else r[i] = load8F32Partial(p.a, p.aType, base, have);
      }
      transpose8(r);
      for (int c = 0; c < have; ++c) {
        float* at = dg + (k + c) * kAvx2Mr;
        if (k + c + 1 < klen) _mm256_storeu_ps(at, r[c]);
        else _mm256_maskstore_ps(at, six, r[c]);
      }
    }
  }
}

/** W panel of 16 columns → [k][16] f32: from [N, K] by 8 × 8 transposes, from [K, N] by rows. */
DSN_TARGET_AVX2 void packWAvx2(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  float* d = reinterpret_cast<float*>(dst);
  if (p.wKN) {
    if (n0 + kAvx2Nr > p.N) return packWGeneric(p, n0, k0, klen, kAvx2Nr, false, dst);
    for (int64_t k = 0; k < klen; ++k)
      for (int v = 0; v < 2; ++v) _mm256_store_ps(d + k * kAvx2Nr + 8 * v, load8F32(p.w, p.wType, (k0 + k) * p.ldw + n0 + 8 * v));
    return;
  }
  for (int g = 0; g < 2; ++g)
    for (int64_t k = 0; k < klen; k += 8) {
      const int64_t have = std::min<int64_t>(8, klen - k);
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        int64_t n = n0 + 8 * g + i;
        if (n >= p.N) r[i] = _mm256_setzero_ps();
        else if (have == 8) r[i] = load8F32(p.w, p.wType, n * p.ldw + k0 + k);
        else r[i] = load8F32Partial(p.w, p.wType, n * p.ldw + k0 + k, have);
      }
      transpose8(r);
      for (int c = 0; c < have; ++c) _mm256_store_ps(d + (k + c) * kAvx2Nr + 8 * g, r[c]);
    }
}

DSN_TARGET_AVX2 void microAvx2(int64_t slots, const uint32_t* ap_, const uint32_t* wp_, const float* scale, float* c, int64_t ldc) {
  const float* ap = reinterpret_cast<const float*>(ap_);
  const float* wp = reinterpret_cast<const float*>(wp_);
  __m256 t[kAvx2Mr][2];
#pragma GCC unroll 6
  for (int i = 0; i < kAvx2Mr; ++i) t[i][0] = t[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t s = 0; s < slots; ++s) {
    __m256 w0 = _mm256_load_ps(wp + s * kAvx2Nr), w1 = _mm256_load_ps(wp + s * kAvx2Nr + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kAvx2Mr; ++i) {
      __m256 a = _mm256_broadcast_ss(ap + s * kAvx2Mr + i);
      t[i][0] = _mm256_fmadd_ps(a, w0, t[i][0]);
      t[i][1] = _mm256_fmadd_ps(a, w1, t[i][1]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kAvx2Mr; ++i) {
    __m256 sc = _mm256_broadcast_ss(scale + i);
    float* ci = c + i * ldc;
    _mm256_storeu_ps(ci, _mm256_fmadd_ps(t[i][0], sc, _mm256_loadu_ps(ci)));
    _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(t[i][1], sc, _mm256_loadu_ps(ci + 8)));
  }
}

// ---- AVX2, few rows of A: W streamed once, lanes along k (as the AVX-512 kernel, 8 lanes) ----

DSN_TARGET_AVX2 inline float hsum8(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));
}

/** Few rows of A against an f32 W: lanes along k, two chains a row of A. */
template <int M>
DSN_TARGET_AVX2 void smallMF32Avx2Rows(const Problem& p, int64_t n0, int64_t n1) {
  constexpr DType WT = DType::f32;
  const int64_t K = p.K, Kp = (K + 7) / 8 * 8;
  float* ap = tlsSmallA.get<float>(size_t(M * Kp));
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < Kp; k += 8)
      _mm256_store_ps(ap + m * Kp + k, K - k >= 8 ? load8F32(p.a, p.aType, m * p.lda + k) : load8F32Partial(p.a, p.aType, m * p.lda + k, K - k));
  const int64_t chunk = std::max<int64_t>(kBlockK, (4096 / M) / kBlockK * kBlockK);
  const int64_t rowsPerPass = 128 / M;
  __m256* cbuf = tlsSmallC.get<__m256>(size_t(rowsPerPass * M));
  const int64_t es = int64_t(dtypeSize(WT));
  for (int64_t r0 = n0; r0 < n1; r0 += rowsPerPass) {
    const int64_t r1 = std::min(n1, r0 + rowsPerPass);
    for (int64_t c0 = 0; c0 < K; c0 += chunk) {
      const int64_t c1 = std::min(K, c0 + chunk);
      for (int64_t n = r0; n < r1; ++n) {
        __m256 acc[M];
#pragma GCC unroll 8
        for (int m = 0; m < M; ++m) acc[m] = c0 == 0 ? _mm256_setzero_ps() : cbuf[(n - r0) * M + m];
        const char* row = static_cast<const char*>(p.w) + n * p.ldw * es;
        const char* ahead = n + 2 < r1 ? row + 2 * p.ldw * es : row;
        {
          __m256 acc2[M];
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) acc2[m] = _mm256_setzero_ps();
          int64_t k = c0;
          for (; k + 16 <= c1; k += 16) {
            _mm_prefetch(ahead + k * es, _MM_HINT_T0);
            __m256 w0 = load8F32(row, WT, k), w1 = load8F32(row, WT, k + 8);
#pragma GCC unroll 8
            for (int m = 0; m < M; ++m) {
              acc[m] = _mm256_fmadd_ps(_mm256_load_ps(ap + m * Kp + k), w0, acc[m]);
              acc2[m] = _mm256_fmadd_ps(_mm256_load_ps(ap + m * Kp + k + 8), w1, acc2[m]);
            }
          }
          for (; k < c1; k += 8) {
            __m256 w0 = c1 - k >= 8 ? load8F32(row, WT, k) : load8F32Partial(row, WT, k, c1 - k);
#pragma GCC unroll 8
            for (int m = 0; m < M; ++m) acc[m] = _mm256_fmadd_ps(_mm256_load_ps(ap + m * Kp + k), w0, acc[m]);
          }
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) acc[m] = _mm256_add_ps(acc[m], acc2[m]);
        }
        if (c1 < K) {
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) cbuf[(n - r0) * M + m] = acc[m];
          continue;
        }
        for (int m = 0; m < M; ++m) {
          float v = hsum8(acc[m]);
          if (p.yType == DType::f32) static_cast<float*>(p.y)[m * p.ldy + n] = v;
          else static_cast<uint16_t*>(p.y)[m * p.ldy + n] = f32ToBf16(v);
        }
      }
    }
  }
}

// ---- AVX2, few rows of A against an FP8 W: 16 codes a load, decoded through f16 ----
//
// Each 16-byte load of a W row is read as 8 words: the even codes are the low bytes (shifted up), the
// odd codes the high bytes, so the decode is shifts and masks on whole words (no byte shuffles, which
// share one port with vcvtph2ps on Intel cores) and two vcvtph2ps; A is packed in the same order (per
// 16 k: the 8 even, then the 8 odd elements), scaled by nothing: the 2^-8 of the f16 decode goes into
// the block scale, exactly. NR rows of W run together so that, with S chains a (row, A row), at least
// 8 independent FMA chains are in flight; each 128-k block's sum is multiplied by its scale and added
// to the row's total, as the packed kernels do.

/** Even and odd codes of 16 bytes of W as f32 (2^-8 times the values; NaN codes give ±1.875). */
DSN_TARGET_AVX2 inline void fp8x16EvenOdd(const uint8_t* src, __m256& even, __m256& odd) {
  const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
  even = _mm256_cvtph_ps(fp8HiToF16Scaled(_mm_slli_epi16(w, 8)));
  odd = _mm256_cvtph_ps(fp8HiToF16Scaled(w));
}

/** Whether any of the 128 codes at src is a NaN code (magnitude 0x7f). */
inline bool fp8BlockHasNan(const uint8_t* src) {
  for (int j = 0; j < int(kBlockK); ++j)
    if ((src[j] & 0x7f) == 0x7f) return true;
  return false;
}

/** NR rows of W from row n, k-blocks [kb0, kb1): block sums times scales added to cb[r][m]. */
template <int M, int NR>
DSN_TARGET_AVX2 inline void smallMFp8Group(const Problem& p, int64_t n, const float* ap, const float* scales, int64_t kb0,
                                          int64_t kb1, const uint8_t* ahead, __m256* cb) {
  constexpr int S = M * NR <= 4 ? 2 : 1;  // chains a (row, A row): even and odd apart when few
  const int64_t K = p.K, ldw = p.ldw;
  const uint8_t* row = static_cast<const uint8_t*>(p.w) + n * ldw;
  const __m256i top = _mm256_set1_epi8(char(0x80));
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    const int64_t k0 = kb * kBlockK;
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + k0), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + k0 + 64), _MM_HINT_T0);
    }
    __m256 bs[NR][M][S];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m)
#pragma GCC unroll 2
        for (int c = 0; c < S; ++c) bs[r][m][c] = _mm256_setzero_ps();
    __m256i nanMax = _mm256_setzero_si256();  // max over the codes | 0x80: 0xff where a NaN code is
    // Not unrolled: unrolled, GCC hoists the loads of later steps and spills the sums.
#pragma GCC unroll 1
    for (int64_t k = k0; k < k0 + kBlockK; k += 32) {
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r)
        nanMax = _mm256_max_epu8(nanMax, _mm256_or_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + r * ldw + k)), top));
#pragma GCC unroll 2
      for (int h = 0; h < 32; h += 16) {
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
          __m256 we, wo;
          fp8x16EvenOdd(row + r * ldw + k + h, we, wo);
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) {
            const float* a = ap + m * K + k + h;
            const __m256 ae = _mm256_load_ps(a), ao = _mm256_load_ps(a + 8);
            if constexpr (S == 2) {
              bs[r][m][0] = _mm256_fmadd_ps(ae, we, bs[r][m][0]);
              bs[r][m][1] = _mm256_fmadd_ps(ao, wo, bs[r][m][1]);
            } else {
              bs[r][m][0] = _mm256_fmadd_ps(ao, wo, _mm256_fmadd_ps(ae, we, bs[r][m][0]));
            }
          }
        }
      }
    }
    const bool anyNan = _mm256_movemask_epi8(_mm256_cmpeq_epi8(nanMax, _mm256_set1_epi8(-1))) != 0;
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const bool nan = anyNan && fp8BlockHasNan(row + r * ldw + k0);
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) {
        __m256 v = bs[r][m][0];
        if constexpr (S == 2) v = _mm256_add_ps(v, bs[r][m][1]);
        if (nan) v = _mm256_set1_ps(__builtin_nanf(""));
        cb[r * M + m] = _mm256_fmadd_ps(v, _mm256_set1_ps(scales[kb * M + m]), cb[r * M + m]);
      }
    }
  }
}

template <int M, int NR>
DSN_TARGET_AVX2 void smallMFp8Rows(const Problem& p, int64_t n0, int64_t n1) {
  static_assert(kBlockK % 16 == 0 && 128 % NR == 0, "row groups stay inside one 128-row scale block");
  const int64_t K = p.K, KB = K / kBlockK;
  float* ap = tlsSmallA.get<float>(size_t(M * K));
  // Per 16 k: the 8 even, then the 8 odd elements (the order fp8x16EvenOdd gives W in).
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; k += 16) {
      alignas(32) float t[16];
      _mm256_store_ps(t, load8F32(p.a, p.aType, m * p.lda + k));
      _mm256_store_ps(t + 8, load8F32(p.a, p.aType, m * p.lda + k + 8));
      for (int j = 0; j < 8; ++j) {
        ap[m * K + k + j] = t[2 * j];
        ap[m * K + k + 8 + j] = t[2 * j + 1];
      }
    }
  // K in chunks whose A rows stay in L1 (16 KB); rows in passes whose totals stay in cb.
  const int64_t chunkBlocks = std::max<int64_t>(1, 4096 / M / kBlockK);
  const int64_t rowsPerPass = M == 1 ? 128 : M == 2 ? 64 : M <= 4 ? 32 : 16;  // divides 128
  __m256* cb = tlsSmallC.get<__m256>(size_t(rowsPerPass * M));
  float* scales = tlsSmallS.get<float>(size_t(KB * M));
  int64_t scalesFor = -1;
  for (int64_t r0 = n0, r1 = n0; r0 < n1; r0 = r1) {
    // A pass ends at the next multiple of 128 (one scale row); it starts at a multiple of NR.
    r1 = std::min({n1, r0 + rowsPerPass, (r0 / kBlockK + 1) * kBlockK});
    if (r0 / kBlockK != scalesFor) {
      scalesFor = r0 / kBlockK;
      const float* sw = p.wScales + scalesFor * p.ldws;
      for (int64_t kb = 0; kb < KB; ++kb)
        for (int m = 0; m < M; ++m) scales[kb * M + m] = p.aScales[m * p.ldas + kb] * sw[kb] * 256.0f;
    }
    for (int64_t i = 0; i < (r1 - r0) * M; ++i) cb[i] = _mm256_setzero_ps();
    for (int64_t kb0 = 0; kb0 < KB; kb0 += chunkBlocks) {
      const int64_t kb1 = std::min(KB, kb0 + chunkBlocks);
      int64_t n = r0;
      for (; n + NR <= r1; n += NR) {
        const uint8_t* row = static_cast<const uint8_t*>(p.w) + n * p.ldw;
        const uint8_t* ahead = n + 2 * NR <= r1 ? row + NR * p.ldw : row;
        smallMFp8Group<M, NR>(p, n, ap, scales, kb0, kb1, ahead, cb + (n - r0) * M);
      }
      for (; n < r1; ++n)
        smallMFp8Group<M, 1>(p, n, ap, scales, kb0, kb1, static_cast<const uint8_t*>(p.w) + n * p.ldw, cb + (n - r0) * M);
    }
    for (int64_t n = r0; n < r1; ++n)
      for (int m = 0; m < M; ++m) {
        const float v = hsum8(cb[(n - r0) * M + m]);
        if (p.yType == DType::f32) static_cast<float*>(p.y)[m * p.ldy + n] = v;
        else static_cast<uint16_t*>(p.y)[m * p.ldy + n] = f32ToBf16(v);
      }
  }
}

template <int M>
void smallMFp8Avx2M(const Problem& p, int64_t n0, int64_t n1) {
  if constexpr (M == 1) smallMFp8Rows<M, 4>(p, n0, n1);
  else if constexpr (M <= 4) smallMFp8Rows<M, 2>(p, n0, n1);
  else smallMFp8Rows<M, 1>(p, n0, n1);
}

// ---- AVX2, few rows of A against a bf16 [N, K] W (as the AVX-512 kernel: 16 bf16 a load) ----

template <int M, int NR>
DSN_TARGET_AVX2 inline void smallMBf16WGroupAvx2(const Problem& p, int64_t n, int64_t Kp, const float* ap, const uint16_t* ahead,
                                                 int64_t c0, int64_t c1, __m256* cb) {
  constexpr bool kSplit = M * NR <= 4;  // separate even / odd sums while registers allow
  const int64_t K = p.K, ldw = p.ldw;
  const uint16_t* row = static_cast<const uint16_t*>(p.w) + n * ldw;
  const __m256i hiMask = _mm256_set1_epi32(int(0xffff0000u));
  __m256 acc[NR][M], acc2[NR][kSplit ? M : 1];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      acc[r][m] = c0 == 0 ? _mm256_setzero_ps() : cb[r * M + m];
      if constexpr (kSplit) acc2[r][m] = _mm256_setzero_ps();
    }
  for (int64_t k = c0; k < c1; k += 16) {
    __m256 we[NR], wo[NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      __m256i w;
      if (k + 16 <= K) {
        if ((k & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + k), _MM_HINT_T0);
        w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + r * ldw + k));
      } else {  // the tail of K: A is zero-padded
        alignas(32) uint16_t tmp[16] = {};
        for (int64_t j = k; j < K; ++j) tmp[j - k] = row[r * ldw + j];
        w = _mm256_load_si256(reinterpret_cast<const __m256i*>(tmp));
      }
      we[r] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
      wo[r] = _mm256_castsi256_ps(_mm256_and_si256(w, hiMask));
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      const __m256 ae = _mm256_load_ps(ap + m * Kp + k), ao = _mm256_load_ps(ap + m * Kp + k + 8);
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        acc[r][m] = _mm256_fmadd_ps(ae, we[r], acc[r][m]);
        if constexpr (kSplit) acc2[r][m] = _mm256_fmadd_ps(ao, wo[r], acc2[r][m]);
        else acc[r][m] = _mm256_fmadd_ps(ao, wo[r], acc[r][m]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) {
    if constexpr (kSplit)
      for (int m = 0; m < M; ++m) acc[r][m] = _mm256_add_ps(acc[r][m], acc2[r][m]);
    for (int m = 0; m < M; ++m) {
      if (c1 < Kp) {
        cb[r * M + m] = acc[r][m];
        continue;
      }
      const float v = hsum8(acc[r][m]);
      const int64_t at = m * p.ldy + n + r;
      if (p.yType == DType::f32) static_cast<float*>(p.y)[at] = v;
      else static_cast<uint16_t*>(p.y)[at] = f32ToBf16(v);
    }
  }
}

template <int M, int NR>
DSN_TARGET_AVX2 void smallMBf16WAvx2Rows(const Problem& p, int64_t n0, int64_t n1) {
  const int64_t K = p.K, Kp = (K + 15) / 16 * 16;
  float* ap = tlsSmallA.get<float>(size_t(M * Kp));
  // Per 16 k: the 8 even, then the 8 odd elements (the order the W decode gives).
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < Kp; k += 16)
      for (int j = 0; j < 8; ++j) {
        const int64_t ke = k + 2 * j, ko = ke + 1;
        ap[m * Kp + k + j] = ke < K ? f32FromAny(p.a, p.aType, m * p.lda + ke) : 0.0f;
        ap[m * Kp + k + 8 + j] = ko < K ? f32FromAny(p.a, p.aType, m * p.lda + ko) : 0.0f;
      }
  const int64_t chunk = M <= 2 ? Kp : std::max<int64_t>(16, (4096 / M) / 16 * 16);
  const int64_t rowsPerPass = std::max<int64_t>(NR, 256 / M / NR * NR);
  __m256* cbuf = tlsSmallC.get<__m256>(size_t(rowsPerPass * M));
  for (int64_t r0 = n0; r0 < n1; r0 += rowsPerPass) {
    const int64_t r1 = std::min(n1, r0 + rowsPerPass);
    for (int64_t c0 = 0; c0 < Kp; c0 += chunk) {
      const int64_t c1 = std::min(Kp, c0 + chunk);
      int64_t n = r0;
      for (; n + NR <= r1; n += NR) {
        const uint16_t* row = static_cast<const uint16_t*>(p.w) + n * p.ldw;
        const uint16_t* ahead = n + 3 * NR <= r1 ? row + 2 * NR * p.ldw : row;
        smallMBf16WGroupAvx2<M, NR>(p, n, Kp, ap, ahead, c0, c1, cbuf + (n - r0) * M);
      }
      for (; n < r1; ++n) {
        const uint16_t* row = static_cast<const uint16_t*>(p.w) + n * p.ldw;
        smallMBf16WGroupAvx2<M, 1>(p, n, Kp, ap, row, c0, c1, cbuf + (n - r0) * M);
      }
    }
  }
}

template <int M>
void smallMBf16WAvx2M(const Problem& p, int64_t n0, int64_t n1) {
  if (p.K * 2 >= 4096 && M <= 2) smallMBf16WAvx2Rows<M, 2>(p, n0, n1);
  else smallMBf16WAvx2Rows<M, 1>(p, n0, n1);
}

bool smallMBf16WAvx2(const Problem& p, int64_t n0, int64_t n1) {
  return dispatchSmallM(p.M, [&](auto m) { smallMBf16WAvx2M<decltype(m)::value>(p, n0, n1); });
}


bool smallMAvx2(const Problem& p, int64_t n0, int64_t n1) {
  if (p.wKN) return false;
  switch (p.wType) {
    case DType::f8e4m3: return smallMFp8Avx2(p, n0, n1);
    case DType::bf16:
      if (p.aScales || p.wScales) return false;
      return smallMBf16WAvx2(p, n0, n1);
    case DType::f32:
      if (p.aScales || p.wScales) return false;
      return dispatchSmallM(p.M, [&](auto m) { smallMF32Avx2Rows<decltype(m)::value>(p, n0, n1); });
    default: return false;
  }
}

}  // namespace

bool smallMFp8Avx2(const Problem& p, int64_t n0, int64_t n1) {
  if (p.wKN || p.wType != DType::f8e4m3 || !p.aScales || !p.wScales || p.K % kBlockK != 0) return false;
  return dispatchSmallM(p.M, [&](auto m) { smallMFp8Avx2M<decltype(m)::value>(p, n0, n1); });
}

const KernelSet* avx2Set() {
  static const KernelSet set = {"avx2", kAvx2Mr, kAvx2Nr, false, packAAvx2, packWAvx2, microAvx2, smallMAvx2};
  return &set;
}

}  // namespace dsn::cpu::gemmk

#else  // not x86-64: no such kernel set

#include "gemm_engine.h"

namespace dsn::cpu::gemmk {
const KernelSet* avx2Set() { return nullptr; }
}  // namespace dsn::cpu::gemmk

#endif
