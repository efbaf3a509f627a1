#include "attention_kernels.h"

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
  std::vector<float> q;  // queries, lanes innermost
  std::vector<float> s;  // scores, then probabilities: [keys][lanes]
  std::vector<float> t;  // rows converted to f32
  std::vector<float> o;  // output accumulators: [dv][lanes]
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
  switch (simdLevel()) {
    case Simd::Avx512: return attendPlainAvx512(p, L, K);
    case Simd::Avx2: return attendPlainAvx2(p, L, K);
    default: return attendPlainScalar(p, L, K);
  }
}

}  // namespace dsn::cpu::attn
