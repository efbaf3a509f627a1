#include "indexer_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../runtime/dtype.h"
#include "attention_vec.h"
#include "cache.h"
#include "simd.h"

// GCC 12 flags the deliberately undefined lanes inside AVX-512 intrinsics (_mm512_undefined_ps).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace dsn::cpu::indexer {

namespace {

using vec::kGroup;

/** E4M3 code -> f32 for every code (the portable path widens with it). */
struct F8Table {
  float v[256];
  F8Table() {
    for (int c = 0; c < 256; ++c) v[c] = f8e4m3ToF32(uint8_t(c));
  }
};
const F8Table& f8Table() {
  static const F8Table t;
  return t;
}

struct Scratch {
  std::vector<float> q;      // [Di][LP]
  std::vector<float> w;      // [LP]
  std::vector<float> k;      // [KN][Di]
  std::vector<uint16_t> qp;  // BF16 path: [Di / 2][LP][2] bf16 bits
  std::vector<uint16_t> kb;  // BF16 path: [KN][Di rounded up to even] bf16 bits
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

/** One run of keys on native vectors V, the heads side by side in lanes; KN keys per step. */
template <typename V, int KN>
DSN_INLINE void scorePortableBody(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) {
  using F = typename V::f;
  constexpr int W = V::kWidth;
  const float* lut = f8Table().v;
  Scratch& sc = scratch();
  const int64_t H = p.heads, Di = p.dim;
  const int groups = int((H + kGroup - 1) / kGroup), LP = groups * kGroup, NL = LP / W;
  sc.q.assign(size_t(Di * LP), 0.0f);
  sc.w.assign(size_t(LP), 0.0f);
  sc.k.resize(size_t(KN * Di));
  float *Q = sc.q.data(), *Wt = sc.w.data(), *Kt = sc.k.data();
  for (int64_t h = 0; h < H; ++h) {
    const uint8_t* qh = p.q + (t * H + h) * Di;
    for (int64_t d = 0; d < Di; ++d) Q[d * LP + h] = lut[qh[d]];
    Wt[h] = p.weights[t * H + h];
  }
  const int32_t* table = p.blockTable + int64_t(p.seqIdx[t]) * p.maxBlocks;
  for (int64_t k0 = s0; k0 < s1; k0 += KN) {
    const int nb = int(std::min<int64_t>(KN, s1 - k0));
    float kScale[KN];
    for (int kk = 0; kk < KN; ++kk) {
      const int64_t s = k0 + std::min(kk, nb - 1);
      const int64_t row = int64_t(table[s / kBlockTokens]) * kBlockTokens + s % kBlockTokens;
      const uint8_t* src = p.kCache + row * Di;
      for (int64_t d = 0; d < Di; ++d) Kt[kk * Di + d] = lut[src[d]];
      kScale[kk] = p.kScales[row];
    }
    F total[KN] = {};
    for (int u0 = 0; u0 < NL; u0 += V::kN) {  // one group of 16 heads: kN vectors
      F acc[KN][V::kN] = {};
      for (int64_t d = 0; d < Di; ++d) {
        F qv[V::kN];
        for (int u = 0; u < V::kN; ++u) qv[u] = V::load(Q + d * LP + (u0 + u) * W);
        for (int kk = 0; kk < KN; ++kk)
          for (int u = 0; u < V::kN; ++u) acc[kk][u] += qv[u] * Kt[kk * Di + d];
      }
      for (int kk = 0; kk < KN; ++kk)
        for (int u = 0; u < V::kN; ++u) {
          const F a = acc[kk][u];
          total[kk] += V::load(Wt + (u0 + u) * W) * (a > 0.0f ? a : V::splat(0.0f));
        }
    }
    for (int kk = 0; kk < nb; ++kk) {
      float sum = 0;
      for (int l = 0; l < W; ++l) sum += total[kk][l];
      out[k0 - s0 + kk] = sum * kScale[kk];
    }
  }
}

// Accumulators: 12 zmm (AVX-512), 6 * 2 ymm (AVX2), 3 * 4 xmm (baseline SSE2).
DSN_TARGET_AVX512 void scorePortableAvx512(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) {
  scorePortableBody<vec::Vec16, 12>(p, t, s0, s1, out);
}
DSN_TARGET_AVX2 void scorePortableAvx2(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) {
  scorePortableBody<vec::Vec8, 6>(p, t, s0, s1, out);
}
void scorePortableScalar(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) {
  scorePortableBody<vec::Vec4, 3>(p, t, s0, s1, out);
}

// ---- the AVX-512 BF16 path ----

/** E4M3 code -> bf16 bits (exact; NaN codes give a quiet NaN). */
struct Bf16Table {
  uint16_t v[256];
  Bf16Table() {
    for (int c = 0; c < 256; ++c) v[c] = f32ToBf16(f8e4m3ToF32(uint8_t(c)));
  }
};
const Bf16Table& bf16Table() {
  static const Bf16Table t;
  return t;
}

/** n (<= 32) E4M3 codes -> bf16 bits, 32 lanes: normal codes by moving the fields (exponent bias
 *  7 -> 127), subnormal ones from a table, the sign copied. */
DSN_TARGET_AVX512BF16 inline __m512i widenF8(const uint8_t* src, int n) {
  const __mmask32 m = n >= 32 ? ~__mmask32(0) : __mmask32((uint32_t(1) << n) - 1);
  const __m512i x = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, src));
  const __m512i mag = _mm512_and_si512(x, _mm512_set1_epi16(0x7f));
  const __m512i normal = _mm512_add_epi16(_mm512_slli_epi16(mag, 4), _mm512_set1_epi16(120 << 7));
  // bf16 of m * 2^-9 for the subnormal mantissas m = 0..7 (entries 8..31 unused).
  const __m512i subTable = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                            0x3c60, 0x3c40, 0x3c20, 0x3c00, 0x3bc0, 0x3b80, 0x3b00, 0);
  __m512i r = _mm512_mask_permutexvar_epi16(normal, _mm512_cmplt_epu16_mask(mag, _mm512_set1_epi16(8)), mag, subTable);
  r = _mm512_mask_mov_epi16(r, _mm512_cmpeq_epi16_mask(mag, _mm512_set1_epi16(0x7f)), _mm512_set1_epi16(0x7fc0));
  return _mm512_or_si512(r, _mm512_slli_epi16(_mm512_and_si512(x, _mm512_set1_epi16(0x80)), 8));
}

