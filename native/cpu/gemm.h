// CPU matrix products: FP8 block-scaled GEMM (dense and grouped by expert), plain f32/bf16 GEMM and
// the per-head batched product of MLA. All accumulate in f32 and round once to the output dtype.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct Fp8GemmParams {
  const uint8_t* a = nullptr;        // [M, K] f8e4m3
  const float* aScales = nullptr;    // [M, K/128] f32
  const uint8_t* w = nullptr;        // [N, K] f8e4m3
  const float* wScales = nullptr;    // [ceil(N/128), K/128] f32
  void* y = nullptr;                 // [M, N], dtype yType (f32 | bf16)
  DType yType = DType::bf16;
  int64_t M = 0, N = 0, K = 0;       // K % 128 == 0
  bool exactBlockSums = false;       // see gemmk::Problem::exactBlockSums
};
/** y[m, n] = Σ_kb (Σ_{k∈kb} a[m,k]·w[n,k]) · aScales[m,kb] · wScales[n/128,kb]. */
void fp8Gemm(const Fp8GemmParams& p, ThreadPool& pool);

struct GroupedFp8GemmParams {
  const uint8_t* a = nullptr;        // [R, K] f8e4m3, rows grouped by expert
  const float* aScales = nullptr;    // [R, K/128] f32
  const uint8_t* w = nullptr;        // [E, N, K] f8e4m3
  const float* wScales = nullptr;    // [E, ceil(N/128), K/128] f32
  const int32_t* offsets = nullptr;  // [E + 1] i32: rows offsets[e] ≤ r < offsets[e+1] use expert e
  void* y = nullptr;                 // [R, N], dtype yType
  DType yType = DType::bf16;
  int64_t R = 0, E = 0, N = 0, K = 0;
  bool exactBlockSums = false;       // see gemmk::Problem::exactBlockSums
};
/** fp8Gemm per expert over its rows. Checks offsets first (throws "offsets …" range errors). */
void groupedFp8Gemm(const GroupedFp8GemmParams& p, ThreadPool& pool);

struct GemmParams {
  const void* x = nullptr;           // [M, K], dtype xType (f32 | bf16)
  DType xType = DType::f32;
  const void* w = nullptr;           // [N, K], dtype wType (f32 | bf16)
  DType wType = DType::f32;
  void* y = nullptr;                 // [M, N], dtype yType (f32 | bf16)
  DType yType = DType::f32;
  int64_t M = 0, N = 0, K = 0;
};
/** y = x · wᵀ. */
void gemm(const GemmParams& p, ThreadPool& pool);

struct BmmHeadsParams {
  const void* x = nullptr;           // [T, H, A], dtype xType (f32 | bf16)
  DType xType = DType::f32;
  const void* w = nullptr;           // [H, A, B], dtype wType (f32 | bf16)
  DType wType = DType::f32;
  void* y = nullptr;                 // [T, H, B], dtype yType (f32 | bf16)
  DType yType = DType::f32;
  int64_t T = 0, H = 0, A = 0, B = 0;
};
/** y[t, h, b] = Σ_a x[t, h, a] · w[h, a, b]. */
void bmmHeads(const BmmHeadsParams& p, ThreadPool& pool);

/** Test hook: allow (default) or forbid the AVX512-BF16 dot-product kernels; returns whether they
 *  are now in use (false on CPUs without them). Call only while no op runs. */
bool setGemmBf16Dot(bool enabled);

/** Batch-invariant GEMM: a row's result does not depend on how many rows the product has (the
 *  small-M kernels are not used). Call only while no op runs. */
bool setGemmBatchInvariant(bool enabled);

}  // namespace dsn::cpu
