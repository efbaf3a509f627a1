#include "indexer_kernels.h"

#include <algorithm>
#include <vector>

#include "../runtime/dtype.h"
#include "cache.h"
#include "simd.h"

namespace dsn::cpu::indexer {

#define DSN_INLINE inline __attribute__((always_inline))

namespace {

constexpr int kGroup = 16;

/** E4M3 code -> f32, every code (the table the plain path widens with). */
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
  std::vector<float> q;  // [Di][LP]
  std::vector<float> w;  // [LP]
  std::vector<float> k;  // [KN][Di]
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

constexpr int kKeysPerStep = 4;

DSN_INLINE void scorePlainBody(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) {
  constexpr int KN = kKeysPerStep;
  const float* lut = f8Table().v;
  Scratch& sc = scratch();
  const int64_t H = p.heads, Di = p.dim;
  const int groups = int((H + kGroup - 1) / kGroup), LP = groups * kGroup;
  sc.q.assign(size_t(Di * LP), 0.0f);
  sc.w.assign(size_t(LP), 0.0f);
  sc.k.resize(size_t(KN * Di));
  float *Q = sc.q.data(), *W = sc.w.data(), *Kt = sc.k.data();
  for (int64_t h = 0; h < H; ++h) {
    const uint8_t* qh = p.q + (t * H + h) * Di;
    for (int64_t d = 0; d < Di; ++d) Q[d * LP + h] = lut[qh[d]];
    W[h] = p.weights[t * H + h];
  }
  const int32_t* table = p.blockTable + int64_t(p.seqIdx[t]) * p.maxBlocks;
  for (int64_t k0 = s0; k0 < s1; k0 += KN) {
    const int nb = int(std::min<int64_t>(KN, s1 - k0));
    float kScale[KN];
    for (int kk = 0; kk < KN; ++kk) {
      float* dst = Kt + kk * Di;
      if (kk < nb) {
        int64_t s = k0 + kk, row = int64_t(table[s / kBlockTokens]) * kBlockTokens + s % kBlockTokens;
        const uint8_t* src = p.kCache + row * Di;
        for (int64_t d = 0; d < Di; ++d) dst[d] = lut[src[d]];
        kScale[kk] = p.kScales[row];
      } else {
        std::fill(dst, dst + Di, 0.0f);
        kScale[kk] = 0;
      }
    }
    float total[KN] = {};
    for (int g = 0; g < groups; ++g) {
      float acc[KN][kGroup] = {};
      for (int64_t d = 0; d < Di; ++d) {
        const float* qd = Q + d * LP + g * kGroup;
        for (int kk = 0; kk < KN; ++kk) {
          const float kv = Kt[kk * Di + d];
          for (int l = 0; l < kGroup; ++l) acc[kk][l] += qd[l] * kv;
        }
      }
      for (int kk = 0; kk < KN; ++kk) {
        float sum = 0;
        for (int l = 0; l < kGroup; ++l) sum += W[g * kGroup + l] * std::max(acc[kk][l], 0.0f);
        total[kk] += sum;
      }
    }
    for (int kk = 0; kk < nb; ++kk) out[k0 - s0 + kk] = total[kk] * kScale[kk];
  }
}

DSN_TARGET_AVX512 void scorePlainAvx512(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) { scorePlainBody(p, t, s0, s1, out); }
DSN_TARGET_AVX2 void scorePlainAvx2(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) { scorePlainBody(p, t, s0, s1, out); }
void scorePlainScalar(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) { scorePlainBody(p, t, s0, s1, out); }

}  // namespace

void scoreKeys(const IndexerScoresParams& p, int64_t t, int64_t s0, int64_t s1, float* out) {
  switch (simdLevel()) {
    case Simd::Avx512: return scorePlainAvx512(p, t, s0, s1, out);
    case Simd::Avx2: return scorePlainAvx2(p, t, s0, s1, out);
    default: return scorePlainScalar(p, t, s0, s1, out);
  }
}

}  // namespace dsn::cpu::indexer
