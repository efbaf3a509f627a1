#include "probe.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "simd.h"

namespace dsn::cpu {

namespace {

using Clock = std::chrono::steady_clock;

DSN_TARGET_AVX512 uint64_t sumWordsAvx512(const uint64_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 8));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 16));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 24));
  }
  uint64_t s = _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
  for (; i < n; ++i) s += p[i];
  return s;
}

DSN_TARGET_AVX2 uint64_t sumWordsAvx2(const uint64_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  uint64_t lanes[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) s += p[i];
  return s;
}

uint64_t sumWordsScalar(const uint64_t* p, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; }
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

uint64_t sumWords(const uint64_t* p, size_t n) {
  switch (simdLevel()) {
    case Simd::Avx512: return sumWordsAvx512(p, n);
    case Simd::Avx2: return sumWordsAvx2(p, n);
    default: return sumWordsScalar(p, n);
  }
}

constexpr int64_t kFmaIters = 1 << 22;

DSN_TARGET_AVX512 float fmaLoopAvx512() {
  __m512 a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm512_set1_ps(1.0f + j * 1e-3f);
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < kFmaIters; ++i)
    for (int j = 0; j < 12; ++j) a[j] = _mm512_fmadd_ps(a[j], b, c);
  __m512 s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, a[j]);
  return _mm512_reduce_add_ps(s);
}

DSN_TARGET_AVX2 float fmaLoopAvx2() {
  __m256 a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm256_set1_ps(1.0f + j * 1e-3f);
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < kFmaIters; ++i)
    for (int j = 0; j < 12; ++j) a[j] = _mm256_fmadd_ps(a[j], b, c);
  float out[8];
  __m256 s = a[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, a[j]);
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

float fmaLoopScalar() {
  float a[12];
  for (int j = 0; j < 12; ++j) a[j] = 1.0f + j * 1e-3f;
  for (int64_t i = 0; i < kFmaIters / 4; ++i)
    for (int j = 0; j < 12; ++j) a[j] = a[j] * 0.999999f + 1e-7f;
  float s = 0;
  for (float v : a) s += v;
  return s;
}

}  // namespace

double probeReadBandwidth(ThreadPool& pool, size_t bytes, int reps) {
  size_t words = bytes / 8;
  uint64_t* buf = static_cast<uint64_t*>(std::aligned_alloc(64, words * 8));
  if (!buf) return 0;
  pool.parallelFor(int64_t(words / 8192), [&](int64_t b0, int64_t b1) {
    std::memset(buf + b0 * 8192, 1, size_t(b1 - b0) * 8192 * 8);  // first touch on the reading thread
  });
  int threads = pool.threads();
  double best = 0;
  std::vector<uint64_t> sink(threads);
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    pool.parallelFor(threads, [&](int64_t t0i, int64_t t1i) {
      for (int64_t t = t0i; t < t1i; ++t) {
        size_t per = (words / threads) & ~size_t(31);
        sink[t] += sumWords(buf + t * per, per);
      }
    });
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    double gbs = double((words / threads) & ~size_t(31)) * threads * 8 / s / 1e9;
    best = std::max(best, gbs);
  }
  volatile uint64_t keep = 0;
  for (auto v : sink) keep = keep + v;
  std::free(buf);
  return best;
}

double probeFmaPeak(ThreadPool& pool) {
  int threads = pool.threads();
  Simd level = simdLevel();
  double lanes = level == Simd::Avx512 ? 16 : level == Simd::Avx2 ? 8 : 1;
  double itersPerThread = level == Simd::Scalar ? double(kFmaIters / 4) : double(kFmaIters);
  std::vector<float> sink(threads);
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    auto t0 = Clock::now();
    pool.parallelFor(threads, [&](int64_t a, int64_t b) {
      for (int64_t t = a; t < b; ++t)
        sink[t] += level == Simd::Avx512 ? fmaLoopAvx512() : level == Simd::Avx2 ? fmaLoopAvx2() : fmaLoopScalar();
    });
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, itersPerThread * 12 * lanes * 2 * threads / s / 1e9);
  }
  volatile float keep = 0;
  for (float v : sink) keep = keep + v;
  return best;
}

}  // namespace dsn::cpu
