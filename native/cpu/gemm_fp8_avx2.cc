// The few-rows kernel for an FP8 W on AVX2 (F16C), used by the AVX2 and the AVX-512 f32 kernel sets
// alike: ISA-specific by design, not a twin. Its decode reads 16 codes as 8 words and splits them into
// even and odd codes with word shifts (no byte shuffles, which share a port with vcvtph2ps on Intel
// cores); a 16-lane form of it measured 1.1–1.8× slower at M = 1…4 on AVX-512 cores without
// AVX512-BF16 (bench/README.md), and cores with AVX512-BF16 take the vdpbf16ps kernel instead.
#include "gemm_x86.h"

namespace dsn::cpu::gemmk {

namespace {

/** FP8 E4M3 → f16, exactly, 2^-8 times the value: each 16-bit lane holds a code in bits 15…8 with
 *  its sign extended (or any bits 7…0); an arithmetic shift by 1 puts the sign at bit 15 and the
 *  4 exponent + 3 mantissa bits at bits 13…7, where an f16 with 5 exponent bits (bias 15 against
 *  E4M3's 7) reads them as 2^-8 times the E4M3 value, subnormals included. The mask clears bit 14
 *  and the low bits. NaN codes (magnitude 0x7f) give ±1.875, a finite value: callers check. */
DSN_TARGET_AVX2 inline __m256i fp8HiToF16Scaled(__m256i hi) {
  return _mm256_and_si256(_mm256_srai_epi16(hi, 1), _mm256_set1_epi16(int16_t(0xbf80)));
}

// ---- AVX2, few rows of A against an FP8 W: 32 codes a load, decoded through f16 ----
//
// Each 32-byte load of a W row is read as 16 words: the even codes are the low bytes (shifted up), the
// odd codes the high bytes, so the decode is shifts and masks on whole words (no byte shuffles, which
// share one port with vcvtph2ps on Intel cores), then one vcvtph2ps per 8 codes; the same load feeds
// the NaN check. A is packed in the decode's order (per 16 k: the 8 even, then the 8 odd elements), scaled by nothing: the 2^-8 of the f16 decode goes into
// the block scale, exactly. NR rows of W run together so that, with S chains a (row, A row), at least
// 8 independent FMA chains are in flight; each 128-k block's sum is multiplied by its scale and added
// to the row's total, as the packed kernels do.

/** 32 codes of W (one 256-bit load) as 16 words each way: `even` holds the f16 bits of the even codes
 *  (the low bytes, shifted up), `odd` those of the odd codes; in each 128-bit half, the codes of that
 *  half's 16 bytes (2^-8 times the values; NaN codes give ±1.875). */
DSN_TARGET_AVX2 inline void fp8x32EvenOddF16(__m256i w, __m256i& even, __m256i& odd) {
  even = fp8HiToF16Scaled(_mm256_slli_epi16(w, 8));
  odd = fp8HiToF16Scaled(w);
}

/** Half h (0: low, 1: high 128 bits) of eight f16 as f32. */
DSN_TARGET_AVX2 inline __m256 f16HalfToF32(__m256i v, int h) {
  return _mm256_cvtph_ps(h ? _mm256_extracti128_si256(v, 1) : _mm256_castsi256_si128(v));
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
      for (int r = 0; r < NR; ++r) {
        // One load of 32 codes: the NaN check and both halves' decode (half h: codes k + 16h …).
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + r * ldw + k));
        nanMax = _mm256_max_epu8(nanMax, _mm256_or_si256(w, top));
        __m256i even16, odd16;
        fp8x32EvenOddF16(w, even16, odd16);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256 we = f16HalfToF32(even16, h), wo = f16HalfToF32(odd16, h);
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) {
            const float* a = ap + m * K + k + 16 * h;
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
  OnTarget<Avx2>::run<PackAEvenOdd>(p, M, K, ap);  // per 16 k: the 8 even, then the 8 odd elements
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
        const float v = Avx2::reduceAdd(cb[(n - r0) * M + m]);
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

}  // namespace

bool smallMFp8Avx2(const Problem& p, int64_t n0, int64_t n1) {
  if (p.wKN || p.wType != DType::f8e4m3 || !p.aScales || !p.wScales || p.K % kBlockK != 0) return false;
  return dispatchSmallM(p.M, [&](auto m) { smallMFp8Avx2M<decltype(m)::value>(p, n0, n1); });
}

}  // namespace dsn::cpu::gemmk
