// CUDA element-wise ops (add, mul, silu, scale) and layout copies (slice, concat, transpose): the same
// params and contracts as native/cpu/elementwise.h and native/cpu/layout.h, bit for bit (f32 math
// with the CPU's roundings: one rounded add or product, silu as cuda/math.cuh's siluRef).
#pragma once
#include <string>

#include "../native/params/elementwise.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

/** Each launches on l.stream and returns "" or the launch error. */
std::string binaryLaunch(const BinaryParams& p, const CudaLaunch& l);
std::string unaryLaunch(const UnaryParams& p, const CudaLaunch& l);
std::string copyStridedLaunch(const CopyStridedParams& p, const CudaLaunch& l);
std::string transposeLaunch(const TransposeParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
