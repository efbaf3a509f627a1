#include "attention_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "attention_vec.h"
#include "convert.h"
#include "simd.h"

// GCC 12 flags the deliberately undefined lanes inside AVX-512 intrinsics (_mm512_undefined_ps).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace dsn::cpu::attn {

namespace {

using vec::Vec16;
using vec::Vec4;
using vec::Vec8;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/** Per-thread buffers, grown once and reused by every work item. */
struct Scratch {
  std::vector<float> q;      // queries, lanes innermost
  std::vector<float> s;      // scores, then probabilities: [keys][lanes]
  std::vector<float> t;      // rows converted to f32
  std::vector<float> o;      // output accumulators: [dv][lanes]
  std::vector<uint16_t> qp;  // BF16 path: queries as pairs of dims, [pairs][lanes][2]
  std::vector<uint16_t> pp;  // BF16 path: probabilities as pairs of keys, [keys / 2][lanes][2]
  std::vector<uint32_t> vp;  // BF16 path: values of a run of key pairs, [pairs][vpStride] (two bf16 each)
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// ---- the portable path: native-width GCC vectors (attention_vec.h), compiled for the target of the caller ----

/** Rows of keys or values as f32: direct pointers for f32 inputs, else converted into `buf`. */
DSN_INLINE const float* rowF32(const char* base, int64_t row, int64_t stride, int64_t n, DType type, float* buf) {
  const char* src = base + row * stride * int64_t(dtypeSize(type));
  if (type == DType::f32) return reinterpret_cast<const float*>(src);
  loadF32(src, type, n, buf);
  return buf;
}

/** One work item on native vectors V. KN: keys per score step, CB: value columns per P·V step
 *  (KN * V::kN and CB * V::kN accumulators, sized to the target's registers). */
template <typename V, int KN, int CB>
DSN_INLINE void attendPortableBody(const Problem& p, const Lanes& L, const Keys& K) {
  using F = typename V::f;
  using I = typename V::i;
  constexpr int W = V::kWidth, NV = V::kN;
  constexpr int64_t kTile = 64;  // keys per P·V step
  Scratch& sc = scratch();
  const int groups = (L.n + kGroup - 1) / kGroup, LP = groups * kGroup, NL = LP / W;
  const int64_t da = p.da, db = p.db, D = da + db, dv = p.dv, nk = int64_t(K.rows.size());
  sc.t.resize(size_t(std::max<int64_t>({KN * D, kTile * dv, D, 1})));
  float* tmp = sc.t.data();

  sc.q.assign(size_t(D * LP), 0.0f);
  float* Q = sc.q.data();
  for (int l = 0; l < L.n; ++l) {
    loadF32(L.qa[l], p.type, da, tmp);
    loadF32(L.qb[l], p.type, db, tmp + da);
    for (int64_t d = 0; d < D; ++d) Q[d * LP + l] = tmp[d];
  }

  // Scores, -inf where a lane does not see the key, and each lane's maximum.
  sc.s.resize(size_t(std::max<int64_t>(nk * LP, 1)));
  float* S = sc.s.data();
  F mx[kMaxLanes / W];
  for (int u = 0; u < NL; ++u) mx[u] = V::splat(kNegInf);
  for (int64_t k0 = 0; k0 < nk; k0 += KN) {
    const int nb = int(std::min<int64_t>(KN, nk - k0));
    const float* ka[KN];
    const float* kb[KN];
    for (int kk = 0; kk < KN; ++kk) {
      const int64_t r = K.rows[size_t(k0 + std::min(kk, nb - 1))];
      ka[kk] = rowF32(p.a, r, p.aStride, da, p.type, tmp + kk * D);
      kb[kk] = rowF32(p.b, r, p.bStride, db, p.type, tmp + kk * D + da);
    }
    for (int g = 0; g < groups; ++g) {
      F acc[KN][NV] = {};
      const float* qg = Q + g * kGroup;
      for (int64_t d = 0; d < da; ++d) {
        F qv[NV];
        for (int u = 0; u < NV; ++u) qv[u] = V::load(qg + d * LP + u * W);
        for (int kk = 0; kk < KN; ++kk)
          for (int u = 0; u < NV; ++u) acc[kk][u] += qv[u] * ka[kk][d];
      }
      if (p.scoreRounding == ScoreRounding::perSegment)  // park bf16(qa·ka) in the score rows
        for (int kk = 0; kk < KN; ++kk)
          for (int u = 0; u < NV; ++u) {
            if (kk < nb) V::store(S + (k0 + kk) * LP + g * kGroup + u * W, V::roundBf16(acc[kk][u]));
            acc[kk][u] = V::splat(0.0f);
          }
      for (int64_t d = 0; d < db; ++d) {
        F qv[NV];
        for (int u = 0; u < NV; ++u) qv[u] = V::load(qg + (da + d) * LP + u * W);
        for (int kk = 0; kk < KN; ++kk)
          for (int u = 0; u < NV; ++u) acc[kk][u] += qv[u] * kb[kk][d];
      }
      for (int kk = 0; kk < nb; ++kk) {
        const uint64_t m = K.lanes[size_t(k0 + kk)] >> (g * kGroup);
        for (int u = 0; u < NV; ++u) {
          I vis;
          for (int l = 0; l < W; ++l) vis[l] = -int32_t((m >> (u * W + l)) & 1);
          F dot = acc[kk][u];
          if (p.scoreRounding == ScoreRounding::perSegment)
            dot = V::roundBf16(V::load(S + (k0 + kk) * LP + g * kGroup + u * W) + V::roundBf16(dot));
          else if (p.scoreRounding == ScoreRounding::once)
            dot = V::roundBf16(dot);
          F scaled = dot * p.scale;
          if (p.scoreRounding != ScoreRounding::none) scaled = V::roundBf16(scaled);
          const F v = vis != 0 ? scaled : V::splat(kNegInf);
          V::store(S + (k0 + kk) * LP + g * kGroup + u * W, v);
          F& mu = mx[g * NV + u];
          mu = mu > v ? mu : v;
        }
      }
    }
  }

  // Softmax down the lanes; probabilities rounded to the activation dtype.
  F sum[kMaxLanes / W];
  for (int u = 0; u < NL; ++u) {
    mx[u] = mx[u] == kNegInf ? V::splat(0.0f) : mx[u];
    sum[u] = V::splat(0.0f);
  }
  for (int64_t k = 0; k < nk; ++k)
    for (int u = 0; u < NL; ++u) {
      float* s = S + k * LP + u * W;
      const F e = V::expNonPositive(V::load(s) - mx[u]);
      V::store(s, e);
      sum[u] += e;
    }
  for (int u = 0; u < NL; ++u) sum[u] = sum[u] > 0.0f ? sum[u] : V::splat(std::numeric_limits<float>::infinity());
  const bool toBf16 = p.type == DType::bf16;
  for (int64_t k = 0; k < nk; ++k)
    for (int u = 0; u < NL; ++u) {
      float* s = S + k * LP + u * W;
      const F pr = V::load(s) / sum[u];
      V::store(s, toBf16 ? V::roundBf16(pr) : pr);
    }

  // O[c][lanes] = Σ_k P[k][lanes] v_k[c], in runs of kTile keys and CB columns.
  sc.o.assign(size_t(std::max<int64_t>(dv * LP, 1)), 0.0f);
  float* O = sc.o.data();
  for (int64_t k0 = 0; k0 < nk; k0 += kTile) {
    const int64_t nb = std::min(kTile, nk - k0);
    const float* vr[kTile];
    for (int64_t kk = 0; kk < nb; ++kk) vr[kk] = rowF32(p.v, K.rows[size_t(k0 + kk)], p.vStride, dv, p.type, tmp + kk * dv);
    for (int g = 0; g < groups; ++g) {
      const int64_t lane0 = g * kGroup;
      int64_t c = 0;
      for (; c + CB <= dv; c += CB) {
        F acc[CB][NV];
        for (int cb = 0; cb < CB; ++cb)
          for (int u = 0; u < NV; ++u) acc[cb][u] = V::load(O + (c + cb) * LP + lane0 + u * W);
        for (int64_t kk = 0; kk < nb; ++kk) {
          F pv[NV];
          for (int u = 0; u < NV; ++u) pv[u] = V::load(S + (k0 + kk) * LP + lane0 + u * W);
          for (int cb = 0; cb < CB; ++cb)
            for (int u = 0; u < NV; ++u) acc[cb][u] += pv[u] * vr[kk][c + cb];
        }
        for (int cb = 0; cb < CB; ++cb)
          for (int u = 0; u < NV; ++u) V::store(O + (c + cb) * LP + lane0 + u * W, acc[cb][u]);
      }
      for (; c < dv; ++c)
        for (int u = 0; u < NV; ++u) {
          F acc = V::load(O + c * LP + lane0 + u * W);
          for (int64_t kk = 0; kk < nb; ++kk) acc += V::load(S + (k0 + kk) * LP + lane0 + u * W) * vr[kk][c];
          V::store(O + c * LP + lane0 + u * W, acc);
        }
    }
  }

  for (int l = 0; l < L.n; ++l) {
    for (int64_t c = 0; c < dv; ++c) tmp[c] = O[c * LP + l];
    storeF32(tmp, p.type, dv, L.out[l]);
  }
}

// Accumulators: 12 zmm (AVX-512), 6 * 2 ymm (AVX2), 3 * 4 xmm (baseline SSE2).
DSN_TARGET_AVX512 void attendPortableAvx512(const Problem& p, const Lanes& L, const Keys& K) { attendPortableBody<Vec16, 12, 12>(p, L, K); }
DSN_TARGET_AVX2 void attendPortableAvx2(const Problem& p, const Lanes& L, const Keys& K) { attendPortableBody<Vec8, 6, 6>(p, L, K); }
void attendPortableScalar(const Problem& p, const Lanes& L, const Keys& K) { attendPortableBody<Vec4, 3, 3>(p, L, K); }

// ---- the AVX-512 BF16 path: vdpbf16ps multiplies pairs of bf16 exactly and adds them into f32 ----
//
// Scores: lanes hold queries' pairs of dims (q[2j], q[2j+1]) side by side; a key's pair (k[2j],
// k[2j+1]) is one 32-bit broadcast straight from the cache row. P·V: lanes hold the pairs
// (P[2i], P[2i+1]) of two keys; a value pair (v[2i][c], v[2i+1][c]) is one 32-bit broadcast from
// a buffer interleaving the two keys' rows.

/** Keys per score tile and value columns per P·V tile, by lane groups (accumulators fill 24-28 registers). */
template <int G> struct Tiles;
template <> struct Tiles<1> { static constexpr int kKeys = 12, kCols = 12; };
template <> struct Tiles<2> { static constexpr int kKeys = 8, kCols = 8; };
template <> struct Tiles<3> { static constexpr int kKeys = 6, kCols = 6; };
template <> struct Tiles<4> { static constexpr int kKeys = 6, kCols = 6; };

/** Key pairs per P·V step (the interleaved values of 64 keys: 64 KiB at dv = 512). */
constexpr int64_t kPvPairs = 32;

DSN_TARGET_AVX512BF16 DSN_INLINE __m512bh asBh(__m512i v) { return (__m512bh)v; }

DSN_TARGET_AVX512BF16 DSN_INLINE uint32_t load32(const uint16_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

/** One key segment (full pairs, then an odd last element) into the accumulators. */
template <int G, int KN>
DSN_TARGET_AVX512BF16 DSN_INLINE const uint16_t* scoreSegment(__m512 (&acc)[KN][G], const uint16_t* q, int64_t stride, int64_t len,
                                                       const uint16_t* const (&rows)[KN]) {
  const int64_t full = len / 2;
  for (int64_t j = 0; j < full; ++j, q += stride) {
    __m512bh qv[G];
    for (int g = 0; g < G; ++g) qv[g] = asBh(_mm512_loadu_si512(q + g * 32));
    for (int kk = 0; kk < KN; ++kk) {
      const __m512bh kb = asBh(_mm512_set1_epi32(int(load32(rows[kk] + 2 * j))));
      for (int g = 0; g < G; ++g) acc[kk][g] = _mm512_dpbf16_ps(acc[kk][g], qv[g], kb);
    }
  }
  if (len & 1) {
    __m512bh qv[G];
    for (int g = 0; g < G; ++g) qv[g] = asBh(_mm512_loadu_si512(q + g * 32));
    for (int kk = 0; kk < KN; ++kk) {
      const __m512bh kb = asBh(_mm512_set1_epi32(int(rows[kk][len - 1])));  // high half zero
      for (int g = 0; g < G; ++g) acc[kk][g] = _mm512_dpbf16_ps(acc[kk][g], qv[g], kb);
    }
    q += stride;
  }
  return q;
}

/** Scores of KN keys for every lane: S[k][lane] = (q . key) * scale, or -inf where the lane does
 *  not see the key; mx[lane] keeps the running maximum. */
template <int G>
DSN_TARGET_AVX512BF16 void scoreTile(const Problem& p, const uint16_t* qp, int LP, const Keys& K, int64_t k0, int nb, float* S, float* mx) {
  constexpr int KN = Tiles<G>::kKeys;
  const uint16_t* ra[KN];
  const uint16_t* rb[KN];
  for (int kk = 0; kk < KN; ++kk) {
    const int64_t r = K.rows[size_t(k0 + std::min(kk, nb - 1))];
    ra[kk] = reinterpret_cast<const uint16_t*>(p.a) + r * p.aStride;
    rb[kk] = reinterpret_cast<const uint16_t*>(p.b) + r * p.bStride;
  }
  // The rows of the tile after next: from wherever their blocks are, to L2 while this tile computes.
  for (int64_t k = k0 + 2 * KN, end = std::min<int64_t>(k0 + 3 * KN, int64_t(K.rows.size())); k < end; ++k) {
    const char* ka = p.a + K.rows[size_t(k)] * p.aStride * 2;
    const char* kb = p.b + K.rows[size_t(k)] * p.bStride * 2;
    for (int64_t o = 0; o < p.da * 2; o += 64) _mm_prefetch(ka + o, _MM_HINT_T1);
    for (int64_t o = 0; o < p.db * 2; o += 64) _mm_prefetch(kb + o, _MM_HINT_T1);
  }
  __m512 acc[KN][G];
  for (int kk = 0; kk < KN; ++kk)
    for (int g = 0; g < G; ++g) acc[kk][g] = _mm512_setzero_ps();
  const uint16_t* q = scoreSegment<G, KN>(acc, qp, int64_t(LP) * 2, p.da, ra);
  scoreSegment<G, KN>(acc, q, int64_t(LP) * 2, p.db, rb);
  const __m512 scale = _mm512_set1_ps(p.scale), negInf = _mm512_set1_ps(kNegInf);
  __m512 m[G];
  for (int g = 0; g < G; ++g) m[g] = _mm512_loadu_ps(mx + 16 * g);
  for (int kk = 0; kk < nb; ++kk) {
    const uint64_t vis = K.lanes[size_t(k0 + kk)];
    for (int g = 0; g < G; ++g) {
      const __m512 v = _mm512_mask_mul_ps(negInf, __mmask16(vis >> (16 * g)), acc[kk][g], scale);
      _mm512_storeu_ps(S + (k0 + kk) * LP + 16 * g, v);
      m[g] = _mm512_max_ps(m[g], v);
    }
  }
  for (int g = 0; g < G; ++g) _mm512_storeu_ps(mx + 16 * g, m[g]);
}

/** e^x for x <= 0, 16 lanes (the reduction and polynomial of expNonPositiveV, with fma). */
DSN_TARGET_AVX512BF16 DSN_INLINE __m512 expNonPositive16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.0f);
  const __mmask16 live = _mm512_cmp_ps_mask(x, lo, _CMP_GT_OQ);
  const __m512 xc = _mm512_max_ps(x, lo);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(y, n));
}

