// AVX512-BF16 kernel set of the GEMM engine (Zen 4, Sapphire Rapids and later): FP8 and bf16
// operands are exact in bf16 and their products exact in f32, so vdpbf16ps (32 multiply-adds an
// instruction, twice the f32 FMA rate) changes nothing but the f32 summation order. FP8 codes become
// bf16 through vpermi2b table lookups. A 6 × 64 tile over packed panels, and a streaming kernel for
// few rows of A that decodes W in registers.
#include "gemm_x86.h"

#if defined(__x86_64__)

namespace dsn::cpu::gemmk {

namespace {

// ---- 6 × 64 register tile, bf16 pairs ----

constexpr int kMr = 6, kNr = 64;

/** bf16 bits of the E4M3 magnitudes 0…127 (exact), split into high and low bytes for vpermi2b. */
struct Fp8Bf16Tables {
  alignas(64) uint8_t hi[128];
  alignas(64) uint8_t lo[128];
  Fp8Bf16Tables() {
    for (int c = 0; c < 128; ++c) {
      uint32_t b = f32Bits(f8e4m3ToF32(uint8_t(c))) >> 16;  // exact: E4M3 needs 3 mantissa bits
      hi[c] = uint8_t(b >> 8);
      lo[c] = uint8_t(b);
    }
  }
};
const Fp8Bf16Tables kFp8Bf16;

struct Fp8Decoder {
  __m512i hi0, hi1, lo0, lo1, signBit;
  DSN_TARGET_AVX512BF16_VBMI Fp8Decoder()
      : hi0(_mm512_load_si512(kFp8Bf16.hi)), hi1(_mm512_load_si512(kFp8Bf16.hi + 64)),
        lo0(_mm512_load_si512(kFp8Bf16.lo)), lo1(_mm512_load_si512(kFp8Bf16.lo + 64)), signBit(_mm512_set1_epi8(char(0x80))) {}
  /** 64 E4M3 codes → 64 bf16 as two vectors of k-pairs. Within 128-bit lane L, `even` holds the
   *  pairs of codes 16L…16L+7 and `odd` those of 16L+8…16L+15 (the order of vpunpck{l,h}bw). */
  DSN_TARGET_AVX512BF16_VBMI void decode(__m512i codes, __m512i& even, __m512i& odd) const {
    __m512i h = _mm512_permutex2var_epi8(hi0, codes, hi1);   // index bits 0-6: the magnitude
    h = _mm512_ternarylogic_epi32(h, codes, signBit, 0xF8);  // h | (codes & 0x80)
    __m512i l = _mm512_permutex2var_epi8(lo0, codes, lo1);
    even = _mm512_unpacklo_epi8(l, h);
    odd = _mm512_unpackhi_epi8(l, h);
  }
  /** The same 64 bf16 in k order: pairs 0…15 and 16…31. */
  DSN_TARGET_AVX512BF16_VBMI void decodeInOrder(__m512i codes, __m512i& first, __m512i& second) const {
    __m512i e, o;
    decode(codes, e, o);
    first = _mm512_permutex2var_epi64(e, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), o);
    second = _mm512_permutex2var_epi64(e, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), o);
  }
};

/** A rows → [group][i][64 pairs]: each row's 128 codes decoded in k order. */
DSN_TARGET_AVX512BF16_VBMI void packABf16Fp8(const Problem& p, int64_t m0, int64_t rows, int64_t k0, uint32_t* dst) {
  const Fp8Decoder dec;
  const int64_t padded = (rows + kMr - 1) / kMr * kMr;
  const uint8_t* a = static_cast<const uint8_t*>(p.a);
  for (int64_t r = 0; r < padded; ++r) {
    __m512i* d = reinterpret_cast<__m512i*>(dst + r * 64);
    if (r >= rows) {
      d[0] = d[1] = d[2] = d[3] = _mm512_setzero_si512();
      continue;
    }
    const uint8_t* src = a + (m0 + r) * p.lda + k0;
    __m512i x0, x1, x2, x3;
    dec.decodeInOrder(_mm512_loadu_si512(src), x0, x1);
    dec.decodeInOrder(_mm512_loadu_si512(src + 64), x2, x3);
    _mm512_store_si512(d, x0);
    _mm512_store_si512(d + 1, x1);
    _mm512_store_si512(d + 2, x2);
    _mm512_store_si512(d + 3, x3);
  }
}

