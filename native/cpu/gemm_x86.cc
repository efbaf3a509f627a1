// x86 kernel sets of the GEMM engine: AVX2 (6 × 16 f32), AVX-512 (6 × 64 f32) and AVX512-BF16
// (6 × 64, bf16 pairs through vdpbf16ps: FP8 and bf16 operands are exact in bf16 and their products
// exact in f32, so only the f32 accumulation rounds, as in the f32 kernels).
#include "gemm_engine.h"

// GCC 12 flags the undefined vectors inside its own AVX-512 intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "../runtime/dtype.h"
#include "simd.h"

#define DSN_TARGET_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi,avx2,fma,f16c")))

namespace dsn::cpu::gemmk {

namespace {

inline float f32FromAny(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::bf16: return bf16ToF32(static_cast<const uint16_t*>(base)[i]);
    default: return f8e4m3ToF32(static_cast<const uint8_t*>(base)[i]);
  }
}

// ---- AVX2: 6 × 16 f32 ----

constexpr int kAvx2Mr = 6, kAvx2Nr = 16;

/** 8 elements of a row of dtype t from element i, as f32 (FP8 on the bits, as load16F32). */
DSN_TARGET_AVX2 inline __m256 load8F32(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return _mm256_loadu_ps(static_cast<const float*>(base) + i);
    case DType::bf16: {
      __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    default: {
      __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(base) + i));
      __m256i x = _mm256_cvtepi8_epi32(c);
      __m256i bits = _mm256_and_si256(_mm256_slli_epi32(x, 20), _mm256_set1_epi32(int(0x87f00000u)));
      __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(0x1p120f));
      __m256i nan = _mm256_cmpeq_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7f)), _mm256_set1_epi32(0x7f));
      return _mm256_blendv_ps(v, _mm256_set1_ps(__builtin_nanf("")), _mm256_castsi256_ps(nan));
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