/** Softmax down each lane of S [nk][LP] given the lanes' maxima; writes the probabilities,
 *  rounded to bf16, as key pairs pp [(nk + 1) / 2][LP][2]. A lane that sees no key gets zeros. */
template <int G>
DSN_TARGET_AVX512BF16 void softmaxToPairs(float* S, int64_t nk, const float* mx, uint16_t* pp) {
  constexpr int LP = G * kGroup;
  const __m512 negInf = _mm512_set1_ps(kNegInf), zero = _mm512_setzero_ps();
  __m512 m[G], sum[G];
  for (int g = 0; g < G; ++g) {
    m[g] = _mm512_loadu_ps(mx + 16 * g);
    m[g] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(m[g], negInf, _CMP_EQ_OQ), m[g], zero);
    sum[g] = zero;
  }
  for (int64_t k = 0; k < nk; ++k)
    for (int g = 0; g < G; ++g) {
      float* s = S + k * LP + 16 * g;
      const __m512 e = expNonPositive16(_mm512_sub_ps(_mm512_loadu_ps(s), m[g]));
      _mm512_storeu_ps(s, e);
      sum[g] = _mm512_add_ps(sum[g], e);
    }
  for (int g = 0; g < G; ++g)
    sum[g] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(sum[g], zero, _CMP_GT_OQ), _mm512_set1_ps(std::numeric_limits<float>::infinity()), sum[g]);
  const __m512i mix = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                       23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int64_t j = 0; 2 * j < nk; ++j)
    for (int g = 0; g < G; ++g) {
      const __m512 a = _mm512_div_ps(_mm512_loadu_ps(S + 2 * j * LP + 16 * g), sum[g]);
      const __m512 b = 2 * j + 1 < nk ? _mm512_div_ps(_mm512_loadu_ps(S + (2 * j + 1) * LP + 16 * g), sum[g]) : zero;
      const __m512i ab = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // bf16 (round to nearest even): a low, b high
      _mm512_storeu_si512(pp + (j * LP + 16 * g) * 2, _mm512_permutexvar_epi16(mix, ab));
    }
}