/** bf16 A rows → pairs: a row's bf16 in k order already are the pairs (odd tail padded with 0). */
DSN_TARGET_AVX512BF16_VBMI void packABf16Bf16(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  const int64_t slots = (klen + 1) / 2, padded = (rows + kMr - 1) / kMr * kMr;
  const uint16_t* a = static_cast<const uint16_t*>(p.a);
  for (int64_t r = 0; r < padded; ++r) {
    uint16_t* d = reinterpret_cast<uint16_t*>(dst + r * slots);
    if (r >= rows) {
      for (int64_t k = 0; k < 2 * slots; k += 32) _mm512_mask_storeu_epi16(d + k, __mmask32(~0u >> (32 - std::min<int64_t>(32, 2 * slots - k))), _mm512_setzero_si512());
      continue;
    }
    const uint16_t* src = a + (m0 + r) * p.lda + k0;
    for (int64_t k = 0; k < 2 * slots; k += 32) {
      int64_t have = std::min<int64_t>(32, klen - k), room = std::min<int64_t>(32, 2 * slots - k);
      __m512i v = _mm512_maskz_loadu_epi16(have > 0 ? __mmask32(~0u >> (32 - have)) : 0, src + k);
      _mm512_mask_storeu_epi16(d + k, __mmask32(~0u >> (32 - room)), v);
    }
  }
}

void packABf16(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  if (p.aType == DType::f8e4m3 && klen == kBlockK) return packABf16Fp8(p, m0, rows, k0, dst);
  if (p.aType == DType::bf16) return packABf16Bf16(p, m0, rows, k0, klen, dst);
  packAGeneric(p, m0, rows, k0, klen, kMr, true, dst);
}

/** W panel of 64 rows, FP8 [N, K] → [64 pairs][64 columns]: rows decoded, then 16 × 16 transposes. */
DSN_TARGET_AVX512BF16_VBMI void packWBf16Fp8(const Problem& p, int64_t n0, int64_t k0, uint32_t* dst) {
  const Fp8Decoder dec;
  const uint8_t* w = static_cast<const uint8_t*>(p.w);
  for (int g = 0; g < 4; ++g) {
    // half h of the k-block (codes 64h…64h+63), part 0: even vectors, part 1: odd vectors.
    __m512i ev[2][16], od[2][16];
    for (int i = 0; i < 16; ++i) {
      int64_t n = n0 + 16 * g + i;
      if (n >= p.N) {
        ev[0][i] = od[0][i] = ev[1][i] = od[1][i] = _mm512_setzero_si512();
        continue;
      }
      const uint8_t* src = w + n * p.ldw + k0;
      dec.decode(_mm512_loadu_si512(src), ev[0][i], od[0][i]);
      dec.decode(_mm512_loadu_si512(src + 64), ev[1][i], od[1][i]);
    }
    uint32_t* base = dst + 16 * g;
    for (int h = 0; h < 2; ++h) {
      // Column c of an even vector is pair 8(c/4) + c%4 of the half; of an odd vector, 8(c/4) + 4 + c%4.
      __m512i cols[16];
      Avx512::transpose16(ev[h], cols);
      for (int c = 0; c < 16; ++c) _mm512_store_si512(base + (32 * h + 8 * (c >> 2) + (c & 3)) * kNr, cols[c]);
      Avx512::transpose16(od[h], cols);
      for (int c = 0; c < 16; ++c) _mm512_store_si512(base + (32 * h + 8 * (c >> 2) + 4 + (c & 3)) * kNr, cols[c]);
    }
  }
}

/** bf16 W panel → [pair][64 columns]: from [N, K] the pairs are a row's dwords (16 × 16 transposes);
 *  from [K, N] rows k and k+1 interleave. */
