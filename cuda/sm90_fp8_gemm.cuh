// CUDA FP8 block-scaled GEMM, dense and grouped by expert (contiguous layout): the same params and
// contract as native/cpu/gemm.h (native/params/gemm.h).
//
// Two kernels, chosen by fp8GemmCudaPath (native/params/gemm.h):
// - M > 64 (prefill), fp8Gemm: DeepGEMM's Hopper pipeline. A persistent grid of 128 x 128 tiles in
//   L2-friendly bands; a producer warpgroup whose one thread TMA-loads (cp.async.bulk.tensor, 128B
//   swizzle) A's and W's 128-wide K blocks into a 4-stage shared-memory ring guarded by full/empty
//   mbarriers; two consumer warpgroups (setmaxnreg 232, the producer 40) running wgmma m64n128k32
//   e4m3 -> f32 per K block; plain stores from the accumulators.
// - M <= 64 (decode) and the grouped layouts: mma.sync m16n8k32 e4m3 -> f32 (sm_89+), 64x64 tiles of
//   four warps, one 128-wide K block at a time staged in shared memory.
// Both use two-level accumulation: the tensor-core sum of each 128-block is multiplied by
// aScale·wScale and added into f32 registers, so FP8's limited accumulator precision never spans
// blocks (DeepGEMM's scheme). Not yet: TMA store epilogue, BLOCK_N chosen per N, the grouped
// layouts on wgmma, swap-AB / split-K for decode (bench/README.md).
// Numerics: each 128-block is summed on the tensor core in its own order, so results differ from the
// CPU's exactBlockSums by f32 summation error only (the tests bound it from the products' magnitudes).
#pragma once
#include <string>

#include "../native/params/gemm.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

std::string fp8GemmLaunch(const Fp8GemmParams& p, const CudaLaunch& l);
/** Tiles never straddle experts; the expert of a tile is found on the device from the offsets (no
 *  host sync on the routing). Bad offsets set the stream's error word. */
std::string groupedFp8GemmLaunch(const GroupedFp8GemmParams& p, const CudaLaunch& l);
std::string maskedGroupedFp8GemmLaunch(const MaskedGroupedFp8GemmParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
