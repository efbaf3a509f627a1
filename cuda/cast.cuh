// CUDA element-wise dtype conversion between f32, bf16, f16 and f8e4m3 (RNE, f8 saturating).
// Same params and contract as native/cpu/cast.h.
#pragma once
#include <string>

#include "../native/params/cast.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

/** Launches on l.stream; returns "" or the launch error. */
std::string castLaunch(const CastParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