DSN_TARGET_AVX512BF16 inline __m512bh asBh(__m512i v) { return (__m512bh)v; }

template <int G> struct Tiles;
template <> struct Tiles<1> { static constexpr int kKeys = 12; };
template <> struct Tiles<2> { static constexpr int kKeys = 8; };
template <> struct Tiles<3> { static constexpr int kKeys = 6; };
template <> struct Tiles<4> { static constexpr int kKeys = 6; };

/** Adds Σ_h w[h] relu(q[h] . k[s]) over one chunk of up to 64 heads into total[s - s0]. */
template <int G>
DSN_TARGET_AVX512BF16 void scoreHeadsBf16(const IndexerScoresParams& p, int64_t t, int64_t h0, int64_t s0, int64_t s1, float* total) {
  constexpr int LP = G * kGroup, KN = Tiles<G>::kKeys;
  const uint16_t* lut = bf16Table().v;
  Scratch& sc = scratch();
  const int64_t H = p.heads, Di = p.dim, Dp = (Di + 1) / 2 * 2, pairs = Dp / 2;
  const int64_t nh = std::min<int64_t>(LP, H - h0);
  sc.qp.assign(size_t(pairs * LP * 2), 0);
  alignas(64) float w[LP] = {};
  for (int64_t h = 0; h < nh; ++h) {
    const uint8_t* qh = p.q + (t * H + h0 + h) * Di;
    for (int64_t d = 0; d < Di; ++d) sc.qp[size_t(((d / 2) * LP + h) * 2 + (d & 1))] = lut[qh[d]];
    w[h] = p.weights[t * H + h0 + h];
  }
  __m512 wv[G];
  for (int g = 0; g < G; ++g) wv[g] = _mm512_load_ps(w + 16 * g);
  sc.kb.resize(size_t(KN * Dp));
  uint16_t* kb = sc.kb.data();
  const int32_t* table = p.blockTable + int64_t(p.seqIdx[t]) * p.maxBlocks;
  for (int64_t k0 = s0; k0 < s1; k0 += KN) {
    const int nb = int(std::min<int64_t>(KN, s1 - k0));
    for (int kk = 0; kk < KN; ++kk) {
      const int64_t s = k0 + std::min(kk, nb - 1);
      const int64_t row = int64_t(table[s / kBlockTokens]) * kBlockTokens + s % kBlockTokens;
      const uint8_t* src = p.kCache + row * Di;
      uint16_t* dst = kb + kk * Dp;
      for (int64_t d = 0; d < Di; d += 32) {
        const int n = int(std::min<int64_t>(32, Di - d));
        _mm512_mask_storeu_epi16(dst + d, n >= 32 ? ~__mmask32(0) : __mmask32((uint32_t(1) << n) - 1), widenF8(src + d, n));
      }
      if (Dp != Di) dst[Di] = 0;
    }
    __m512 acc[KN][G];
    for (int kk = 0; kk < KN; ++kk)
      for (int g = 0; g < G; ++g) acc[kk][g] = _mm512_setzero_ps();
    const uint16_t* q = sc.qp.data();
    for (int64_t j = 0; j < pairs; ++j, q += LP * 2) {
      __m512bh qv[G];
      for (int g = 0; g < G; ++g) qv[g] = asBh(_mm512_loadu_si512(q + 32 * g));
      for (int kk = 0; kk < KN; ++kk) {
        uint32_t pair;
        std::memcpy(&pair, kb + kk * Dp + 2 * j, 4);
        const __m512bh kv = asBh(_mm512_set1_epi32(int(pair)));
        for (int g = 0; g < G; ++g) acc[kk][g] = _mm512_dpbf16_ps(acc[kk][g], qv[g], kv);
      }
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int kk = 0; kk < nb; ++kk) {
      __m512 v = _mm512_mul_ps(wv[0], _mm512_max_ps(acc[kk][0], zero));
      for (int g = 1; g < G; ++g) v = _mm512_fmadd_ps(wv[g], _mm512_max_ps(acc[kk][g], zero), v);
      total[k0 - s0 + kk] += _mm512_reduce_add_ps(v);
    }
  }
}

