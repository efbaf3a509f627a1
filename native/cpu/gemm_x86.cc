// x86 kernel sets of the GEMM engine: AVX2 (6 × 16 f32), AVX-512 (6 × 64 f32) and AVX512-BF16
// (6 × 64, bf16 pairs through vdpbf16ps: FP8 and bf16 operands are exact in bf16 and their products
// exact in f32, so only the f32 accumulation rounds, as in the f32 kernels).
#include "gemm_engine.h"

// GCC 12 flags the undefined vectors inside its own AVX-512 intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#if defined(__x86_64__)
#include <immintrin.h>

#include "simd.h"

#define DSN_TARGET_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi,avx2,fma,f16c")))

namespace dsn::cpu::gemmk {

namespace {

// ---- AVX2: 6 × 16 f32 ----

constexpr int kAvx2Mr = 6, kAvx2Nr = 16;

void packAAvx2(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  packAGeneric(p, m0, rows, k0, klen, kAvx2Mr, false, dst);
}
void packWAvx2(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  packWGeneric(p, n0, k0, klen, kAvx2Nr, false, dst);
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
      __m256 a = _mm256_broadcast_ss(ap + s * kAvx2Mr + i);
      t[i][0] = _mm256_fmadd_ps(a, w0, t[i][0]);
      t[i][1] = _mm256_fmadd_ps(a, w1, t[i][1]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kAvx2Mr; ++i) {
    __m256 sc = _mm256_broadcast_ss(scale + i);
    float* ci = c + i * ldc;
    _mm256_storeu_ps(ci, _mm256_add_ps(_mm256_loadu_ps(ci), _mm256_mul_ps(t[i][0], sc)));
    _mm256_storeu_ps(ci + 8, _mm256_add_ps(_mm256_loadu_ps(ci + 8), _mm256_mul_ps(t[i][1], sc)));
  }
}

const KernelSet kAvx2 = {"avx2", kAvx2Mr, kAvx2Nr, false, packAAvx2, packWAvx2, microAvx2, nullptr};

// ---- AVX-512: 6 × 64 f32 ----

constexpr int kMr = 6, kNr = 64;

void packAAvx512(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  packAGeneric(p, m0, rows, k0, klen, kMr, false, dst);
}
void packWAvx512(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  packWGeneric(p, n0, k0, klen, kNr, false, dst);
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
      __m512 a = _mm512_set1_ps(ap[s * kMr + i]);
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
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(ci + 16 * v, _mm512_add_ps(_mm512_loadu_ps(ci + 16 * v), _mm512_mul_ps(t[i][v], sc)));
  }
}

const KernelSet kAvx512 = {"avx512", kMr, kNr, false, packAAvx512, packWAvx512, microAvx512, nullptr};

// ---- AVX512-BF16: 6 × 64, bf16 pairs ----

void packABf16(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  packAGeneric(p, m0, rows, k0, klen, kMr, true, dst);
}
void packWBf16(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  packWGeneric(p, n0, k0, klen, kNr, true, dst);
}

DSN_TARGET_AVX512BF16 inline __m512bh asBh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

DSN_TARGET_AVX512BF16 void microBf16(int64_t slots, const uint32_t* ap, const uint32_t* wp, const float* scale, float* c, int64_t ldc) {
  __m512 t[kMr][4];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) t[i][0] = t[i][1] = t[i][2] = t[i][3] = _mm512_setzero_ps();
  for (int64_t s = 0; s < slots; ++s) {
    const uint32_t* w = wp + s * kNr;
    __m512bh w0 = asBh(_mm512_load_si512(w)), w1 = asBh(_mm512_load_si512(w + 16));
    __m512bh w2 = asBh(_mm512_load_si512(w + 32)), w3 = asBh(_mm512_load_si512(w + 48));
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      __m512bh a = asBh(_mm512_set1_epi32(int(ap[s * kMr + i])));
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
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(ci + 16 * v, _mm512_add_ps(_mm512_loadu_ps(ci + 16 * v), _mm512_mul_ps(t[i][v], sc)));
  }
}

const KernelSet kAvx512Bf16 = {"avx512bf16", kMr, kNr, true, packABf16, packWBf16, microBf16, nullptr};

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