/** O[c][lanes] += Σ_pairs P-pair · value-pair for CB columns from c0 (vp rows vpStride apart). */
template <int G, int CB>
DSN_TARGET_AVX512BF16 void pvTile(const uint16_t* pp, int LP, const uint32_t* vp, int64_t vpStride, int64_t pairs, int64_t c0, float* O) {
  __m512 acc[CB][G];
  for (int cb = 0; cb < CB; ++cb)
    for (int g = 0; g < G; ++g) acc[cb][g] = _mm512_loadu_ps(O + (c0 + cb) * LP + 16 * g);
  for (int64_t j = 0; j < pairs; ++j) {
    __m512bh pv[G];
    for (int g = 0; g < G; ++g) pv[g] = asBh(_mm512_loadu_si512(pp + j * LP * 2 + 32 * g));
    const uint32_t* vj = vp + j * vpStride + c0;
    for (int cb = 0; cb < CB; ++cb) {
      const __m512bh vb = asBh(_mm512_set1_epi32(int(vj[cb])));
      for (int g = 0; g < G; ++g) acc[cb][g] = _mm512_dpbf16_ps(acc[cb][g], pv[g], vb);
    }
  }
  for (int cb = 0; cb < CB; ++cb)
    for (int g = 0; g < G; ++g) _mm512_storeu_ps(O + (c0 + cb) * LP + 16 * g, acc[cb][g]);
}

