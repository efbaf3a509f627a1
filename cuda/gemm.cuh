// CUDA plain GEMMs with f32 accumulation: gemm (y = x · wᵀ, the router and the LM head) and bmmHeads
// (MLA's per-head products), f32 and bf16 operands mixed freely: the same params and contract as
// native/cpu/gemm.h. First version: 64x64 shared-memory tiles on the CUDA cores (explicit fmaf, so the
// sums are deterministic); the bf16 tensor-core path is future work (bench/README.md).
#pragma once
#include <string>

#include "../native/params/gemm.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

std::string gemmLaunch(const GemmParams& p, const CudaLaunch& l);
std::string bmmHeadsLaunch(const BmmHeadsParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
