#include "quant.h"

// GCC 12 flags the undefined vectors inside its own AVX-512 intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "convert.h"
#include "simd.h"

namespace dsn::cpu {

namespace {

constexpr float kFp8Max = 448.0f;
constexpr float kInvFp8Max = 1.0f / 448.0f;  // the f32 constant the reference multiplies by
constexpr float kAmaxFloor = 1e-4f;

/** The group scale from the group's amax (see actQuant). */
inline float groupScale(float amax, bool ue8m0) {
  amax = std::max(amax, kAmaxFloor);
  float s = amax * kInvFp8Max;
  if (ue8m0) {
    uint32_t b = f32Bits(s);
    uint32_t e = (b >> 23) & 0xffu;
    if (b & 0x7fffffu) ++e;
    s = bitsF32(e << 23);
  }
  return s;
}

/** clamp(x / s, ±448) as the reference's kernel lowers it: fmaxf then fminf, which return the
 *  operand that is not NaN, so a NaN quotient (NaN input, or ±inf over an infinite scale) becomes
 *  -448. The SIMD paths get the same from max_ps(q, lo), which returns lo when q is NaN. */
inline uint8_t quantOne(float x, float s) {
  float q = x / s;
  q = std::fmin(std::fmax(q, -kFp8Max), kFp8Max);
  return f32ToF8e4m3(q);
}

void groupScalar(const float* x, int64_t n, bool ue8m0, uint8_t* codes, float* scale) {
  float amax = 0;  // NaN elements are skipped, as the reference's absmax reduction (fmaxf) does
  for (int64_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  float s = groupScale(amax, ue8m0);
  *scale = s;
  for (int64_t i = 0; i < n; ++i) codes[i] = quantOne(x[i], s);
}

// ---- AVX-512: 16 lanes; the same operations as the scalar path, so bit-identical ----

DSN_TARGET_AVX512 inline __m512 loadRow512(const void* x, DType t, int64_t i) {
  if (t == DType::f32) return _mm512_loadu_ps(static_cast<const float*>(x) + i);
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(x) + i));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/** f32 (already clamped to ±448 or NaN) → E4M3 codes in the low byte of each lane. */
DSN_TARGET_AVX512 inline __m512i toE4m3x16(__m512 q) {
  __m512i u = _mm512_castps_si512(q);
  __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
  __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  // Normal range: round the mantissa to 3 bits (ties to even) on the bits.
  __m512i odd = _mm512_and_si512(_mm512_srli_epi32(a, 20), _mm512_set1_epi32(1));
  __m512i rn = _mm512_add_epi32(_mm512_add_epi32(a, _mm512_set1_epi32(0x7ffff)), odd);
  __m512i norm = _mm512_sub_epi32(_mm512_srli_epi32(rn, 20), _mm512_set1_epi32(120 << 3));
  // Subnormal range (< 2^-6): adding 16384 rounds to a multiple of 2^-9.
  __m512 big = _mm512_set1_ps(16384.0f);
  __m512i sub = _mm512_sub_epi32(_mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), big)), _mm512_castps_si512(big));
  __mmask16 isSub = _mm512_cmplt_epi32_mask(a, _mm512_set1_epi32(0x3c800000));
  __mmask16 isSat = _mm512_cmpge_epi32_mask(a, _mm512_set1_epi32(0x43e00000));
  __mmask16 isNan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7f800000));
  __m512i c = _mm512_mask_mov_epi32(norm, isSub, sub);
  c = _mm512_mask_mov_epi32(c, isSat, _mm512_set1_epi32(0x7e));
  c = _mm512_mask_mov_epi32(c, isNan, _mm512_set1_epi32(0x7f));
  return _mm512_or_si512(c, sign);
}

DSN_TARGET_AVX512 void groupsAvx512(const ActQuantParams& p, int64_t r0, int64_t r1) {
  const int64_t groups = p.K / p.blockSize;
  const __m512 absMask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  const __m512 lo = _mm512_set1_ps(-kFp8Max), hi = _mm512_set1_ps(kFp8Max);
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      int64_t base = r * p.K + g * p.blockSize;
      __m512 m = _mm512_setzero_ps();  // |x| first: max_ps returns its second operand for NaN, so NaN is skipped
      for (int64_t i = 0; i < p.blockSize; i += 16) m = _mm512_max_ps(_mm512_and_ps(loadRow512(p.x, p.xType, base + i), absMask), m);
      float s = groupScale(_mm512_reduce_max_ps(m), p.ue8m0);
      p.scales[r * groups + g] = s;
      const __m512 sv = _mm512_set1_ps(s);
      for (int64_t i = 0; i < p.blockSize; i += 16) {
        __m512 q = _mm512_div_ps(loadRow512(p.x, p.xType, base + i), sv);
        q = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p.codes + base + i), _mm512_cvtepi32_epi8(toE4m3x16(q)));
      }
    }
  }
}

// ---- AVX2: 8 lanes ----