/** vp[j][c] = (v[key 2j + 1][c] << 16) | v[key 2j][c] for the key pairs [j0, j0 + pairs). */
DSN_TARGET_AVX512BF16 void interleaveValues(const Problem& p, const Keys& K, int64_t j0, int64_t pairs, uint32_t* vp, int64_t vpStride) {
  const int64_t nk = int64_t(K.rows.size()), dv = p.dv;
  const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                      39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  for (int64_t j = 0; j < pairs; ++j) {
    const int64_t k = 2 * (j0 + j);
    const uint16_t* v0 = reinterpret_cast<const uint16_t*>(p.v) + K.rows[size_t(k)] * p.vStride;
    const uint16_t* v1 = k + 1 < nk ? reinterpret_cast<const uint16_t*>(p.v) + K.rows[size_t(k + 1)] * p.vStride : nullptr;
    uint32_t* dst = vp + j * vpStride;
    // The same pair of the next run of pairs: to L2 before its turn comes.
    for (int64_t n = 2 * (j0 + j + kPvPairs), e = std::min(n + 2, nk); n < e; ++n) {
      const char* v = p.v + K.rows[size_t(n)] * p.vStride * 2;
      for (int64_t o = 0; o < dv * 2; o += 64) _mm_prefetch(v + o, _MM_HINT_T1);
    }
    for (int64_t c = 0; c < dv; c += 32) {
      const int64_t n = std::min<int64_t>(32, dv - c);
      const __mmask32 m = n == 32 ? ~__mmask32(0) : __mmask32((uint32_t(1) << n) - 1);
      const __m512i a = _mm512_maskz_loadu_epi16(m, v0 + c);
      const __m512i b = v1 ? _mm512_maskz_loadu_epi16(m, v1 + c) : _mm512_setzero_si512();
      const __m512i x0 = _mm512_permutex2var_epi16(a, lo, b), x1 = _mm512_permutex2var_epi16(a, hi, b);
      _mm512_mask_storeu_epi32(dst + c, __mmask16(n >= 16 ? 0xffff : (1u << n) - 1), x0);
      if (n > 16) _mm512_mask_storeu_epi32(dst + c + 16, __mmask16(n >= 32 ? 0xffff : (1u << (n - 16)) - 1), x1);
    }
  }
}