DSN_TARGET_AVX512BF16_VBMI void packWBf16Bf16(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  const uint16_t* w = static_cast<const uint16_t*>(p.w);
  const int64_t slots = (klen + 1) / 2;
  if (p.wKN) {
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    for (int64_t s = 0; s < slots; ++s) {
      const int64_t k = k0 + 2 * s;
      for (int h = 0; h < 2; ++h) {  // 32 columns at a time
        const int64_t c = n0 + 32 * h;
        const int64_t have = std::max<int64_t>(0, std::min<int64_t>(32, p.N - c));
        const __mmask32 mask = have ? __mmask32(~0u >> (32 - have)) : 0;
        __m512i r0 = _mm512_maskz_loadu_epi16(mask, w + k * p.ldw + c);
        __m512i r1 = 2 * s + 1 < klen ? _mm512_maskz_loadu_epi16(mask, w + (k + 1) * p.ldw + c) : _mm512_setzero_si512();
        __m512i a = _mm512_unpacklo_epi16(r0, r1), b = _mm512_unpackhi_epi16(r0, r1);  // pairs by 128-bit lane
        _mm512_store_si512(dst + s * kNr + 32 * h, _mm512_permutex2var_epi64(a, lo, b));
        _mm512_store_si512(dst + s * kNr + 32 * h + 16, _mm512_permutex2var_epi64(a, hi, b));
      }
    }
    return;
  }
  for (int g = 0; g < 4; ++g)
    for (int64_t s = 0; s < slots; s += 16) {
      const int64_t have = std::min<int64_t>(32, klen - 2 * s);  // bf16 of this 16-pair group
      const __mmask32 mask = __mmask32(~0u >> (32 - have));
      __m512i rowsv[16], cols[16];
      for (int i = 0; i < 16; ++i) {
        int64_t n = n0 + 16 * g + i;
        rowsv[i] = n < p.N ? _mm512_maskz_loadu_epi16(mask, w + n * p.ldw + k0 + 2 * s) : _mm512_setzero_si512();
      }
      Avx512::transpose16(rowsv, cols);
      for (int c = 0; c < 16 && s + c < slots; ++c) _mm512_store_si512(dst + (s + c) * kNr + 16 * g, cols[c]);
    }
}

void packWBf16(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  if (p.wType == DType::f8e4m3 && !p.wKN && klen == kBlockK) return packWBf16Fp8(p, n0, k0, dst);
  if (p.wType == DType::bf16) return packWBf16Bf16(p, n0, k0, klen, dst);
  packWGeneric(p, n0, k0, klen, kNr, true, dst);
}

DSN_TARGET_AVX512BF16_VBMI inline __m512bh asBh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

