// fp8Gemm through the CPU GEMM engine, timed in C (no JS, no queue): one thread, the calling thread's
// CPU time (so that on a shared machine time slices taken by other processes do not count), with the
// read-bandwidth and f32 FMA rooflines measured the same way at the start and the end of the run.
// Decode cases (M ≤ 8) cycle through copies of W totalling ≥ 96 MB, as bench/gemm.bench.ts does.
//
//   g++ -std=c++17 -O3 -ffp-contract=off -I. bench/native/fp8gemm.cc native/cpu/gemm*.cc native/cpu/simd.cc \
//       native/cpu/probe.cc native/runtime/threadpool.cc -pthread -o /tmp/fp8gemm
//   SIMD=avx2 /tmp/fp8gemm 15 1,2,4,8 2112x7168,4096x1536,7168x2048,2048x7168,4096x7168
//   SIMD=avx2 /tmp/fp8gemm 3 256 2048x7168,4096x1536
//   SIMD=avx2 /tmp/fp8gemm G 3 256 512 1024 2048      (groupedFp8Gemm: E R N K, rows split evenly)
// Set WALL=1 for wall-clock time instead.
#include <chrono>
#include <cstdio>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <string>
#include <algorithm>
#include "native/cpu/gemm.h"
#include "native/cpu/simd.h"
#include "native/cpu/probe.h"
using namespace dsn;
#include <time.h>
#include <immintrin.h>
static double now() { timespec ts; clock_gettime(getenv("WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts); return ts.tv_sec + 1e-9 * ts.tv_nsec; }
// Single-thread probes in CPU time: a 256 MB read and ten independent FMA chains.
__attribute__((target("avx2,fma"))) static double readProbe() {
  size_t n = (256u << 20) / 32; __m256i* b = (__m256i*)aligned_alloc(64, n * 32); memset(b, 1, n * 32);
  double best = 1e9;
  for (int r = 0; r < 5; ++r) { double t0 = now(); __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < n; i += 4) { s0 = _mm256_add_epi32(s0, b[i]); s1 = _mm256_add_epi32(s1, b[i+1]); s2 = _mm256_add_epi32(s2, b[i+2]); s3 = _mm256_add_epi32(s3, b[i+3]); }
    volatile int sink = _mm256_extract_epi32(_mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3)), 0); (void)sink;
    best = std::min(best, now() - t0); }
  free(b); return n * 32.0 / best / 1e9; }
__attribute__((target("avx2,fma"))) static double fmaProbe() {
  double best = 1e9; long it = 20000000;
  for (int r = 0; r < 3; ++r) { __m256 a[10]; for (int j = 0; j < 10; ++j) a[j] = _mm256_set1_ps(j); __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
    double t0 = now(); for (long i = 0; i < it; ++i) { for (int j = 0; j < 10; ++j) a[j] = _mm256_fmadd_ps(a[j], x, y); __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]), "+x"(a[6]), "+x"(a[7]), "+x"(a[8]), "+x"(a[9])); }
    best = std::min(best, now() - t0); }
  return it * 10 * 16.0 / best / 1e9; }
