#include "attention_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "convert.h"
#include "simd.h"

namespace dsn::cpu::attn {

#define DSN_INLINE inline __attribute__((always_inline))

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/** Per-thread buffers, grown once and reused by every work item. */
struct Scratch {
  std::vector<float> q;      // queries, lanes innermost
  std::vector<float> s;      // scores, then probabilities: [keys][lanes]
  std::vector<float> t;      // rows converted to f32
  std::vector<float> o;      // output accumulators: [dv][lanes]
  std::vector<uint16_t> qp;  // BF16 path: queries as pairs of dims, [pairs][lanes][2]
  std::vector<uint16_t> pp;  // BF16 path: probabilities as pairs of keys, [keys / 2][lanes][2]
  std::vector<uint32_t> vp;  // BF16 path: values of a run of key pairs, [pairs][dv] (two bf16 each)
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

/** e^x for x <= 0 in f32 (Cody-Waite reduction, Cephes polynomial; about 1 ulp); 0 below -87. */
DSN_INLINE float expNonPositive(float x) {
  float xc = x > -87.0f ? x : -87.0f;
  float n = -float(int(0.5f - xc * 1.44269504088896341f));  // round to nearest (xc <= 0)
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  float scale = bitsF32(uint32_t(int(n) + 127) << 23);
  return x > -87.0f ? y * scale : 0.0f;
}

/** Softmax down each lane of S [nk][LP] in place; probabilities rounded to bf16 when asked. A
 *  lane that sees no key gets zeros. */
DSN_INLINE void softmaxLanes(float* S, int64_t nk, int LP, bool toBf16) {
  float m[kMaxLanes], sum[kMaxLanes];
  for (int l = 0; l < LP; ++l) m[l] = kNegInf;
  for (int64_t k = 0; k < nk; ++k)
    for (int l = 0; l < LP; ++l) m[l] = std::max(m[l], S[k * LP + l]);
  for (int l = 0; l < LP; ++l) {
    if (m[l] == kNegInf) m[l] = 0;
    sum[l] = 0;
  }
  for (int64_t k = 0; k < nk; ++k)
    for (int l = 0; l < LP; ++l) {
      float e = expNonPositive(S[k * LP + l] - m[l]);
      S[k * LP + l] = e;
      sum[l] += e;
    }
  for (int l = 0; l < LP; ++l) sum[l] = sum[l] > 0 ? sum[l] : std::numeric_limits<float>::infinity();
  for (int64_t k = 0; k < nk; ++k)
    for (int l = 0; l < LP; ++l) {
      float pr = S[k * LP + l] / sum[l];
      S[k * LP + l] = toBf16 ? roundBf16(pr) : pr;
    }
}

// ---- the plain C++ path (vectorised by the compiler for the target of its caller) ----

constexpr int kKeysPerStep = 4;

DSN_INLINE void attendPlainBody(const Problem& p, const Lanes& L, const Keys& K) {
  constexpr int KN = kKeysPerStep;
  Scratch& sc = scratch();
  const int groups = (L.n + kGroup - 1) / kGroup, LP = groups * kGroup;
  const int64_t da = p.da, db = p.db, D = da + db, dv = p.dv, nk = int64_t(K.rows.size());
  const size_t es = dtypeSize(p.type);
  sc.t.resize(size_t(std::max<int64_t>(KN * std::max(D, dv), 1)));
  float* tmp = sc.t.data();

  sc.q.assign(size_t(D * LP), 0.0f);
  float* Q = sc.q.data();
  for (int l = 0; l < L.n; ++l) {
    loadF32(L.qa[l], p.type, da, tmp);
    loadF32(L.qb[l], p.type, db, tmp + da);
    for (int64_t d = 0; d < D; ++d) Q[d * LP + l] = tmp[d];
  }

  sc.s.resize(size_t(std::max<int64_t>(nk * LP, 1)));
  float* S = sc.s.data();
  for (int64_t k0 = 0; k0 < nk; k0 += KN) {
    const int nb = int(std::min<int64_t>(KN, nk - k0));
    for (int kk = 0; kk < KN; ++kk) {
      float* dst = tmp + kk * D;
      if (kk < nb) {
        int64_t r = K.rows[size_t(k0 + kk)];
        loadF32(p.a + r * p.aStride * int64_t(es), p.type, da, dst);
        loadF32(p.b + r * p.bStride * int64_t(es), p.type, db, dst + da);
      } else {
        std::fill(dst, dst + D, 0.0f);
      }
    }
    for (int g = 0; g < groups; ++g) {
      float acc[KN][kGroup] = {};
      for (int64_t d = 0; d < D; ++d) {
        const float* qd = Q + d * LP + g * kGroup;
        for (int kk = 0; kk < KN; ++kk) {
          const float kv = tmp[kk * D + d];
          for (int l = 0; l < kGroup; ++l) acc[kk][l] += qd[l] * kv;
        }
      }
      for (int kk = 0; kk < nb; ++kk) {
        const uint64_t m = K.lanes[size_t(k0 + kk)] >> (g * kGroup);
        float* srow = S + (k0 + kk) * LP + g * kGroup;
        for (int l = 0; l < kGroup; ++l) srow[l] = ((m >> l) & 1) ? acc[kk][l] * p.scale : kNegInf;
      }
    }
  }

  softmaxLanes(S, nk, LP, p.type == DType::bf16);

  sc.o.assign(size_t(std::max<int64_t>(dv * LP, 1)), 0.0f);
  float* O = sc.o.data();
  alignas(64) static const float zeros[kMaxLanes] = {};
  for (int64_t k0 = 0; k0 < nk; k0 += KN) {
    const int nb = int(std::min<int64_t>(KN, nk - k0));
    const float* pk[KN];
    for (int kk = 0; kk < KN; ++kk) {
      float* dst = tmp + kk * dv;
      if (kk < nb) {
        loadF32(p.v + K.rows[size_t(k0 + kk)] * p.vStride * int64_t(es), p.type, dv, dst);
        pk[kk] = S + (k0 + kk) * LP;
      } else {
        std::fill(dst, dst + dv, 0.0f);
        pk[kk] = zeros;
      }
    }
    const float *p0 = pk[0], *p1 = pk[1], *p2 = pk[2], *p3 = pk[3];
    for (int64_t c = 0; c < dv; ++c) {
      const float v0 = tmp[c], v1 = tmp[dv + c], v2 = tmp[2 * dv + c], v3 = tmp[3 * dv + c];
      float* oc = O + c * LP;
      for (int l = 0; l < LP; ++l) oc[l] += p0[l] * v0 + p1[l] * v1 + p2[l] * v2 + p3[l] * v3;
    }
  }

  for (int l = 0; l < L.n; ++l) {
    for (int64_t c = 0; c < dv; ++c) tmp[c] = O[c * LP + l];
    storeF32(tmp, p.type, dv, L.out[l]);
  }
}

DSN_TARGET_AVX512 void attendPlainAvx512(const Problem& p, const Lanes& L, const Keys& K) { attendPlainBody(p, L, K); }
DSN_TARGET_AVX2 void attendPlainAvx2(const Problem& p, const Lanes& L, const Keys& K) { attendPlainBody(p, L, K); }
void attendPlainScalar(const Problem& p, const Lanes& L, const Keys& K) { attendPlainBody(p, L, K); }


// ---- the AVX-512 BF16 path: vdpbf16ps multiplies pairs of bf16 exactly and adds them into f32 ----
//
// Scores: lanes hold queries' pairs of dims (q[2j], q[2j+1]) side by side; a key's pair (k[2j],
// k[2j+1]) is one 32-bit broadcast straight from the cache row. P·V: lanes hold the pairs
// (P[2i], P[2i+1]) of two keys; a value pair (v[2i][c], v[2i+1][c]) is one 32-bit broadcast from
// a buffer interleaving the two keys' rows.

#define DSN_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))

/** Keys per score tile and value columns per P·V tile, by lane groups (accumulators fill 24-28 registers). */
template <int G> struct Tiles;
template <> struct Tiles<1> { static constexpr int kKeys = 12, kCols = 12; };
template <> struct Tiles<2> { static constexpr int kKeys = 8, kCols = 8; };
template <> struct Tiles<3> { static constexpr int kKeys = 6, kCols = 6; };
template <> struct Tiles<4> { static constexpr int kKeys = 6, kCols = 6; };

/** Key pairs per P·V step (the interleaved values of 64 keys: 64 KiB at dv = 512). */
constexpr int64_t kPvPairs = 32;

DSN_TARGET_BF16 DSN_INLINE __m512bh asBh(__m512i v) { return (__m512bh)v; }

DSN_TARGET_BF16 DSN_INLINE uint32_t load32(const uint16_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

/** One key segment (full pairs, then an odd last element) into the accumulators. */
template <int G, int KN>
DSN_TARGET_BF16 DSN_INLINE const uint16_t* scoreSegment(__m512 (&acc)[KN][G], const uint16_t* q, int64_t stride, int64_t len,
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
DSN_TARGET_BF16 void scoreTile(const Problem& p, const uint16_t* qp, int LP, const Keys& K, int64_t k0, int nb, float* S, float* mx) {
  constexpr int KN = Tiles<G>::kKeys;
  const uint16_t* ra[KN];
  const uint16_t* rb[KN];
  for (int kk = 0; kk < KN; ++kk) {
    const int64_t r = K.rows[size_t(k0 + std::min(kk, nb - 1))];
    ra[kk] = reinterpret_cast<const uint16_t*>(p.a) + r * p.aStride;
    rb[kk] = reinterpret_cast<const uint16_t*>(p.b) + r * p.bStride;
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

/** e^x for x <= 0, 16 lanes (the same reduction and polynomial as expNonPositive, with fma). */
DSN_TARGET_BF16 DSN_INLINE __m512 expNonPositive16(__m512 x) {
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
DSN_TARGET_BF16 void softmaxToPairs(float* S, int64_t nk, const float* mx, uint16_t* pp) {
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
DSN_TARGET_BF16 void pvTile(const uint16_t* pp, int LP, const uint32_t* vp, int64_t vpStride, int64_t pairs, int64_t c0, float* O) {
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
DSN_TARGET_BF16 void interleaveValues(const Problem& p, const Keys& K, int64_t j0, int64_t pairs, uint32_t* vp, int64_t vpStride) {
  const int64_t nk = int64_t(K.rows.size()), dv = p.dv;
  const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                      39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  for (int64_t j = 0; j < pairs; ++j) {
    const int64_t k = 2 * (j0 + j);
    const uint16_t* v0 = reinterpret_cast<const uint16_t*>(p.v) + K.rows[size_t(k)] * p.vStride;
    const uint16_t* v1 = k + 1 < nk ? reinterpret_cast<const uint16_t*>(p.v) + K.rows[size_t(k + 1)] * p.vStride : nullptr;
    uint32_t* dst = vp + j * vpStride;
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
DSN_TARGET_BF16 void attendBf16Groups(const Problem& p, const Lanes& L, const Keys& K) {
  constexpr int LP = G * kGroup;
  Scratch& sc = scratch();
  const int64_t nk = int64_t(K.rows.size()), dv = p.dv;
  const int64_t pairsA = (p.da + 1) / 2, pairsB = (p.db + 1) / 2;

  // Queries as dim pairs, lanes innermost; zeros in padding lanes and odd tails.
  sc.qp.assign(size_t((pairsA + pairsB) * LP * 2), 0);
  for (int l = 0; l < L.n; ++l) {
    const uint16_t* qa = reinterpret_cast<const uint16_t*>(L.qa[l]);
    const uint16_t* qb = reinterpret_cast<const uint16_t*>(L.qb[l]);
    for (int64_t d = 0; d < p.da; ++d) sc.qp[size_t(((d / 2) * LP + l) * 2 + (d & 1))] = qa[d];
    for (int64_t d = 0; d < p.db; ++d) sc.qp[size_t(((pairsA + d / 2) * LP + l) * 2 + (d & 1))] = qb[d];
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

  sc.t.resize(size_t(std::max<int64_t>(dv, 1)));
  for (int l = 0; l < L.n; ++l) {
    for (int64_t c = 0; c < dv; ++c) sc.t[size_t(c)] = O[c * LP + l];
    storeF32(sc.t.data(), DType::bf16, dv, L.out[l]);
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

bool bf16DotAvailable() {
  static const bool has = [] {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
#else
    return false;
#endif
  }();
  return has && simdLevel() == Simd::Avx512;
}

void attend(const Problem& p, const Lanes& L, const Keys& K) {
  if (p.type == DType::bf16 && bf16DotAvailable()) return attendBf16(p, L, K);
  switch (simdLevel()) {
    case Simd::Avx512: return attendPlainAvx512(p, L, K);
    case Simd::Avx2: return attendPlainAvx2(p, L, K);
    default: return attendPlainScalar(p, L, K);
  }
}

}  // namespace dsn::cpu::attn
