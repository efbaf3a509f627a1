#include "gemm_engine.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <immintrin.h>

#include "convert.h"
#include "simd.h"

namespace dsn::cpu::gemmk {

namespace {

thread_local Scratch tlsA, tlsW, tlsC;

std::atomic<bool> g_bf16Dot{true};
std::atomic<bool> g_batchInvariant{false};

inline float elemF32(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::bf16: return bf16ToF32(static_cast<const uint16_t*>(base)[i]);
    case DType::f8e4m3: return f8e4m3ToF32(static_cast<const uint8_t*>(base)[i]);
    default: return 0;
  }
}

/** bf16 bits of an element whose value is exact in bf16 (bf16, or f8e4m3 which bf16 holds exactly). */
inline uint32_t elemBf16(const void* base, DType t, int64_t i) {
  if (t == DType::bf16) return static_cast<const uint16_t*>(base)[i];
  return f32ToBf16(elemF32(base, t, i));
}

inline uint32_t slotOf(const void* base, DType t, int64_t i, bool pairs, bool second) {
  if (!pairs) return f32Bits(elemF32(base, t, i));
  uint32_t lo = elemBf16(base, t, i);
  uint32_t hi = second ? elemBf16(base, t, i + 1) : 0;
  return lo | (hi << 16);
}

// ---- scalar kernel set: 4 × 16 tile in plain C++ ----

constexpr int kScalarMr = 4, kScalarNr = 16;

void packAScalar(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst) {
  packAGeneric(p, m0, rows, k0, klen, kScalarMr, false, dst);
}
void packWScalar(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst) {
  packWGeneric(p, n0, k0, klen, kScalarNr, false, dst);
}
void microScalar(int64_t slots, const uint32_t* ap_, const uint32_t* wp_, const float* scale, float* c, int64_t ldc) {
  const float* ap = reinterpret_cast<const float*>(ap_);
  const float* wp = reinterpret_cast<const float*>(wp_);
  float t[kScalarMr][kScalarNr] = {};
  for (int64_t s = 0; s < slots; ++s)
    for (int i = 0; i < kScalarMr; ++i) {
      float a = ap[i * slots + s];
      for (int j = 0; j < kScalarNr; ++j) t[i][j] += a * wp[s * kScalarNr + j];
    }
  for (int i = 0; i < kScalarMr; ++i)
    for (int j = 0; j < kScalarNr; ++j) c[i * ldc + j] += t[i][j] * scale[i];
}

/** microScalar with each k-block's sum exact in f64, rounded to f32 once (Problem::exactBlockSums). */
void microScalarExact(int64_t slots, const uint32_t* ap_, const uint32_t* wp_, const float* scale, float* c, int64_t ldc) {
  const float* ap = reinterpret_cast<const float*>(ap_);
  const float* wp = reinterpret_cast<const float*>(wp_);
  double t[kScalarMr][kScalarNr] = {};
  for (int64_t s = 0; s < slots; ++s)
    for (int i = 0; i < kScalarMr; ++i) {
      const double a = ap[i * slots + s];
      for (int j = 0; j < kScalarNr; ++j) t[i][j] += a * double(wp[s * kScalarNr + j]);
    }
  for (int i = 0; i < kScalarMr; ++i)
    for (int j = 0; j < kScalarNr; ++j) c[i * ldc + j] += float(t[i][j]) * scale[i];
}

const KernelSet kScalarExactSet = {"scalar-exact", kScalarMr, kScalarNr, false, packAScalar, packWScalar, microScalarExact, nullptr};

/** microScalarExact on AVX-512 f64 lanes: the same exact block sums (an FP8 product and every partial
 *  sum of 128 of them is a multiple of 2^-18 below 2^26, so f64 holds them exactly whatever the
 *  order), the same f32 rounding, scale and add: bit-identical to the scalar kernel. */
DSN_TARGET_AVX512 void microAvx512Exact(int64_t slots, const uint32_t* ap_, const uint32_t* wp_, const float* scale, float* c, int64_t ldc) {
  static_assert(kScalarNr == 16, "one f32 vector of W per slot");
  const float* ap = reinterpret_cast<const float*>(ap_);
  const float* wp = reinterpret_cast<const float*>(wp_);
  __m512d t[kScalarMr][2];
  for (int i = 0; i < kScalarMr; ++i) t[i][0] = t[i][1] = _mm512_setzero_pd();
  for (int64_t s = 0; s < slots; ++s) {
    const __m512 w = _mm512_loadu_ps(wp + s * kScalarNr);
    const __m512d w0 = _mm512_cvtps_pd(_mm512_castps512_ps256(w));
    const __m512d w1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(w, 1));
    for (int i = 0; i < kScalarMr; ++i) {
      const __m512d a = _mm512_set1_pd(double(ap[i * slots + s]));
      t[i][0] = _mm512_fmadd_pd(a, w0, t[i][0]);
      t[i][1] = _mm512_fmadd_pd(a, w1, t[i][1]);
    }
  }
  for (int i = 0; i < kScalarMr; ++i) {
    const __m512 sum = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(t[i][0])), _mm512_cvtpd_ps(t[i][1]), 1);
    float* ci = c + i * ldc;
    _mm512_storeu_ps(ci, _mm512_add_ps(_mm512_loadu_ps(ci), _mm512_mul_ps(sum, _mm512_set1_ps(scale[i]))));
  }
}