/** A rows → [group][i][k] f32. */
DSN_TARGET_AVX2 void packAAvx2(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  const int64_t padded = (rows + kAvx2Mr - 1) / kAvx2Mr * kAvx2Mr;
  for (int64_t r = 0; r < padded; ++r) {
    float* d = reinterpret_cast<float*>(dst + r * klen);
    if (r >= rows) {
      std::memset(d, 0, size_t(klen) * 4);
      continue;
    }
    const int64_t base = (m0 + r) * p.lda + k0;
    int64_t k = 0;
    for (; k + 8 <= klen; k += 8) _mm256_storeu_ps(d + k, load8F32(p.a, p.aType, base + k));
    for (; k < klen; ++k) d[k] = f32FromAny(p.a, p.aType, base + k);
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
  for (int64_t s = 0; s < slots; ++s) {
    __m256 w0 = _mm256_load_ps(wp + s * kAvx2Nr), w1 = _mm256_load_ps(wp + s * kAvx2Nr + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kAvx2Mr; ++i) {
      __m256 a = _mm256_broadcast_ss(ap + i * slots + s);
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

thread_local Scratch tlsSmallA, tlsSmallC, tlsSmallS;

DSN_TARGET_AVX2 inline float hsum8(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));
}

template <int M, DType WT>
DSN_TARGET_AVX2 void smallMAvx2Rows(const Problem& p, int64_t n0, int64_t n1) {
  constexpr bool kScaled = WT == DType::f8e4m3;
  const int64_t K = p.K, Kp = (K + 7) / 8 * 8;
  float* ap = tlsSmallA.get<float>(size_t(M * Kp));
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < Kp; k += 8)
      _mm256_store_ps(ap + m * Kp + k, K - k >= 8 ? load8F32(p.a, p.aType, m * p.lda + k) : load8F32Partial(p.a, p.aType, m * p.lda + k, K - k));
  const int64_t chunk = std::max<int64_t>(kBlockK, (4096 / M) / kBlockK * kBlockK);
  const int64_t rowsPerPass = 128 / M;
  const int64_t KB = K / kBlockK;
  __m256* cbuf = tlsSmallC.get<__m256>(size_t(rowsPerPass * M));
  float* scales = kScaled ? tlsSmallS.get<float>(size_t(KB * M)) : nullptr;
  int64_t scalesFor = -1;
  const int64_t es = int64_t(dtypeSize(WT));
  for (int64_t r0 = n0; r0 < n1; r0 += rowsPerPass) {
    const int64_t r1 = std::min(n1, r0 + rowsPerPass);
    for (int64_t c0 = 0; c0 < K; c0 += chunk) {
      const int64_t c1 = std::min(K, c0 + chunk);
      for (int64_t n = r0; n < r1; ++n) {
        if (kScaled && n / kBlockK != scalesFor) {
          scalesFor = n / kBlockK;
          const float* sw = p.wScales + scalesFor * p.ldws;
          for (int64_t kb = 0; kb < KB; ++kb)
            for (int m = 0; m < M; ++m) scales[kb * M + m] = p.aScales[m * p.ldas + kb] * sw[kb];
        }
        __m256 acc[M];
#pragma GCC unroll 8
        for (int m = 0; m < M; ++m) acc[m] = c0 == 0 ? _mm256_setzero_ps() : cbuf[(n - r0) * M + m];
        const char* row = static_cast<const char*>(p.w) + n * p.ldw * es;
        const char* ahead = n + 2 < r1 ? row + 2 * p.ldw * es : row;
        if (kScaled) {
          for (int64_t kb = c0 / kBlockK; kb < c1 / kBlockK; ++kb) {
            _mm_prefetch(ahead + kb * kBlockK, _MM_HINT_T0);
            _mm_prefetch(ahead + kb * kBlockK + 64, _MM_HINT_T0);
            __m256 block[2][M];
#pragma GCC unroll 16
            for (int j = 0; j < 16; ++j) {
              __m256 wv = load8F32(row, WT, kb * kBlockK + 8 * j);
#pragma GCC unroll 8
              for (int m = 0; m < M; ++m) {
                __m256 av = _mm256_load_ps(ap + m * Kp + kb * kBlockK + 8 * j);
                block[j & 1][m] = j < 2 ? _mm256_mul_ps(av, wv) : _mm256_fmadd_ps(av, wv, block[j & 1][m]);
              }
            }
#pragma GCC unroll 8
            for (int m = 0; m < M; ++m)
              acc[m] = _mm256_fmadd_ps(_mm256_add_ps(block[0][m], block[1][m]), _mm256_set1_ps(scales[kb * M + m]), acc[m]);
          }
        } else {
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

template <DType WT>
bool smallMAvx2Typed(const Problem& p, int64_t n0, int64_t n1) {
  switch (p.M) {
    case 1: smallMAvx2Rows<1, WT>(p, n0, n1); return true;
    case 2: smallMAvx2Rows<2, WT>(p, n0, n1); return true;
    case 3: smallMAvx2Rows<3, WT>(p, n0, n1); return true;
    case 4: smallMAvx2Rows<4, WT>(p, n0, n1); return true;
    case 5: smallMAvx2Rows<5, WT>(p, n0, n1); return true;
    case 6: smallMAvx2Rows<6, WT>(p, n0, n1); return true;
    case 7: smallMAvx2Rows<7, WT>(p, n0, n1); return true;
    case 8: smallMAvx2Rows<8, WT>(p, n0, n1); return true;
    default: return false;
  }
}

bool smallMAvx2(const Problem& p, int64_t n0, int64_t n1) {
  if (p.wKN) return false;
  switch (p.wType) {
    case DType::f8e4m3:
      if (!p.aScales || !p.wScales || p.K % kBlockK != 0) return false;
      return smallMAvx2Typed<DType::f8e4m3>(p, n0, n1);
    case DType::bf16:
      if (p.aScales || p.wScales) return false;
      return smallMAvx2Typed<DType::bf16>(p, n0, n1);
    case DType::f32:
      if (p.aScales || p.wScales) return false;
      return smallMAvx2Typed<DType::f32>(p, n0, n1);
    default: return false;
  }
}

const KernelSet kAvx2 = {"avx2", kAvx2Mr, kAvx2Nr, false, packAAvx2, packWAvx2, microAvx2, smallMAvx2};

// ---- AVX-512: 6 × 64 f32 ----

constexpr int kMr = 6, kNr = 64;

/** Transposes 16 vectors of 16 dwords: out[c] = column c (lane i from r[i]). */
DSN_TARGET_AVX512 inline void transpose16(const __m512i* r, __m512i* out) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // u[4g + q]: rows 4g…4g+3 of column 4L + q in lane L.
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int q = 0; q < 4; ++q) {
    __m512i v0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x88), v1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xdd);
    __m512i v2 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x88), v3 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xdd);
    out[q] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    out[8 + q] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    out[4 + q] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    out[12 + q] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

/** 16 elements of a row of dtype t from element i, as f32. FP8 on the bits: the magnitude moved into
 *  an f32's exponent and mantissa fields, times 2^120 (exact, subnormals included); NaN codes → NaN. */
DSN_TARGET_AVX512 inline __m512 load16F32(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return _mm512_loadu_ps(static_cast<const float*>(base) + i);
    case DType::bf16: {
      __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    default: {
      __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(base) + i));
      __m512i x = _mm512_cvtepi8_epi32(c);  // sign-extended: bit 31 = the code's sign
      __m512i bits = _mm512_and_si512(_mm512_slli_epi32(x, 20), _mm512_set1_epi32(int(0x87f00000u)));
      __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(bits), _mm512_set1_ps(0x1p120f));
      __mmask16 nan = _mm512_cmpeq_epi32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7f)), _mm512_set1_epi32(0x7f));
      return _mm512_mask_mov_ps(v, nan, _mm512_set1_ps(__builtin_nanf("")));
    }
  }
}

