// CUDA FP8 quantisation: actQuant (bit-exact with native/cpu/quant.cc: the same amax, scale, ue8m0
// rounding, division, clamp and E4M3 rounding, non-finite input included) and fp8Dequant.
#pragma once
#include <string>

#include "../native/params/launch.h"
#include "../native/params/quant.h"

namespace dsn::cuda {

std::string actQuantLaunch(const ActQuantParams& p, const CudaLaunch& l);
std::string fp8DequantLaunch(const Fp8DequantParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