DSN_TARGET_AVX512BF16_VBMI void microBf16(int64_t slots, const uint32_t* ap, const uint32_t* wp, const float* scale, float* c, int64_t ldc) {
  // The C tile is read back at the end: fetch it into L1 while the products run.
  for (int i = 0; i < kMr; ++i)
    for (int v = 0; v < 4; ++v) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * v), _MM_HINT_T0);
  __m512 t[kMr][4];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) t[i][0] = t[i][1] = t[i][2] = t[i][3] = _mm512_setzero_ps();
  for (int64_t s = 0; s < slots; ++s) {
    const uint32_t* w = wp + s * kNr;
    __m512bh w0 = asBh(_mm512_load_si512(w)), w1 = asBh(_mm512_load_si512(w + 16));
    __m512bh w2 = asBh(_mm512_load_si512(w + 32)), w3 = asBh(_mm512_load_si512(w + 48));
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      __m512bh a = asBh(_mm512_set1_epi32(int(ap[i * slots + s])));
      t[i][0] = _mm512_dpbf16_ps(t[i][0], a, w0);
      t[i][1] = _mm512_dpbf16_ps(t[i][1], a, w1);
      t[i][2] = _mm512_dpbf16_ps(t[i][2], a, w2);
      t[i][3] = _mm512_dpbf16_ps(t[i][3], a, w3);
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

// ---- AVX512-BF16, few rows of A (decode): W streamed once, decoded in registers ----
//
// Lanes run along k: A's rows are decoded once per task in the decoder's pair order, each W row's
// 128-code block is decoded into the same order, the block's dot product accumulates in f32 over 4
// vdpbf16ps, then acc += block · sa·sw. A horizontal sum gives y at the end. K is walked in chunks
// that keep A's rows in L1; between chunks the per-row accumulators wait in a small buffer.

/** A zero vector from its own zeroing idiom (vpxord, free at rename) rather than a copy of one
 *  shared zero register, which costs an execution slot per use. */
DSN_TARGET_AVX512BF16_VBMI inline __m512 freshZero() {
  __m512 z;
  asm volatile("vpxord %0, %0, %0" : "=v"(z));
  return z;
}

/** Rows [n, n + NR) of W (NR = 1 or 2; rows in the same 128-row scale block) against MG rows of A
 *  over k-blocks [kb0, kb1). scales[kb · scaleStride + m] = sa·sw of A row m of the group. */
template <int MG, int NR>
DSN_TARGET_AVX512BF16_VBMI inline void smallMBf16Step(const Fp8Decoder& dec, const uint8_t* row, int64_t ldw, const uint8_t* ahead,
                                                 const uint32_t* ap, int64_t halfK, const float* scales, int64_t scaleStride,
                                                 int64_t kb0, int64_t kb1, __m512 (&acc)[NR][MG]) {
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    __m512i wv[NR][4];
#pragma GCC unroll 2
    for (int r = 0; r < NR; ++r) {
      const uint8_t* src = row + r * ldw + kb * kBlockK;
      _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + kb * kBlockK), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + kb * kBlockK + 64), _MM_HINT_T0);
      dec.decode(_mm512_loadu_si512(src), wv[r][0], wv[r][1]);
      dec.decode(_mm512_loadu_si512(src + 64), wv[r][2], wv[r][3]);
    }
    // The MG·NR block sums advance together, one k-quarter at a time: independent chains side by side.
    __m512 block[NR][MG];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j)
#pragma GCC unroll 8
      for (int m = 0; m < MG; ++m) {
        const __m512bh av = asBh(_mm512_load_si512(ap + m * halfK + kb * 64 + 16 * j));
#pragma GCC unroll 2
        for (int r = 0; r < NR; ++r)
          block[r][m] = _mm512_dpbf16_ps(j == 0 ? freshZero() : block[r][m], asBh(wv[r][j]), av);
      }
#pragma GCC unroll 8
    for (int m = 0; m < MG; ++m) {
      const __m512 scale = _mm512_set1_ps(scales[kb * scaleStride + m]);
#pragma GCC unroll 2
      for (int r = 0; r < NR; ++r) acc[r][m] = _mm512_fmadd_ps(block[r][m], scale, acc[r][m]);
    }
  }
}

/** One group of A rows [mOff, mOff + MG) of an M-row product against W rows [n, n + NR): accumulators
 *  from / to cbufRow ([NR][M]) between K chunks, the horizontal sums into y after the last. */
template <int M, int MG, int NR>
DSN_TARGET_AVX512BF16_VBMI inline void smallMBf16Group(const Problem& p, const Fp8Decoder& dec, int64_t n, const uint8_t* ahead,
                                                  const uint32_t* ap, int64_t halfK, const float* scales, int mOff,
                                                  int64_t kb0, int64_t kb1, __m512* cbufRow) {
  const int64_t KB = p.K / kBlockK;
  __m512 acc[NR][MG];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MG; ++m) acc[r][m] = kb0 == 0 ? _mm512_setzero_ps() : cbufRow[r * M + mOff + m];
  const uint8_t* row = static_cast<const uint8_t*>(p.w) + n * p.ldw;
  smallMBf16Step<MG, NR>(dec, row, p.ldw, ahead, ap + mOff * halfK, halfK, scales + mOff, M, kb0, kb1, acc);
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MG; ++m) {
      if (kb1 < KB) {
        cbufRow[r * M + mOff + m] = acc[r][m];
        continue;
      }
      float v = _mm512_reduce_add_ps(acc[r][m]);
      int64_t at = (mOff + m) * p.ldy + n + r;
      if (p.yType == DType::f32) static_cast<float*>(p.y)[at] = v;
      else static_cast<uint16_t*>(p.y)[at] = f32ToBf16(v);
    }
}