template <int G>
DSN_TARGET_AVX512BF16 void attendBf16Groups(const Problem& p, const Lanes& L, const Keys& K) {
  constexpr int LP = G * kGroup;
  Scratch& sc = scratch();
  const int64_t nk = int64_t(K.rows.size()), dv = p.dv;
  const int64_t pairsA = (p.da + 1) / 2, pairsB = (p.db + 1) / 2;

  // Queries as dim pairs (32 bits each), lanes innermost; zeros in padding lanes and odd tails.
  sc.qp.resize(size_t((pairsA + pairsB) * LP * 2));
  uint32_t* qp32 = reinterpret_cast<uint32_t*>(sc.qp.data());
  for (int l = 0; l < LP; ++l) {
    auto segment = [&](const char* src, int64_t len, int64_t pair0) {
      for (int64_t j = 0; j < len / 2; ++j) std::memcpy(qp32 + (pair0 + j) * LP + l, src + 4 * j, 4);
      if (len & 1) qp32[(pair0 + len / 2) * LP + l] = reinterpret_cast<const uint16_t*>(src)[len - 1];
    };
    if (l < L.n) {
      segment(L.qa[l], p.da, 0);
      segment(L.qb[l], p.db, pairsA);
    } else {
      for (int64_t j = 0; j < pairsA + pairsB; ++j) qp32[j * LP + l] = 0;
    }
  }

  sc.s.resize(size_t(std::max<int64_t>(nk * LP, 1)));
  float* S = sc.s.data();
  alignas(64) float mx[LP];
  std::fill(mx, mx + LP, kNegInf);
  constexpr int KN = Tiles<G>::kKeys;
  for (int64_t k0 = 0; k0 < nk; k0 += KN) scoreTile<G>(p, sc.qp.data(), LP, K, k0, int(std::min<int64_t>(KN, nk - k0)), S, mx);

  const int64_t pairs = (nk + 1) / 2;
  sc.pp.resize(size_t(std::max<int64_t>(pairs * LP * 2, 1)));
  softmaxToPairs<G>(S, nk, mx, sc.pp.data());

  sc.o.assign(size_t(std::max<int64_t>(dv * LP, 1)), 0.0f);
  float* O = sc.o.data();
  // Rows of the interleaved values a little longer than dv, so that a column of them does not
  // fall into a few L1 sets (dv = 512 would put 32 rows 2 KiB apart into 2 sets).
  const int64_t vpStride = (dv + 15) / 16 * 16 + 8;
  sc.vp.resize(size_t(kPvPairs * vpStride));
  constexpr int CB = Tiles<G>::kCols;
  for (int64_t j0 = 0; j0 < pairs; j0 += kPvPairs) {
    const int64_t np = std::min(kPvPairs, pairs - j0);
    interleaveValues(p, K, j0, np, sc.vp.data(), vpStride);
    const uint16_t* pp = sc.pp.data() + j0 * LP * 2;
    int64_t c = 0;
    for (; c + CB <= dv; c += CB) pvTile<G, CB>(pp, LP, sc.vp.data(), vpStride, np, c, O);
    for (; c + 2 <= dv; c += 2) pvTile<G, 2>(pp, LP, sc.vp.data(), vpStride, np, c, O);
    for (; c < dv; ++c) pvTile<G, 1>(pp, LP, sc.vp.data(), vpStride, np, c, O);
  }

  // Each lane's column of O, gathered 16 values at a time, rounded to bf16 (nearest even).
  const __m512i cols = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(LP));
  for (int l = 0; l < L.n; ++l) {
    uint16_t* out = reinterpret_cast<uint16_t*>(L.out[l]);
    for (int64_t c = 0; c < dv; c += 16) {
      const int n = int(std::min<int64_t>(16, dv - c));
      const __mmask16 m = __mmask16((1u << n) - 1);
      const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, cols, O + c * LP + l, 4);
      _mm256_mask_storeu_epi16(out + c, m, (__m256i)_mm512_cvtneps_pbh(v));
    }
  }
}

