// CUDA FP8 block-scaled GEMM, dense and grouped by expert (contiguous layout): the same params and
// contract as native/cpu/gemm.h (native/params/gemm.h).
//
// First version: mma.sync m16n8k32 e4m3 -> f32 on tensor cores (sm_89+, run on sm_90a), 64x64 tiles
// of four warps, one 128-wide K block at a time staged in shared memory, and two-level accumulation:
// the tensor-core sum of each 128-block is multiplied by aScale·wScale and added into f32 registers,
// so FP8's limited accumulator precision never spans blocks (DeepGEMM's scheme). Not yet DeepGEMM's
// Hopper pipeline (TMA loads, wgmma, warp specialisation, persistent scheduling): see bench/README.md.
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
