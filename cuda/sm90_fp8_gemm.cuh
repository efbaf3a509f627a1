// CUDA FP8 block-scaled GEMM, dense and grouped by expert (contiguous layout): the same params and
// contract as native/cpu/gemm.h (native/params/gemm.h).
//
// Three kernels, chosen by fp8GemmCudaPath and the grouped variants (native/params/gemm.h):
// - "wgmma", M > 64 (prefill; the grouped layouts with many rows per expert): DeepGEMM's Hopper
//   pipeline. A persistent grid of 128 x 128 tiles in L2-friendly bands; a producer warpgroup whose
//   one thread TMA-loads (cp.async.bulk.tensor, 128B swizzle) A's and W's 128-wide K blocks into a
//   4-stage shared-memory ring guarded by full/empty mbarriers; two consumer warpgroups (setmaxnreg
//   232, the producer 40) running wgmma m64nNk32 e4m3 -> f32 per K block (N = BLOCK_N, 64 or 128 by
//   N for fp8Gemm: fp8GemmHopperBlockN; 128 for the grouped layouts); plain stores.
// - "swapAB", 1 <= M <= 64 (decode; the masked layout with <= 64 row slots): W is the traffic, so W's
//   rows take the 16-row side of mma.sync m16n8k32 e4m3 and the few activation rows its n8 side
//   (tiles of 64 W rows x 8·⌈M/8⌉), a 4-stage cp.async ring, K split over blocks when ⌈N/64⌉ tiles
//   cannot fill the SMs, the splits' partials summed in split order by a second kernel
//   (deterministic; the op gives it a workspace). Built on mma.sync rather than wgmma swap-AB: the
//   wgmma emulation has n64/n128 only, and a weight-bound kernel needs bytes in flight more than
//   tensor-core rate (bench/README.md).
// - "mma.sync": groupedFp8Gemm with few rows per expert, and the fallback for operands that are not
//   16-byte aligned: 64x64 tiles of four warps, one 128-wide K block at a time staged in shared memory.
// All use two-level accumulation: the tensor-core sum of each 128-block is multiplied by
// aScale·wScale and added into f32 registers, so FP8's limited accumulator precision never spans
// blocks (DeepGEMM's scheme). Not yet: TMA store epilogue, BLOCK_N 256 (bench/README.md).
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