/** A rows → [group][i][k] f32. */
DSN_TARGET_AVX512 void packAAvx512(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  if (klen % 16 != 0) return packAGeneric(p, m0, rows, k0, klen, kMr, false, dst);
  const int64_t padded = (rows + kMr - 1) / kMr * kMr;
  for (int64_t r = 0; r < padded; ++r) {
    float* d = reinterpret_cast<float*>(dst + r * klen);
    if (r >= rows) {
      for (int64_t k = 0; k < klen; k += 16) _mm512_storeu_ps(d + k, _mm512_setzero_ps());
      continue;
    }
    const int64_t base = (m0 + r) * p.lda + k0;
    for (int64_t k = 0; k < klen; k += 16) _mm512_storeu_ps(d + k, load16F32(p.a, p.aType, base + k));
  }
}

/** W panel of 64 columns → [k][64] f32: from [N, K] by 16 × 16 transposes, from [K, N] by rows. */
DSN_TARGET_AVX512 void packWAvx512(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  float* d = reinterpret_cast<float*>(dst);
  if (p.wKN) {
    if (n0 + kNr > p.N) return packWGeneric(p, n0, k0, klen, kNr, false, dst);
    for (int64_t k = 0; k < klen; ++k)
      for (int v = 0; v < 4; ++v) _mm512_store_ps(d + k * kNr + 16 * v, load16F32(p.w, p.wType, (k0 + k) * p.ldw + n0 + 16 * v));
    return;
  }
  if (klen % 16 != 0) return packWGeneric(p, n0, k0, klen, kNr, false, dst);
  for (int g = 0; g < 4; ++g)
    for (int64_t k = 0; k < klen; k += 16) {
      __m512i rowsv[16], cols[16];
      for (int i = 0; i < 16; ++i) {
        int64_t n = n0 + 16 * g + i;
        rowsv[i] = n < p.N ? _mm512_castps_si512(load16F32(p.w, p.wType, n * p.ldw + k0 + k)) : _mm512_setzero_si512();
      }
      transpose16(rowsv, cols);
      for (int c = 0; c < 16; ++c) _mm512_store_si512(d + (k + c) * kNr + 16 * g, cols[c]);
    }
}

