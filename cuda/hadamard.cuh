// CUDA Walsh-Hadamard rotation over the last dimension (the indexer's rotate_activation): the same
// params and contract as native/cpu/hadamard.h, bit-exact with it (the same butterflies in f32,
// then one f32 product with the same scale, rounded once to x's dtype).
#pragma once
#include <string>

#include "../native/params/launch.h"
#include "../native/params/rope.h"

namespace dsn::cuda {

/** Launches on l.stream; returns "" or the launch error. */
std::string hadamardLaunch(const HadamardParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
