// CUDA rotary position embedding: the same params and contract as native/cpu/rope.h, bit-exact
// with it (the same f32 products and sums, no fused multiply-add, rounded once to x's dtype).
#pragma once
#include <string>

#include "../native/params/launch.h"
#include "../native/params/rope.h"

namespace dsn::cuda {

/** Launches on l.stream; returns "" or the launch error. A position outside [0, tableRows) raises
 *  the stream's error word (positionOutOfRange). */
std::string ropeLaunch(const RopeParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