DSN_TARGET_AVX512 void microAvx512(int64_t slots, const uint32_t* ap_, const uint32_t* wp_, const float* scale, float* c, int64_t ldc) {
  const float* ap = reinterpret_cast<const float*>(ap_);
  const float* wp = reinterpret_cast<const float*>(wp_);
  __m512 t[kMr][4];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) t[i][0] = t[i][1] = t[i][2] = t[i][3] = _mm512_setzero_ps();
  for (int64_t s = 0; s < slots; ++s) {
    const float* w = wp + s * kNr;
    __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16), w2 = _mm512_load_ps(w + 32), w3 = _mm512_load_ps(w + 48);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      __m512 a = _mm512_set1_ps(ap[i * slots + s]);
      t[i][0] = _mm512_fmadd_ps(a, w0, t[i][0]);
      t[i][1] = _mm512_fmadd_ps(a, w1, t[i][1]);
      t[i][2] = _mm512_fmadd_ps(a, w2, t[i][2]);
      t[i][3] = _mm512_fmadd_ps(a, w3, t[i][3]);
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

// ---- AVX-512 f32, few rows of A: W streamed once, lanes along k ----


DSN_TARGET_AVX512 inline __m512 load16F32Masked(const void* base, DType t, int64_t i, __mmask16 mask) {
  if (mask == 0xffff) return load16F32(base, t, i);
  switch (t) {
    case DType::f32: return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(base) + i);
    case DType::bf16: {
      __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(base) + i);
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    default: {
      alignas(16) uint8_t tmp[16] = {};
      for (int j = 0; j < 16; ++j)
        if (mask >> j & 1) tmp[j] = static_cast<const uint8_t*>(base)[i + j];
      return _mm512_maskz_mov_ps(mask, load16F32(tmp, t, 0));
    }
  }
}

/** Writes the horizontal sums of acc[m] to y[m, n]. */
template <int M>
DSN_TARGET_AVX512 inline void finishRow(const Problem& p, int64_t n, const __m512* acc) {
  for (int m = 0; m < M; ++m) {
    float v = _mm512_reduce_add_ps(acc[m]);
    if (p.yType == DType::f32) static_cast<float*>(p.y)[m * p.ldy + n] = v;
    else static_cast<uint16_t*>(p.y)[m * p.ldy + n] = f32ToBf16(v);
  }
}

