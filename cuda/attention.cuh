// CUDA MLA attention: mlaDecode over the paged latent cache (plain [blocks, 64, C + Dr] rows or the
// FP8 latent rows of native/cpu/latent_cache.h), dense or with per-query index lists. The same params
// and numerics contract as the CPU kernel (native/params/attention.h, native/cpu/attention.h): f32
// scores (or the reference's bf16 score rounding), exact softmax normalisation, probabilities rounded
// to the activation dtype before P·V, f32 accumulation. A bad id sets the stream's error word.
#pragma once
#include <string>

#include "../native/params/attention.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

std::string mlaDecodeLaunch(const MlaDecodeParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