static double runOne(ThreadPool& pool, int M, int N, int K, int reps) {
  size_t wbytes = size_t(N) * K;
  int copies = M <= 8 ? std::max<size_t>(1, (96u << 20) / wbytes + 1) : 1;
  std::vector<std::vector<uint8_t>> ws(copies, std::vector<uint8_t>(wbytes));
  uint32_t s = 1;
  auto rnd = [&]() { s ^= s << 13; s ^= s >> 17; s ^= s << 5; uint8_t c = s & 0xff; if ((c & 0x7f) == 0x7f) c ^= 1; return c; };
  for (auto& w : ws) for (auto& b : w) b = rnd();
  std::vector<uint8_t> a(size_t(M) * K); for (auto& b : a) b = rnd();
  std::vector<float> sa(size_t(M) * K / 128, 1e-3f), sw(size_t((N + 127) / 128) * K / 128, 1e-3f);
  std::vector<uint16_t> y(size_t(M) * N);
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    cpu::Fp8GemmParams p; p.a = a.data(); p.aScales = sa.data(); p.w = ws[r % copies].data(); p.wScales = sw.data();
    p.y = y.data(); p.M = M; p.N = N; p.K = K;
    double t0 = now(); cpu::fp8Gemm(p, pool); t.push_back(now() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
/** groupedFp8Gemm: E experts of N × K, R rows split evenly; returns the median seconds. */
static double runGrouped(ThreadPool& pool, int E, int R, int N, int K, int reps) {
  std::vector<uint8_t> w(size_t(E) * N * K), a(size_t(R) * K);
  uint32_t s = 7;
  auto rnd = [&]() { s ^= s << 13; s ^= s >> 17; s ^= s << 5; uint8_t c = s & 0xff; if ((c & 0x7f) == 0x7f) c ^= 1; return c; };
  for (auto& b : w) b = rnd();
  for (auto& b : a) b = rnd();
  std::vector<float> sa(size_t(R) * K / 128, 1e-3f), sw(size_t(E) * ((N + 127) / 128) * K / 128, 1e-3f);
  std::vector<int32_t> off(E + 1);
  for (int e = 0; e <= E; ++e) off[e] = int32_t(int64_t(R) * e / E);
  std::vector<uint16_t> y(size_t(R) * N);
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    cpu::GroupedFp8GemmParams p; p.a = a.data(); p.aScales = sa.data(); p.w = w.data(); p.wScales = sw.data();
    p.offsets = off.data(); p.y = y.data(); p.R = R; p.E = E; p.N = N; p.K = K;
    double t0 = now(); cpu::groupedFp8Gemm(p, pool); t.push_back(now() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
int main(int argc, char** argv) {
  // fp8gemm REPS M1,M2,... N1xK1,N2xK2,...   (1 thread, CPU time)
  if (!strcmp(argv[1], "G")) {  // fp8gemm G REPS E R N K: groupedFp8Gemm
    const char* simd = getenv("SIMD");
    if (simd && !strcmp(simd, "avx2")) cpu::setSimdCap(cpu::Simd::Avx2);
    ThreadPool pool(1);
    int reps = atoi(argv[2]), E = atoi(argv[3]), R = atoi(argv[4]), N = atoi(argv[5]), K = atoi(argv[6]);
    double bw0 = readProbe(), fma0 = fmaProbe();
    double med = runGrouped(pool, E, R, N, K, reps);
    double bw = std::max(bw0, readProbe()), fma = std::max(fma0, fmaProbe());
    printf("grouped E=%d R=%d N=%d K=%d: %.2f ms, %.2f GB/s of expert weight (%.0f %% of read %.2f), %.1f GFLOP/s (%.0f %% of FMA %.1f)\n", E, R, N, K,
           med * 1e3, double(E) * N * K / med / 1e9, 100 * double(E) * N * K / med / 1e9 / bw, bw, 2.0 * R * N * K / med / 1e9,
           100 * 2.0 * R * N * K / med / 1e9 / fma, fma);
    return 0;
  }
  int reps = atoi(argv[1]);
  std::vector<int> Ms; for (char* q = strtok(argv[2], ","); q; q = strtok(nullptr, ",")) Ms.push_back(atoi(q));
  std::vector<std::pair<int,int>> shapes; for (char* q = strtok(argv[3], ","); q; q = strtok(nullptr, ",")) { int n, k; sscanf(q, "%dx%d", &n, &k); shapes.push_back({n, k}); }
  const char* simd = getenv("SIMD");
  if (simd && !strcmp(simd, "avx2")) cpu::setSimdCap(cpu::Simd::Avx2);
  ThreadPool pool(1);
  double bw0 = readProbe(), fma0 = fmaProbe();
  std::vector<std::string> lines;
  for (auto [N, K] : shapes) for (int M : Ms) {
    double med = runOne(pool, M, N, K, reps);
    char buf[256];
    if (M <= 8) snprintf(buf, sizeof buf, "M=%d %dx%d %.2f ms %.2f GB/s %.1f GFLOP/s", M, N, K, med * 1e3, double(N) * K / med / 1e9, 2.0 * M * N * K / med / 1e9);
    else snprintf(buf, sizeof buf, "M=%d %dx%d %.2f ms %.1f GFLOP/s", M, N, K, med * 1e3, 2.0 * M * N * K / med / 1e9);
    lines.push_back(buf);
  }
  double bw1 = readProbe(), fma1 = fmaProbe();
  double bw = std::max(bw0, bw1), fma = std::max(fma0, fma1);
  printf("roofline (best of start/end): read %.2f GB/s (%.2f, %.2f), fma %.1f GFLOP/s (%.1f, %.1f)\n", bw, bw0, bw1, fma, fma0, fma1);
  for (auto& l : lines) printf("%s\n", l.c_str());
}