template <int M, DType WT>
DSN_TARGET_AVX512 void smallMF32Rows(const Problem& p, int64_t n0, int64_t n1) {
  constexpr bool kScaled = WT == DType::f8e4m3;  // FP8: per-128 block sums times sa·sw
  const int64_t K = p.K, Kp = (K + 15) / 16 * 16;
  float* ap = tlsSmallA.get<float>(size_t(M * Kp));
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < Kp; k += 16) {
      __mmask16 mask = K - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (K - k)) - 1);
      _mm512_store_ps(ap + m * Kp + k, load16F32Masked(p.a, p.aType, m * p.lda + k, mask));
    }
  // A chunk in L1 (≤ 16 KB, a multiple of 128 elements); accumulators of rowsPerPass rows ≤ 8 KB.
  const int64_t chunk = std::max<int64_t>(kBlockK, (4096 / M) / kBlockK * kBlockK);
  const int64_t rowsPerPass = 128 / M;
  const int64_t KB = K / kBlockK;
  __m512* cbuf = tlsSmallC.get<__m512>(size_t(rowsPerPass * M));
  float* scales = kScaled ? tlsSmallS.get<float>(size_t(KB * M)) : nullptr;
  int64_t scalesFor = -1;
  const size_t es = dtypeSize(WT);
  for (int64_t r0 = n0; r0 < n1; r0 += rowsPerPass) {
    const int64_t r1 = std::min(n1, r0 + rowsPerPass);
    for (int64_t c0 = 0; c0 < K; c0 += chunk) {
      const int64_t c1 = std::min(K, c0 + chunk);
      for (int64_t n = r0; n < r1; ++n) {
        if (kScaled && n / kBlockK != scalesFor) {
          scalesFor = n / kBlockK;
          const float* sw = p.wScales + scalesFor * p.ldws;
          for (int64_t kb = 0; kb < KB; ++kb)
            for (int m = 0; m < M; ++m) scales[kb * M + m] = p.aScales[m * p.ldas + kb] * sw[kb];
        }
        __m512 acc[M];
#pragma GCC unroll 8
        for (int m = 0; m < M; ++m) acc[m] = c0 == 0 ? _mm512_setzero_ps() : cbuf[(n - r0) * M + m];
        const char* row = static_cast<const char*>(p.w) + n * p.ldw * int64_t(es);
        const char* ahead = n + 2 < r1 ? row + 2 * p.ldw * int64_t(es) : row;
        if (kScaled) {
          for (int64_t kb = c0 / kBlockK; kb < c1 / kBlockK; ++kb) {
            _mm_prefetch(ahead + kb * kBlockK, _MM_HINT_T0);
            _mm_prefetch(ahead + kb * kBlockK + 64, _MM_HINT_T0);
            __m512 block[2][M];
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) {
              __m512 wv = load16F32(row, WT, kb * kBlockK + 16 * j);
#pragma GCC unroll 8
              for (int m = 0; m < M; ++m) {
                __m512 av = _mm512_load_ps(ap + m * Kp + kb * kBlockK + 16 * j);
                block[j & 1][m] = j < 2 ? _mm512_mul_ps(av, wv) : _mm512_fmadd_ps(av, wv, block[j & 1][m]);
              }
            }
#pragma GCC unroll 8
            for (int m = 0; m < M; ++m)
              acc[m] = _mm512_fmadd_ps(_mm512_add_ps(block[0][m], block[1][m]), _mm512_set1_ps(scales[kb * M + m]), acc[m]);
          }
        } else {
          __m512 acc2[M];
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) acc2[m] = _mm512_setzero_ps();
          int64_t k = c0;
          for (; k + 32 <= c1; k += 32) {
            _mm_prefetch(ahead + k * int64_t(es), _MM_HINT_T0);
            if (es == 4) _mm_prefetch(ahead + k * int64_t(es) + 64, _MM_HINT_T0);
            __m512 w0 = load16F32(row, WT, k), w1 = load16F32(row, WT, k + 16);
#pragma GCC unroll 8
            for (int m = 0; m < M; ++m) {
              acc[m] = _mm512_fmadd_ps(_mm512_load_ps(ap + m * Kp + k), w0, acc[m]);
              acc2[m] = _mm512_fmadd_ps(_mm512_load_ps(ap + m * Kp + k + 16), w1, acc2[m]);
            }
          }
          for (; k < c1; k += 16) {
            __mmask16 mask = c1 - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (c1 - k)) - 1);
            __m512 w0 = load16F32Masked(row, WT, k, mask);
#pragma GCC unroll 8
            for (int m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(_mm512_load_ps(ap + m * Kp + k), w0, acc[m]);
          }
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) acc[m] = _mm512_add_ps(acc[m], acc2[m]);
        }
        if (c1 < K) {
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m) cbuf[(n - r0) * M + m] = acc[m];
        } else {
          finishRow<M>(p, n, acc);
        }
      }
    }
  }
}

template <DType WT>
bool smallMF32Typed(const Problem& p, int64_t n0, int64_t n1) {
  switch (p.M) {
    case 1: smallMF32Rows<1, WT>(p, n0, n1); return true;
    case 2: smallMF32Rows<2, WT>(p, n0, n1); return true;
    case 3: smallMF32Rows<3, WT>(p, n0, n1); return true;
    case 4: smallMF32Rows<4, WT>(p, n0, n1); return true;
    case 5: smallMF32Rows<5, WT>(p, n0, n1); return true;
    case 6: smallMF32Rows<6, WT>(p, n0, n1); return true;
    case 7: smallMF32Rows<7, WT>(p, n0, n1); return true;
    case 8: smallMF32Rows<8, WT>(p, n0, n1); return true;
    default: return false;
  }
}

