// CUDA RMSNorm over the last dimension (optionally fused with the residual add): one block per row,
// f32 math, output rounded to x's dtype, and with p.codes set the output's actQuant (1×128 groups,
// cuda/fp8.cuh's warpQuantGroup128) in the same block: the bytes actQuantLaunch gives for that output.
// And LayerNorm. Same params and contract as native/cpu/norm.h.
#pragma once
#include <string>

#include "../native/params/launch.h"
#include "../native/params/norm.h"

namespace dsn::cuda {

/** Launches on l.stream; returns "" or the launch error. */
std::string rmsNormLaunch(const RmsNormParams& p, const CudaLaunch& l);
/** LayerNorm, bit-exact with cpu::layerNorm. Launches on l.stream; returns "" or the launch error. */
std::string layerNormLaunch(const LayerNormParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
