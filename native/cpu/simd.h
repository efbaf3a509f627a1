// What the CPU has and which SIMD path the CPU kernels take, read once at load. Every per-target
// function attribute of the CPU kernels is defined here (no -march flags in what ships: a kernel
// compiled for a target runs only where cpuFeatures() says the CPU has it).
// DEEPSEEK_NATIVE_SIMD=scalar|avx2|avx512 forces a lower path (for tests of every path).
#pragma once

namespace dsn::cpu {

/** The x86 features the kernels use (all false elsewhere). */
struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;                              // the AVX2 path
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;  // the AVX-512 path
  bool avx512bf16 = false;  // vdpbf16ps: attention, indexer and GEMM kernels
  bool avx512vbmi = false;  // vpermi2b: the GEMM's FP8 → bf16 table decode
  bool hasAvx2Path() const { return avx2 && fma && f16c; }
  bool hasAvx512Path() const { return hasAvx2Path() && avx512f && avx512bw && avx512vl && avx512dq; }
};

/** The CPU's features, read once. */
const CpuFeatures& cpuFeatures();

enum class Simd { Scalar = 0, Avx2 = 1, Avx512 = 2 };

/** The path in use: the best the CPU supports, capped by DEEPSEEK_NATIVE_SIMD. */
Simd simdLevel();
const char* simdName(Simd s);
/** Caps the path (tests run every kernel on every path the CPU has); returns the path now in use.
 *  Only call while no op is running. */
Simd setSimdCap(Simd cap);

/** Whether the AVX512-BF16 dot products (vdpbf16ps) may run: the CPU has them and the path in use is
 *  AVX-512. */
inline bool bf16DotAllowed() { return cpuFeatures().avx512bf16 && simdLevel() == Simd::Avx512; }

/** Inlined into its caller whatever the heuristics say, compiled for the caller's target. */
#define DSN_INLINE inline __attribute__((always_inline))

// Function attributes for per-ISA kernels, one per set of features a kernel may use.
#define DSN_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define DSN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
/** AVX-512 with vdpbf16ps (CpuFeatures::avx512bf16; Cooper Lake has it without VBMI). */
#define DSN_TARGET_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))
/** AVX-512 with vdpbf16ps and VBMI's byte permutes (avx512bf16 and avx512vbmi). */
#define DSN_TARGET_AVX512BF16_VBMI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi,avx2,fma,f16c")))

}  // namespace dsn::cpu
