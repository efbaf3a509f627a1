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
