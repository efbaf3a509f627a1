// The blocked GEMM engine behind fp8Gemm, groupedFp8Gemm, gemm and bmmHeads (internal to native/cpu).
//
// Every product is y[m, n] = Σ_kb (Σ_{k ∈ kb} A[m, k] · W[n, k]) · sa[m, kb] · sw[⌊n/128⌋, kb] over
// k-blocks of 128, accumulated in f32 and rounded once to y's dtype; without scales sa = sw = 1.
// A task owns a block of rows × a range of 128-aligned column panels: per k-block it packs its A rows
// and W panels into a kernel set's layout (f32, or bf16 pairs for the AVX512-BF16 dot product), runs
// the register-tiled micro-kernel, and writes its tile once at the end. One parallel region runs all
// tasks of a batch of problems (the experts of a grouped GEMM, the heads of bmmHeads).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu::gemmk {

/** k-block of the FP8 scales (and of the engine's accumulation). */
constexpr int64_t kBlockK = 128;

struct Problem {
  int64_t M = 0, N = 0, K = 0;
  const void* a = nullptr;         // A[m, k] = a[m * lda + k], dtype aType (f8e4m3 | bf16 | f32)
  DType aType = DType::f32;
  int64_t lda = 0;
  const float* aScales = nullptr;  // sa[m, kb] = aScales[m * ldas + kb]; nullptr: 1 (K % 128 == 0 when set)
  int64_t ldas = 0;
  const void* w = nullptr;         // W[n, k] = w[n * ldw + k] (or w[k * ldw + n] when wKN), dtype wType
  DType wType = DType::f32;
  int64_t ldw = 0;
  bool wKN = false;
  const float* wScales = nullptr;  // sw[nb, kb] = wScales[nb * ldws + kb]; nullptr: 1
  int64_t ldws = 0;
  void* y = nullptr;               // y[m * ldy + n], dtype yType (f32 | bf16)
  DType yType = DType::f32;
  int64_t ldy = 0;
  /** Each k-block's Σ A·W computed exactly (f64: FP8×FP8 products and their sums over 128 values are
   *  exact there) and rounded to f32 once, before the scale: the result no longer depends on the
   *  summation order, so it is bit-identical on every path and matches an exact FP8 reference. */
  bool exactBlockSums = false;
};

/** Runs independent problems in one parallel region. Products of zero size are skipped. */
void run(const Problem* problems, int64_t count, ThreadPool& pool);

/** The AVX512-BF16 dot-product kernels are used when the CPU has them, the SIMD cap allows AVX-512
 *  and this is on (the default); tests turn it off to cover the f32 AVX-512 kernels too. */
bool setBf16Dot(bool enabled);
bool bf16DotAvailable();

/** On: products run in row slices of at most 8 on the small-M kernels (where the kernel set has
 *  them), whose per-row sums do not depend on the row count, so a row's result does not depend on its
 *  batch; off (default): more than 8 rows take the tiled kernels, which sum in another order. */
bool setBatchInvariant(bool enabled);

/** Runs f(std::integral_constant<int, M>{}) for M = 1…8, so a small-M kernel gets its row count as a
 *  template argument; false (and nothing run) for any other M. */
template <typename F>
bool dispatchSmallM(int64_t M, F&& f) {
  switch (M) {
    case 1: f(std::integral_constant<int, 1>{}); return true;
    case 2: f(std::integral_constant<int, 2>{}); return true;
    case 3: f(std::integral_constant<int, 3>{}); return true;
    case 4: f(std::integral_constant<int, 4>{}); return true;
    case 5: f(std::integral_constant<int, 5>{}); return true;
    case 6: f(std::integral_constant<int, 6>{}); return true;
    case 7: f(std::integral_constant<int, 7>{}); return true;
    case 8: f(std::integral_constant<int, 8>{}); return true;
    default: return false;
  }
}

/** A 64-byte aligned scratch buffer that only grows; kernels keep one per thread and use. */
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p_); }
  template <typename T>
  T* get(size_t count) {
    size_t bytes = (count * sizeof(T) + 63) & ~size_t(63);
    if (bytes > cap_) {
      std::free(p_);
      p_ = std::aligned_alloc(64, bytes);
      if (!p_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
      cap_ = bytes;
    }
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

// ---- kernel sets (gemm_engine.cc: scalar; gemm_vec.cc: AVX2 and AVX-512 f32, one body each over vec.h;
//      gemm_fp8_avx2.cc: the few-rows FP8 kernel both use; gemm_avx512bf16.cc: vdpbf16ps) ----

/** Packed operands are 32-bit slots: one f32 (k) or, with bf16Pairs, two bf16 (k, k+1). */
struct KernelSet {
  const char* name;
  int mr, nr;       // register tile: mr rows of A × nr columns of W; nr divides 128
  bool bf16Pairs;
  /** A rows [m0, m0 + rows), k in [k0, k0 + klen) → dst[group][i][slot], row m0 + group·mr + i
   *  (rows padded to a multiple of mr with zeros). */
  void (*packA)(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, uint32_t* dst);
  /** W columns [n0, n0 + nr) (zero past N), same k range → dst[slot][nr]. */
  void (*packW)(const Problem& p, int64_t n0, int64_t k0, int64_t klen, uint32_t* dst);
  /** c[i][j] += (Σ_slot ap[i][slot] · wp[slot][j]) · scale[i] for an mr × nr tile. */
  void (*micro)(int64_t slots, const uint32_t* ap, const uint32_t* wp, const float* scale, float* c, int64_t ldc);
  /** Optional: the whole product for few rows of A (M ≤ 8) straight from W, or nullptr. Returns
   *  false when it does not handle this problem. Runs columns [n0, n1) only. */
  bool (*smallM)(const Problem& p, int64_t n0, int64_t n1);
};

extern const KernelSet kScalarSet;
const KernelSet* avx2Set();         // nullptr when not compiled for x86
const KernelSet* avx512Set();
const KernelSet* avx512Bf16Set();

// Generic packers (plain C++), used by every set for the layouts it does not specialise.
void packAGeneric(const Problem& p, int64_t m0, int64_t rows, int64_t k0, int64_t klen, int mr, bool pairs, uint32_t* dst);
void packWGeneric(const Problem& p, int64_t n0, int64_t k0, int64_t klen, int nr, bool pairs, uint32_t* dst);

}  // namespace dsn::cpu::gemmk
