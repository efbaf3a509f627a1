// CPU Walsh-Hadamard transform over the last dimension: y = (H_D x) / sqrt(D) with H_D the
// Sylvester (natural order) Hadamard matrix, as fast_hadamard_transform computes it; f32 math,
// output rounded to x's dtype.
#pragma once
#include <cstdint>

#include "../params/rope.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The params (native/params/rope.h) are the ones cuda/hadamard.cu takes.
using dsn::HadamardParams;

void hadamard(const HadamardParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