template <int M>
DSN_TARGET_AVX512BF16_VBMI void smallMBf16Rows(const Problem& p, int64_t n0, int64_t n1) {
  // All M rows of A against each decoded W row (W decoded once): M ≤ 4 takes two W rows at a time
  // (2·M block sums + 2·M accumulators + 8 decoded vectors), M > 4 one (M + M + 4, in 32 registers).
  // Two groups of ≤ 4 rows sharing two W rows (each group decoding them again) measured 4–19 % slower
  // at M = 5…8.
  const int64_t K = p.K, KB = K / kBlockK, halfK = K / 2;
  const Fp8Decoder dec;
  const uint8_t* a = static_cast<const uint8_t*>(p.a);
  uint32_t* ap = tlsSmallA.get<uint32_t>(size_t(M * halfK));
  for (int m = 0; m < M; ++m)
    for (int64_t c = 0; c < K / 64; ++c) {
      __m512i e, o;
      dec.decode(_mm512_loadu_si512(a + m * p.lda + 64 * c), e, o);
      _mm512_store_si512(ap + m * halfK + 32 * c, e);
      _mm512_store_si512(ap + m * halfK + 32 * c + 16, o);
    }
  // A chunk in L1: M rows × chunkBlocks × 256 bytes ≤ 16 KB; accumulators of rowsPerPass rows ≤ 8 KB.
  const int64_t chunkBlocks = std::max<int64_t>(1, 64 / M);
  const int64_t rowsPerPass = std::max<int64_t>(2, 128 / M / 2 * 2);
  __m512* cbuf = tlsSmallC.get<__m512>(size_t(rowsPerPass * M));
  float* scales = tlsSmallS.get<float>(size_t(KB * M));  // [kb][m] = sa[m, kb] · sw[nb, kb]
  int64_t scalesFor = -1;
  for (int64_t r0 = n0; r0 < n1; r0 += rowsPerPass) {
    const int64_t r1 = std::min(n1, r0 + rowsPerPass);
    for (int64_t kb0 = 0; kb0 < KB; kb0 += chunkBlocks) {
      const int64_t kb1 = std::min(KB, kb0 + chunkBlocks);
      for (int64_t n = r0; n < r1;) {
        if (n / kBlockK != scalesFor) {
          scalesFor = n / kBlockK;
          const float* sw = p.wScales + scalesFor * p.ldws;
          for (int64_t kb = 0; kb < KB; ++kb)
            for (int m = 0; m < M; ++m) scales[kb * M + m] = p.aScales[m * p.ldas + kb] * sw[kb];
        }
        // Two rows when both exist and share a scale block (n even: blocks and passes start even).
        const bool pair = M <= 4 && n + 1 < r1 && (n + 1) % kBlockK != 0;
        const int step = pair ? 2 : 1;
        const uint8_t* row = static_cast<const uint8_t*>(p.w) + n * p.ldw;
        const uint8_t* ahead = n + step + 1 < r1 ? row + (step + 1) * p.ldw : row;
        __m512* cb = cbuf + (n - r0) * M;
        if constexpr (M <= 4) {
          if (pair) smallMBf16Group<M, M, 2>(p, dec, n, ahead, ap, halfK, scales, 0, kb0, kb1, cb);
          else smallMBf16Group<M, M, 1>(p, dec, n, ahead, ap, halfK, scales, 0, kb0, kb1, cb);
        } else {
          smallMBf16Group<M, M, 1>(p, dec, n, ahead, ap, halfK, scales, 0, kb0, kb1, cb);
        }
        n += step;
      }
    }
  }
}

