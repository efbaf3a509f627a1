// CUDA token selection: argmax over each row of logits, the same contract as cpu::argmax (the first
// index of the largest value; NaN skipped; 0 when no value is above -inf), so the same ids.
#pragma once
#include <string>

#include "../native/params/launch.h"
#include "../native/params/sampling.h"

namespace dsn::cuda {

/** Launches on l.stream; returns "" or the launch error. */
std::string argmaxLaunch(const ArgmaxParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