/** W stored [K, N] (bmmHeads), few rows: lanes along n, A broadcast, W rows streamed once. */
template <int M>
DSN_TARGET_AVX512 void smallMKNRows(const Problem& p, int64_t n0, int64_t n1) {
  constexpr int V = M <= 6 ? 4 : 3;  // 16-column vectors a step: M·V accumulators ≤ 24
  float* ap = tlsSmallA.get<float>(size_t(M * p.K));
  for (int m = 0; m < M; ++m)
    for (int64_t k = 0; k < p.K; ++k) ap[m * p.K + k] = f32FromAny(p.a, p.aType, m * p.lda + k);
  const int64_t es = int64_t(dtypeSize(p.wType));
  for (int64_t c = n0; c < n1; c += 16 * V) {
    __mmask16 mask[V];
    for (int v = 0; v < V; ++v) {
      int64_t have = std::max<int64_t>(0, std::min<int64_t>(16, n1 - c - 16 * v));
      mask[v] = __mmask16((1u << have) - 1);
    }
    __m512 acc[M][V];
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[m][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < p.K; ++k) {
      const int64_t base = k * p.ldw + c;
      _mm_prefetch(static_cast<const char*>(p.w) + (base + 8 * p.ldw) * es, _MM_HINT_T0);
      __m512 wv[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) wv[v] = load16F32Masked(p.w, p.wType, base + 16 * v, mask[v]);
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) {
        const __m512 a = _mm512_set1_ps(ap[m * p.K + k]);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[m][v] = _mm512_fmadd_ps(a, wv[v], acc[m][v]);
      }
    }
    for (int m = 0; m < M; ++m)
      for (int v = 0; v < V; ++v) {
        if (!mask[v]) continue;
        if (p.yType == DType::f32) {
          _mm512_mask_storeu_ps(static_cast<float*>(p.y) + m * p.ldy + c + 16 * v, mask[v], acc[m][v]);
        } else {
          alignas(64) float tmp[16];
          _mm512_store_ps(tmp, acc[m][v]);
          uint16_t* y = static_cast<uint16_t*>(p.y) + m * p.ldy + c + 16 * v;
          for (int j = 0; j < 16; ++j)
            if (mask[v] >> j & 1) y[j] = f32ToBf16(tmp[j]);
        }
      }
  }
}

bool smallMKN(const Problem& p, int64_t n0, int64_t n1) {
  if (p.aScales || p.wScales || p.wType == DType::f8e4m3) return false;
  switch (p.M) {
    case 1: smallMKNRows<1>(p, n0, n1); return true;
    case 2: smallMKNRows<2>(p, n0, n1); return true;
    case 3: smallMKNRows<3>(p, n0, n1); return true;
    case 4: smallMKNRows<4>(p, n0, n1); return true;
    case 5: smallMKNRows<5>(p, n0, n1); return true;
    case 6: smallMKNRows<6>(p, n0, n1); return true;
    case 7: smallMKNRows<7>(p, n0, n1); return true;
    case 8: smallMKNRows<8>(p, n0, n1); return true;
    default: return false;
  }
}

bool smallMAvx512(const Problem& p, int64_t n0, int64_t n1) {
  if (p.wKN) return smallMKN(p, n0, n1);
  switch (p.wType) {
    case DType::f8e4m3:
      if (!p.aScales || !p.wScales || p.K % kBlockK != 0) return false;
      return smallMF32Typed<DType::f8e4m3>(p, n0, n1);
    case DType::bf16:
      if (p.aScales || p.wScales) return false;
      return smallMF32Typed<DType::bf16>(p, n0, n1);
    case DType::f32:
      if (p.aScales || p.wScales) return false;
      return smallMF32Typed<DType::f32>(p, n0, n1);
    default: return false;
  }
}

const KernelSet kAvx512 = {"avx512", kMr, kNr, false, packAAvx512, packWAvx512, microAvx512, smallMAvx512};

