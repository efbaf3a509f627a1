// Which SIMD path the CPU kernels take, chosen once from the CPU's features at load.
// DEEPSEEK_NATIVE_SIMD=scalar|avx2|avx512 forces a lower path (for tests of every path).
#pragma once

namespace dsn::cpu {

enum class Simd { Scalar = 0, Avx2 = 1, Avx512 = 2 };

/** The path in use: the best the CPU supports, capped by DEEPSEEK_NATIVE_SIMD. */
Simd simdLevel();
const char* simdName(Simd s);
/** Caps the path (tests run every kernel on every path the CPU has); returns the path now in use.
 *  Only call while no op is running. */
Simd setSimdCap(Simd cap);

// Function attributes for per-ISA kernels (no -march flags in what ships).
#define DSN_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define DSN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define DSN_TARGET_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi,avx2,fma,f16c")))

}  // namespace dsn::cpu