void attendBf16(const Problem& p, const Lanes& L, const Keys& K) {
  switch ((L.n + kGroup - 1) / kGroup) {
    case 1: return attendBf16Groups<1>(p, L, K);
    case 2: return attendBf16Groups<2>(p, L, K);
    case 3: return attendBf16Groups<3>(p, L, K);
    default: return attendBf16Groups<4>(p, L, K);
  }
}

}  // namespace

void attend(const Problem& p, const Lanes& L, const Keys& K) {
  // The reference's bf16 score rounding is done by the portable path only.
  if (p.type == DType::bf16 && p.scoreRounding == ScoreRounding::none && bf16DotAllowed()) {
    attendBf16(p, L, K);
  } else {
    switch (simdLevel()) {
      case Simd::Avx512: attendPortableAvx512(p, L, K); break;
      case Simd::Avx2: attendPortableAvx2(p, L, K); break;
      default: attendPortableScalar(p, L, K); break;
    }
  }
  // The score buffer grows with the context (keys x 64 lanes x 4 bytes); a thread keeps at most
  // 64 MiB of it between items.
  Scratch& sc = scratch();
  if (sc.s.capacity() > (size_t(1) << 24)) std::vector<float>().swap(sc.s);
}

}  // namespace dsn::cpu::attn