const KernelSet kAvx512ExactSet = {"avx512-exact", kScalarMr, kScalarNr, false, packAScalar, packWScalar, microAvx512Exact, nullptr};

// ---- the driver ----

struct Task {
  int32_t problem;
  int64_t m0, rows, n0, cols;
};

/** Splits one problem into tasks: row blocks of ≤ rowBlock rows × ranges of nr-panels. */
void planTasks(const Problem& p, int32_t index, const KernelSet& ks, int threads, bool small, std::vector<Task>& out) {
  const int64_t panels = (p.N + ks.nr - 1) / ks.nr;
  if (small) {
    // Few rows: split the columns only, in ranges of whole panels, about 4 per thread.
    int64_t parts = std::max<int64_t>(1, std::min<int64_t>(panels, int64_t(threads) * 4));
    for (int64_t t = 0; t < parts; ++t) {
      int64_t j0 = panels * t / parts, j1 = panels * (t + 1) / parts;
      if (j1 > j0) out.push_back({index, 0, p.M, j0 * ks.nr, std::min(p.N, j1 * ks.nr) - j0 * ks.nr});
    }
    return;
  }
  // Rows: blocks of up to 512, split evenly in multiples of mr. Each task packs the W panels it needs
  // once per row block, so larger blocks amortise the FP8 decode better.
  const int64_t rowBlocks = (p.M + 511) / 512;
  const int64_t blockRows = ((p.M + rowBlocks - 1) / rowBlocks + ks.mr - 1) / ks.mr * ks.mr;
  // Columns: as many panels a task as keep its f32 tile within 512 KB (at most 8), fewer when that
  // leaves fewer than two tasks a thread.
  int64_t perTask = std::max<int64_t>(1, std::min<int64_t>(8, (512 << 10) / (blockRows * ks.nr * 4)));
  while (perTask > 1 && rowBlocks * ((panels + perTask - 1) / perTask) < 2 * int64_t(threads)) --perTask;
  const int64_t colTasks = (panels + perTask - 1) / perTask;
  for (int64_t m0 = 0; m0 < p.M; m0 += blockRows) {
    const int64_t rows = std::min(blockRows, p.M - m0);
    for (int64_t c = 0; c < colTasks; ++c) {
      int64_t j0 = c * perTask, j1 = std::min(panels, j0 + perTask);
      out.push_back({index, m0, rows, j0 * ks.nr, std::min(p.N, j1 * ks.nr) - j0 * ks.nr});
    }
  }
}