/** The BF16 path of scoreKeys: heads in chunks of up to 64 lanes, then the keys' scales. */
void scoreKeysBf16(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) {
  std::fill(out, out + (s1 - s0), 0.0f);
  for (int64_t h0 = 0; h0 < p.heads; h0 += 64) {
    switch ((std::min<int64_t>(64, p.heads - h0) + kGroup - 1) / kGroup) {
      case 1: scoreHeadsBf16<1>(p, t, h0, s0, s1, out); break;
      case 2: scoreHeadsBf16<2>(p, t, h0, s0, s1, out); break;
      case 3: scoreHeadsBf16<3>(p, t, h0, s0, s1, out); break;
      default: scoreHeadsBf16<4>(p, t, h0, s0, s1, out); break;
    }
  }
  const int32_t* table = p.blockTable + int64_t(p.seqIdx[t]) * p.maxBlocks;
  for (int64_t s = s0; s < s1; ++s)
    out[s - s0] *= p.kScales[int64_t(table[s / kBlockTokens]) * kBlockTokens + s % kBlockTokens];
}

}  // namespace

void scoreKeys(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) {
  if (bf16DotAllowed()) return scoreKeysBf16(p, t, s0, s1, out);
  switch (simdLevel()) {
    case Simd::Avx512: return scorePortableAvx512(p, t, s0, s1, out);
    case Simd::Avx2: return scorePortableAvx2(p, t, s0, s1, out);
    default: return scorePortableScalar(p, t, s0, s1, out);
  }
}

}  // namespace dsn::cpu::indexer