// ---- AVX512-BF16: 6 × 64, bf16 pairs ----

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
  DSN_TARGET_AVX512BF16 Fp8Decoder()
      : hi0(_mm512_load_si512(kFp8Bf16.hi)), hi1(_mm512_load_si512(kFp8Bf16.hi + 64)),
        lo0(_mm512_load_si512(kFp8Bf16.lo)), lo1(_mm512_load_si512(kFp8Bf16.lo + 64)), signBit(_mm512_set1_epi8(char(0x80))) {}
  /** 64 E4M3 codes → 64 bf16 as two vectors of k-pairs. Within 128-bit lane L, `even` holds the
   *  pairs of codes 16L…16L+7 and `odd` those of 16L+8…16L+15 (the order of vpunpck{l,h}bw). */
  DSN_TARGET_AVX512BF16 void decode(__m512i codes, __m512i& even, __m512i& odd) const {
    __m512i h = _mm512_permutex2var_epi8(hi0, codes, hi1);   // index bits 0-6: the magnitude
    h = _mm512_ternarylogic_epi32(h, codes, signBit, 0xF8);  // h | (codes & 0x80)
    __m512i l = _mm512_permutex2var_epi8(lo0, codes, lo1);
    even = _mm512_unpacklo_epi8(l, h);
    odd = _mm512_unpackhi_epi8(l, h);
  }
  /** The same 64 bf16 in k order: pairs 0…15 and 16…31. */
  DSN_TARGET_AVX512BF16 void decodeInOrder(__m512i codes, __m512i& first, __m512i& second) const {
    __m512i e, o;
    decode(codes, e, o);
    first = _mm512_permutex2var_epi64(e, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), o);
    second = _mm512_permutex2var_epi64(e, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), o);
  }
};

/** A rows → [group][i][64 pairs]: each row's 128 codes decoded in k order. */
DSN_TARGET_AVX512BF16 void packABf16Fp8(const Problem& p, int64_t m0, int64_t rows, int64_t k0, uint32_t* dst) {
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
DSN_TARGET_AVX512BF16 void packABf16Bf16(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
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
DSN_TARGET_AVX512BF16 void packWBf16Fp8(const Problem& p, int64_t n0, int64_t k0, uint32_t* dst) {
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
      transpose16(ev[h], cols);
      for (int c = 0; c < 16; ++c) _mm512_store_si512(base + (32 * h + 8 * (c >> 2) + (c & 3)) * kNr, cols[c]);
      transpose16(od[h], cols);
      for (int c = 0; c < 16; ++c) _mm512_store_si512(base + (32 * h + 8 * (c >> 2) + 4 + (c & 3)) * kNr, cols[c]);
    }
  }
}

/** bf16 W panel → [pair][64 columns]: from [N, K] the pairs are a row's dwords (16 × 16 transposes);
 *  from [K, N] rows k and k+1 interleave. */
DSN_TARGET_AVX512BF16 void packWBf16Bf16(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
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
      transpose16(rowsv, cols);
      for (int c = 0; c < 16 && s + c < slots; ++c) _mm512_store_si512(dst + (s + c) * kNr + 16 * g, cols[c]);
    }
}

void packWBf16(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  if (p.wType == DType::f8e4m3 && !p.wKN && klen == kBlockK) return packWBf16Fp8(p, n0, k0, dst);
  if (p.wType == DType::bf16) return packWBf16Bf16(p, n0, k0, klen, dst);
  packWGeneric(p, n0, k0, klen, kNr, true, dst);
}

DSN_TARGET_AVX512BF16 inline __m512bh asBh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