void runTask(const Problem& p, const KernelSet& ks, const Task& t) {
  const int mr = ks.mr, nr = ks.nr;
  const int64_t rowGroups = (t.rows + mr - 1) / mr;
  const int64_t panels = (t.cols + nr - 1) / nr;
  const int64_t ldc = panels * nr;
  const int64_t maxSlots = ks.bf16Pairs ? kBlockK / 2 : kBlockK;
  uint32_t* abuf = tlsA.get<uint32_t>(size_t(rowGroups * mr * maxSlots));
  uint32_t* wbuf = tlsW.get<uint32_t>(size_t(panels * nr * maxSlots));
  float* c = tlsC.get<float>(size_t(rowGroups * mr * ldc));
  std::memset(c, 0, sizeof(float) * size_t(rowGroups * mr * ldc));
  alignas(64) float scale[16];
  const int64_t kBlocks = (p.K + kBlockK - 1) / kBlockK;
  for (int64_t kb = 0; kb < kBlocks; ++kb) {
    const int64_t k0 = kb * kBlockK, klen = std::min(kBlockK, p.K - k0);
    const int64_t slots = ks.bf16Pairs ? (klen + 1) / 2 : klen;
    ks.packA(p, t.m0, t.rows, k0, klen, abuf);
    for (int64_t j = 0; j < panels; ++j) ks.packW(p, t.n0 + j * nr, k0, klen, wbuf + j * nr * slots);
    for (int64_t j = 0; j < panels; ++j) {
      const int64_t n = t.n0 + j * nr;
      const float sw = p.wScales ? p.wScales[(n / kBlockK) * p.ldws + kb] : 1.0f;
      for (int64_t g = 0; g < rowGroups; ++g) {
        for (int i = 0; i < mr; ++i) {
          int64_t m = t.m0 + g * mr + i;
          float sa = p.aScales && m < t.m0 + t.rows ? p.aScales[m * p.ldas + kb] : 1.0f;
          scale[i] = sa * sw;
        }
        ks.micro(slots, abuf + g * mr * slots, wbuf + j * nr * slots, scale, c + g * mr * ldc + j * nr, ldc);
      }
    }
  }
  for (int64_t i = 0; i < t.rows; ++i)
    storeF32(c + i * ldc, p.yType, t.cols, at(p.y, p.yType, (t.m0 + i) * p.ldy + t.n0));
}

const KernelSet& pick(const Problem& p) {
  if (p.exactBlockSums) return simdLevel() == Simd::Avx512 ? kAvx512ExactSet : kScalarExactSet;
  Simd level = simdLevel();
  auto pairType = [](DType t) { return t == DType::f8e4m3 || t == DType::bf16; };
  if (level == Simd::Avx512) {
    if (g_bf16Dot.load() && pairType(p.aType) && pairType(p.wType) && avx512Bf16Set()) return *avx512Bf16Set();
    if (avx512Set()) return *avx512Set();
  }
  if (level >= Simd::Avx2 && avx2Set()) return *avx2Set();
  return kScalarSet;
}

}  // namespace

const KernelSet kScalarSet = {"scalar", kScalarMr, kScalarNr, false, packAScalar, packWScalar, microScalar, nullptr};

bool setBf16Dot(bool enabled) {
  g_bf16Dot.store(enabled);
  return enabled && bf16DotAvailable();
}

bool setBatchInvariant(bool enabled) {
  g_batchInvariant.store(enabled);
  return enabled;
}

bool bf16DotAvailable() { return avx512Bf16Set() != nullptr; }

void packAGeneric(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, int mr, bool pairs, uint32_t* dst) {
  const int64_t slots = pairs ? (klen + 1) / 2 : klen;
  const int64_t groups = (rows + mr - 1) / mr;
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t* d = dst + g * slots * mr;
    for (int i = 0; i < mr; ++i) {
      int64_t r = g * mr + i;
      if (r >= rows) {
        for (int64_t s = 0; s < slots; ++s) d[i * slots + s] = 0;
        continue;
      }
      const int64_t base = (m0 + r) * p.lda + k0;
      for (int64_t s = 0; s < slots; ++s) {
        int64_t k = pairs ? 2 * s : s;
        d[i * slots + s] = slotOf(p.a, p.aType, base + k, pairs, k + 1 < klen);
      }
    }
  }
}