// ---- AVX512-BF16, few rows of bf16 A against a bf16 [N, K] W: W streamed once ----
//
// Lanes along k: a W vector is 32 bf16 (16 pairs) straight from memory, A's rows are their bf16 bits
// (zero-padded to a multiple of 32), so one vdpbf16ps does 32 multiply-adds with no decode. NR rows of
// W advance together and share each A load; the M·NR sums are independent chains. K is walked in
// chunks that keep A's rows in L1, the per-row accumulators parked between chunks.

template <int M, int NR>
DSN_TARGET_AVX512BF16_VBMI inline void smallMBf16WStep(const uint16_t* row, int64_t ldw, int64_t K, const uint16_t* ahead,
                                                  const uint16_t* ap, int64_t Kp, int64_t c0, int64_t c1, __m512 (&acc)[NR][M]) {
  int64_t k = c0;
  if constexpr (M * NR <= 4) {
    // Few chains: a second set of sums over the odd 32-k steps hides the vdpbf16ps latency.
    __m512 acc2[NR][M];
    for (int r = 0; r < NR; ++r)
      for (int m = 0; m < M; ++m) acc2[r][m] = freshZero();
    for (; k + 64 <= c1 && k + 64 <= K; k += 64) {
      __m512i wv[NR], wv2[NR];
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + k), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + k + 32), _MM_HINT_T0);
        wv[r] = _mm512_loadu_si512(row + r * ldw + k);
        wv2[r] = _mm512_loadu_si512(row + r * ldw + k + 32);
      }
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) {
        const __m512bh av = asBh(_mm512_load_si512(ap + m * Kp + k)), av2 = asBh(_mm512_load_si512(ap + m * Kp + k + 32));
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) {
          acc[r][m] = _mm512_dpbf16_ps(acc[r][m], asBh(wv[r]), av);
          acc2[r][m] = _mm512_dpbf16_ps(acc2[r][m], asBh(wv2[r]), av2);
        }
      }
    }
    for (int r = 0; r < NR; ++r)
      for (int m = 0; m < M; ++m) acc[r][m] = _mm512_add_ps(acc[r][m], acc2[r][m]);
  }
  for (; k + 32 <= c1 && k + 32 <= K; k += 32) {
    __m512i wv[NR];
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + r * ldw + k), _MM_HINT_T0);
      wv[r] = _mm512_loadu_si512(row + r * ldw + k);
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      const __m512bh av = asBh(_mm512_load_si512(ap + m * Kp + k));
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) acc[r][m] = _mm512_dpbf16_ps(acc[r][m], asBh(wv[r]), av);
    }
  }
  for (; k < c1; k += 32) {  // the tail of K: W masked, A zero-padded
    const int64_t have = std::max<int64_t>(0, std::min<int64_t>(32, K - k));
    const __mmask32 mask = have ? __mmask32(~0u >> (32 - have)) : 0;
    __m512i wv[NR];
    for (int r = 0; r < NR; ++r) wv[r] = _mm512_maskz_loadu_epi16(mask, row + r * ldw + k);
    for (int m = 0; m < M; ++m) {
      const __m512bh av = asBh(_mm512_load_si512(ap + m * Kp + k));
      for (int r = 0; r < NR; ++r) acc[r][m] = _mm512_dpbf16_ps(acc[r][m], asBh(wv[r]), av);
    }
  }
}

template <int M, int NR>
DSN_TARGET_AVX512BF16_VBMI inline void smallMBf16WGroup(const Problem& p, int64_t n, int64_t Kp, const uint16_t* ap,
                                                   const uint16_t* ahead, int64_t c0, int64_t c1, __m512* cb) {
  __m512 acc[NR][M];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < M; ++m) acc[r][m] = c0 == 0 ? freshZero() : cb[r * M + m];
  const uint16_t* row = static_cast<const uint16_t*>(p.w) + n * p.ldw;
  smallMBf16WStep<M, NR>(row, p.ldw, p.K, ahead, ap, Kp, c0, c1, acc);
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < M; ++m) {
      if (c1 < Kp) {
        cb[r * M + m] = acc[r][m];
        continue;
      }
      float v = _mm512_reduce_add_ps(acc[r][m]);
      int64_t at = m * p.ldy + n + r;
      if (p.yType == DType::f32) static_cast<float*>(p.y)[at] = v;
      else static_cast<uint16_t*>(p.y)[at] = f32ToBf16(v);
    }
}

