// CPU matrix products: FP8 block-scaled GEMM (dense and grouped by expert), plain f32/bf16 GEMM and
// the per-head batched product of MLA. All accumulate in f32 and round once to the output dtype.
#pragma once
#include <cstdint>

#include "../params/gemm.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The params (native/params/gemm.h) are the ones cuda/gemm.cu and cuda/sm90_fp8_gemm.cu take.
using dsn::BmmHeadsParams;
using dsn::Fp8GemmParams;
using dsn::GemmParams;
using dsn::GroupedFp8GemmParams;
using dsn::MaskedGroupedFp8GemmParams;

/** y[m, n] = Σ_kb (Σ_{k∈kb} a[m,k]·w[n,k]) · aScales[m,kb] · wScales[n/128,kb]. */
void fp8Gemm(const Fp8GemmParams& p, ThreadPool& pool);

/** fp8Gemm per expert over its rows. Checks offsets first (throws "offsets …" range errors). */
void groupedFp8Gemm(const GroupedFp8GemmParams& p, ThreadPool& pool);
void maskedGroupedFp8Gemm(const MaskedGroupedFp8GemmParams& p, ThreadPool& pool);

/**
 * FP8 weights used where they lie (CPU only; the checkpoint's mapped shards): E experts, each the
 * row-concatenation of P parts (gate and up, or one weight), part p of expert e being its own
 * `[rows[p], K]` f8e4m3 matrix with its own `[ceil(rows[p]/128), K/128]` f32 block scales. The
 * product over expert e's parts equals fp8Gemm over their stacked copy `[Σ rows, K]` bit for bit
 * when every part but the last has a multiple of 128 rows (the stacked copy's scale rows then
 * line up with the parts' own): each output column is computed alone, by the same kernel.
 */
struct Fp8WeightParts {
  const uint8_t* const* w = nullptr;      // [E·P]: part p of expert e at e·P + p, [rows[p], K] f8e4m3
  const float* const* scales = nullptr;   // [E·P]: [ceil(rows[p]/128), K/128] f32
  const int64_t* rows = nullptr;          // [P], each ≥ 1; N = Σ rows
  int64_t E = 0, P = 0, N = 0, K = 0;     // K % 128 == 0
};

/** fp8Gemm / groupedFp8Gemm over Fp8WeightParts. offsets null: the M rows of a all use expert 0 (E
 *  is 1); else [E + 1] as groupedFp8Gemm's (checked first: throws "offsets …" range errors). */
struct Fp8GemmPartsParams {
  const uint8_t* a = nullptr;         // [M, K] f8e4m3
  const float* aScales = nullptr;     // [M, K/128] f32
  Fp8WeightParts w;
  const int32_t* offsets = nullptr;   // [E + 1] i32 or null
  void* y = nullptr;                  // [M, N], dtype yType (f32 | bf16)
  DType yType = DType::bf16;
  int64_t M = 0;
  bool exactBlockSums = false;
};
void fp8GemmParts(const Fp8GemmPartsParams& p, ThreadPool& pool);

/** y = x · wᵀ. */
void gemm(const GemmParams& p, ThreadPool& pool);

/** y[t, h, b] = Σ_a x[t, h, a] · w[h, a, b]. */
void bmmHeads(const BmmHeadsParams& p, ThreadPool& pool);

/** Test hook: allow (default) or forbid the AVX512-BF16 dot-product kernels; returns whether they
 *  are now in use (false on CPUs without them). Call only while no op runs. */
bool setGemmBf16Dot(bool enabled);

/** Batch-invariant GEMM: a row's result does not depend on how many rows the product has (the
 *  small-M kernels are not used). Call only while no op runs. */
bool setGemmBatchInvariant(bool enabled);

}  // namespace dsn::cpu