DSN_TARGET_AVX512BF16 void microBf16(int64_t slots, const uint32_t* ap, const uint32_t* wp, const float* scale, float* c, int64_t ldc) {
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
DSN_TARGET_AVX512BF16 inline __m512 freshZero() {
  __m512 z;
  asm volatile("vpxord %0, %0, %0" : "=v"(z));
  return z;
}

/** Rows [n, n + NR) of W (NR = 1 or 2; rows in the same 128-row scale block) against MG rows of A
 *  over k-blocks [kb0, kb1). scales[kb · scaleStride + m] = sa·sw of A row m of the group. */
template <int MG, int NR>
DSN_TARGET_AVX512BF16 inline void smallMBf16Step(const Fp8Decoder& dec, const uint8_t* row, int64_t ldw, const uint8_t* ahead,
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
#pragma GCC unroll 4
      for (int m = 0; m < MG; ++m) {
        const __m512bh av = asBh(_mm512_load_si512(ap + m * halfK + kb * 64 + 16 * j));
#pragma GCC unroll 2
        for (int r = 0; r < NR; ++r)
          block[r][m] = _mm512_dpbf16_ps(j == 0 ? freshZero() : block[r][m], asBh(wv[r][j]), av);
      }
#pragma GCC unroll 4
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
DSN_TARGET_AVX512BF16 inline void smallMBf16Group(const Problem& p, const Fp8Decoder& dec, int64_t n, const uint8_t* ahead,
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
DSN_TARGET_AVX512BF16 void smallMBf16Rows(const Problem& p, int64_t n0, int64_t n1) {
  // A's rows in up to two groups of ≤ 4, each against two W rows at a time (the W rows stay in L1
  // for the second group): that keeps block sums, accumulators and decoded W in the 32 registers.
  constexpr int G1 = M <= 4 ? M : (M + 1) / 2, G2 = M - G1;
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
        const bool pair = n + 1 < r1 && (n + 1) % kBlockK != 0;
        const int step = pair ? 2 : 1;
        const uint8_t* row = static_cast<const uint8_t*>(p.w) + n * p.ldw;
        const uint8_t* ahead = n + step + 1 < r1 ? row + (step + 1) * p.ldw : row;
        __m512* cb = cbuf + (n - r0) * M;
        if (pair) {
          smallMBf16Group<M, G1, 2>(p, dec, n, ahead, ap, halfK, scales, 0, kb0, kb1, cb);
          if constexpr (G2 > 0) smallMBf16Group<M, G2, 2>(p, dec, n, row, ap, halfK, scales, G1, kb0, kb1, cb);
        } else {
          smallMBf16Group<M, G1, 1>(p, dec, n, ahead, ap, halfK, scales, 0, kb0, kb1, cb);
          if constexpr (G2 > 0) smallMBf16Group<M, G2, 1>(p, dec, n, row, ap, halfK, scales, G1, kb0, kb1, cb);
        }
        n += step;
      }
    }
  }
}

bool smallMBf16(const Problem& p, int64_t n0, int64_t n1) {
  if (p.aType != DType::f8e4m3 || p.wType != DType::f8e4m3 || p.wKN || !p.aScales || !p.wScales || p.K % kBlockK != 0)
    return smallMAvx512(p, n0, n1);  // bf16 operands: the f32 streaming kernel
  switch (p.M) {
    case 1: smallMBf16Rows<1>(p, n0, n1); return true;
    case 2: smallMBf16Rows<2>(p, n0, n1); return true;
    case 3: smallMBf16Rows<3>(p, n0, n1); return true;
    case 4: smallMBf16Rows<4>(p, n0, n1); return true;
    case 5: smallMBf16Rows<5>(p, n0, n1); return true;
    case 6: smallMBf16Rows<6>(p, n0, n1); return true;
    case 7: smallMBf16Rows<7>(p, n0, n1); return true;
    case 8: smallMBf16Rows<8>(p, n0, n1); return true;
    default: return false;
  }
}

const KernelSet kAvx512Bf16 = {"avx512bf16", kMr, kNr, true, packABf16, packWBf16, microBf16, smallMBf16};

bool cpuHasBf16Dot() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16") &&
         __builtin_cpu_supports("avx512vbmi");
}

}  // namespace

const KernelSet* avx2Set() { return &kAvx2; }
const KernelSet* avx512Set() { return &kAvx512; }
const KernelSet* avx512Bf16Set() {
  static const bool has = cpuHasBf16Dot();
  return has ? &kAvx512Bf16 : nullptr;
}

}  // namespace dsn::cpu::gemmk

#else  // not x86-64: the scalar set only

namespace dsn::cpu::gemmk {
const KernelSet* avx2Set() { return nullptr; }
const KernelSet* avx512Set() { return nullptr; }
const KernelSet* avx512Bf16Set() { return nullptr; }
}  // namespace dsn::cpu::gemmk

#endif