DSN_TARGET_AVX2 inline __m256 loadRow256(const void* x, DType t, int64_t i) {
  if (t == DType::f32) return _mm256_loadu_ps(static_cast<const float*>(x) + i);
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + i));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

DSN_TARGET_AVX2 inline __m256i toE4m3x8(__m256 q) {
  __m256i u = _mm256_castps_si256(q);
  __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
  __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
  __m256i odd = _mm256_and_si256(_mm256_srli_epi32(a, 20), _mm256_set1_epi32(1));
  __m256i rn = _mm256_add_epi32(_mm256_add_epi32(a, _mm256_set1_epi32(0x7ffff)), odd);
  __m256i norm = _mm256_sub_epi32(_mm256_srli_epi32(rn, 20), _mm256_set1_epi32(120 << 3));
  __m256 big = _mm256_set1_ps(16384.0f);
  __m256i sub = _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(a), big)), _mm256_castps_si256(big));
  __m256i isSub = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x3c800000), a);
  __m256i isSat = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x43e00000 - 1));
  __m256i isNan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000));
  __m256i c = _mm256_blendv_epi8(norm, sub, isSub);
  c = _mm256_blendv_epi8(c, _mm256_set1_epi32(0x7e), isSat);
  c = _mm256_blendv_epi8(c, _mm256_set1_epi32(0x7f), isNan);
  return _mm256_or_si256(c, sign);
}

DSN_TARGET_AVX2 void groupsAvx2(const ActQuantParams& p, int64_t r0, int64_t r1) {
  const int64_t groups = p.K / p.blockSize;
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 lo = _mm256_set1_ps(-kFp8Max), hi = _mm256_set1_ps(kFp8Max);
  // Low byte of each dword to the first 4 bytes of each 128-bit half, then the halves together.
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i join = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      int64_t base = r * p.K + g * p.blockSize;
      __m256 m = _mm256_setzero_ps();  // |x| first: NaN lanes are skipped, as in the scalar path
      for (int64_t i = 0; i < p.blockSize; i += 8) m = _mm256_max_ps(_mm256_and_ps(loadRow256(p.x, p.xType, base + i), absMask), m);
      __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
      m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
      m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
      float s = groupScale(_mm_cvtss_f32(m4), p.ue8m0);
      p.scales[r * groups + g] = s;
      const __m256 sv = _mm256_set1_ps(s);
      for (int64_t i = 0; i < p.blockSize; i += 8) {
        __m256 q = _mm256_div_ps(loadRow256(p.x, p.xType, base + i), sv);
        q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
        __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(toE4m3x8(q), pick), join);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(p.codes + base + i), _mm256_castsi256_si128(b));
      }
    }
  }
}

void groupsScalar(const ActQuantParams& p, int64_t r0, int64_t r1) {
  const int64_t groups = p.K / p.blockSize;
  std::vector<float> buf(p.blockSize);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      int64_t base = r * p.K + g * p.blockSize;
      loadF32(at(p.x, p.xType, base), p.xType, p.blockSize, buf.data());
      groupScalar(buf.data(), p.blockSize, p.ue8m0, p.codes + base, p.scales + r * groups + g);
    }
}

}  // namespace

void actQuantRows(const ActQuantParams& p, int64_t r0, int64_t r1, Simd level) {
  if (level == Simd::Avx512 && p.blockSize % 16 == 0) groupsAvx512(p, r0, r1);
  else if (level >= Simd::Avx2 && p.blockSize % 8 == 0) groupsAvx2(p, r0, r1);
  else groupsScalar(p, r0, r1);
}

void actQuant(const ActQuantParams& p, ThreadPool& pool) {
  if (p.rows <= 0 || p.K <= 0) return;
  Simd level = simdLevel();
  int64_t grain = std::max<int64_t>(1, 16384 / p.K);
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) { actQuantRows(p, r0, r1, level); }, grain);
}

const float* e4m3Values() {
  static const std::vector<float> lut = [] {
    std::vector<float> t(256);
    for (int c = 0; c < 256; ++c) t[size_t(c)] = f8e4m3ToF32(uint8_t(c));
    return t;
  }();
  return lut.data();
}

void fp8Dequant(const Fp8DequantParams& p, ThreadPool& pool) {
  if (p.N <= 0 || p.K <= 0) return;
  const float* lut = e4m3Values();
  const int64_t kBlocks = (p.K + 127) / 128;
  int64_t grain = std::max<int64_t>(1, 16384 / p.K);
  pool.parallelFor(p.N, [&](int64_t n0, int64_t n1) {
    std::vector<float> row(p.K);
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* w = p.w + n * p.K;
      const float* s = p.scales + (n / 128) * kBlocks;
      for (int64_t k = 0; k < p.K; ++k) row[k] = lut[w[k]] * s[k >> 7];
      storeF32(row.data(), p.outType, p.K, at(p.out, p.outType, n * p.K));
    }
  }, grain);
}

}  // namespace dsn::cpu