void packWGeneric(const Problem& p, int64_t n0, int64_t k0, int64_t klen, int nr, bool pairs, uint32_t* dst) {
  const int64_t slots = pairs ? (klen + 1) / 2 : klen;
  for (int j = 0; j < nr; ++j) {
    int64_t n = n0 + j;
    if (n >= p.N) {
      for (int64_t s = 0; s < slots; ++s) dst[s * nr + j] = 0;
      continue;
    }
    for (int64_t s = 0; s < slots; ++s) {
      int64_t k = k0 + (pairs ? 2 * s : s);
      bool second = pairs && k + 1 < k0 + klen;
      if (!p.wKN) {
        dst[s * nr + j] = slotOf(p.w, p.wType, n * p.ldw + k, pairs, second);
      } else {
        uint32_t lo = pairs ? elemBf16(p.w, p.wType, k * p.ldw + n) : f32Bits(elemF32(p.w, p.wType, k * p.ldw + n));
        uint32_t hi = second ? elemBf16(p.w, p.wType, (k + 1) * p.ldw + n) : 0;
        dst[s * nr + j] = pairs ? (lo | (hi << 16)) : lo;
      }
    }
  }
}

/** Below this many multiply-adds a batch of products runs on the calling thread alone. */
constexpr double kSerialMacs = 256.0 * 1024;

/**
 * Batch-invariant mode: products whose kernel set has small-M kernels run as row slices of at most 8
 * (each on the small-M kernels, whose per-row sums do not depend on the row count), so a row's result
 * is the same whether its product has 1 row or 500.
 */
static void sliceRows(const Problem* problems, int64_t count, std::vector<Problem>& out) {
  for (int64_t i = 0; i < count; ++i) {
    const Problem& p = problems[i];
    if (p.M <= 8 || p.K <= 0 || !pick(p).smallM) {
      out.push_back(p);
      continue;
    }
    for (int64_t m0 = 0; m0 < p.M; m0 += 8) {
      Problem q = p;
      q.M = std::min<int64_t>(8, p.M - m0);
      q.a = at(p.a, p.aType, m0 * p.lda);
      if (p.aScales) q.aScales = p.aScales + m0 * p.ldas;
      q.y = at(p.y, p.yType, m0 * p.ldy);
      out.push_back(q);
    }
  }
}

void run(const Problem* problemsIn, int64_t countIn, ThreadPool& pool) {
  std::vector<Problem> sliced;
  const Problem* problems = problemsIn;
  int64_t count = countIn;
  if (g_batchInvariant.load()) {
    sliceRows(problemsIn, countIn, sliced);
    problems = sliced.data();
    count = int64_t(sliced.size());
  }
  std::vector<Task> tasks;
  std::vector<const KernelSet*> sets(size_t(count), nullptr);
  std::vector<char> small(size_t(count), 0);
  for (int64_t i = 0; i < count; ++i) {
    const Problem& p = problems[i];
    if (p.M <= 0 || p.N <= 0) continue;
    sets[i] = &pick(p);
    small[i] = sets[i]->smallM && p.M <= 8 && p.K > 0;
    planTasks(p, int32_t(i), *sets[i], pool.threads(), small[i], tasks);
  }
  if (tasks.empty()) return;
  // Products this small finish on one thread before a second would have woken up.
  double macs = 0;
  for (int64_t i = 0; i < count; ++i) macs += double(problems[i].M) * double(problems[i].N) * double(problems[i].K);
  const int64_t grain = macs < kSerialMacs ? int64_t(tasks.size()) : 1;
  pool.parallelFor(int64_t(tasks.size()), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const Task& task = tasks[size_t(t)];
      const Problem& p = problems[task.problem];
      const KernelSet& ks = *sets[size_t(task.problem)];
      if (small[size_t(task.problem)] && ks.smallM(p, task.n0, task.n0 + task.cols)) continue;
      runTask(p, ks, task);
    }
  }, grain);
}

}  // namespace dsn::cpu::gemmk