/** NR rows of W at a time (M·NR accumulators ≤ 16). */
template <int M, int NR>
DSN_TARGET_AVX512BF16_VBMI void smallMBf16WRows(const Problem& p, int64_t n0, int64_t n1) {
  const int64_t K = p.K, Kp = (K + 31) / 32 * 32;
  uint16_t* ap = tlsSmallA.get<uint16_t>(size_t(M * Kp));
  const uint16_t* a = static_cast<const uint16_t*>(p.a);
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < Kp; k += 32) {
      const int64_t have = std::min<int64_t>(32, K - k);
      _mm512_store_si512(ap + m * Kp + k, _mm512_maskz_loadu_epi16(__mmask32(~0u >> (32 - have)), a + m * p.lda + k));
    }
  // A chunk in L1: M rows × chunk bf16 ≤ 16 KB; parked accumulators of rowsPerPass rows ≤ 16 KB.
  const int64_t chunk = std::max<int64_t>(32, (8192 / M) / 32 * 32);
  const int64_t rowsPerPass = std::max<int64_t>(NR, 256 / M / NR * NR);
  __m512* cbuf = tlsSmallC.get<__m512>(size_t(rowsPerPass * M));
  forRowGroups<NR>(static_cast<const uint16_t*>(p.w), p.ldw, n0, n1, rowsPerPass, Kp, chunk,
                   [&](auto rows, int64_t n, const uint16_t* ahead, int64_t c0, int64_t c1, int64_t slot) {
                     smallMBf16WGroup<M, decltype(rows)::value>(p, n, Kp, ap, ahead, c0, c1, cbuf + slot * M);
                   });
}

/** Long rows (≥ 4 KB): NR rows side by side share each A load. Short rows are read one at a time:
 *  rows interleaved inside a page measured up to 1.3 × slower there (the hardware prefetcher's streams). */
template <int M>
void smallMBf16WRows(const Problem& p, int64_t n0, int64_t n1) {
  if (p.K * 2 >= 4096) smallMBf16WRows<M, M <= 2 ? 4 : 2>(p, n0, n1);
  else smallMBf16WRows<M, 1>(p, n0, n1);
}

bool smallMBf16W(const Problem& p, int64_t n0, int64_t n1) {
  return dispatchSmallM(p.M, [&](auto m) { smallMBf16WRows<decltype(m)::value>(p, n0, n1); });
}

bool smallMBf16(const Problem& p, int64_t n0, int64_t n1) {
  if (p.aType == DType::bf16 && p.wType == DType::bf16 && !p.wKN && !p.aScales && !p.wScales) return smallMBf16W(p, n0, n1);
  if (p.aType != DType::f8e4m3 || p.wType != DType::f8e4m3 || p.wKN || !p.aScales || !p.wScales || p.K % kBlockK != 0)
    return smallMAvx512(p, n0, n1);  // bf16 operands: the f32 streaming kernel
  return dispatchSmallM(p.M, [&](auto m) { smallMBf16Rows<decltype(m)::value>(p, n0, n1); });
}

}  // namespace

const KernelSet* avx512Bf16Set() {
  static const KernelSet set = {"avx512bf16", kMr, kNr, true, packABf16, packWBf16, microBf16, smallMBf16};
  static const bool has = cpuFeatures().hasAvx512Path() && cpuFeatures().avx512bf16 && cpuFeatures().avx512vbmi;
  return has ? &set : nullptr;
}

}  // namespace dsn::cpu::gemmk

#else  // not x86-64: no such kernel set

#include "gemm_engine.h"

namespace dsn::cpu::gemmk {
const KernelSet* avx512Bf16Set() { return nullptr; }
}  // namespace dsn::cpu::gemmk

#endif
