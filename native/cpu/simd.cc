#include "simd.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace dsn::cpu {

static CpuFeatures readFeatures() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512vbmi = __builtin_cpu_supports("avx512vbmi");
#endif
  return f;
}

const CpuFeatures& cpuFeatures() {
  static const CpuFeatures features = readFeatures();
  return features;
}

static Simd detect() {
  const CpuFeatures& f = cpuFeatures();
  Simd best = f.hasAvx512Path() ? Simd::Avx512 : f.hasAvx2Path() ? Simd::Avx2 : Simd::Scalar;
  if (const char* env = std::getenv("DEEPSEEK_NATIVE_SIMD")) {
    Simd cap = best;
    if (!std::strcmp(env, "scalar")) cap = Simd::Scalar;
    else if (!std::strcmp(env, "avx2")) cap = Simd::Avx2;
    else if (!std::strcmp(env, "avx512")) cap = Simd::Avx512;
    if (int(cap) < int(best)) best = cap;
  }
  return best;
}

static Simd bestSupported() {
  static const Simd best = detect();
  return best;
}

static std::atomic<int> g_level{-1};

Simd simdLevel() {
  int v = g_level.load(std::memory_order_relaxed);
  if (v < 0) {
    v = int(bestSupported());
    g_level.store(v, std::memory_order_relaxed);
  }
  return Simd(v);
}

Simd setSimdCap(Simd cap) {
  Simd best = bestSupported();
  Simd level = int(cap) < int(best) ? cap : best;
  g_level.store(int(level), std::memory_order_relaxed);
  return level;
}

const char* simdName(Simd s) {
  switch (s) {
    case Simd::Avx512: return "avx512";
    case Simd::Avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace dsn::cpu
