// CUDA MLA attention: mlaPrefill over one sequence's keys (the non-absorbed form, causal, dense or
// with per-query index lists) and mlaDecode over the paged latent cache (plain [blocks, 64, C + Dr]
// rows or the FP8 latent rows of native/cpu/latent_cache.h), dense or with per-query index lists.
// The same params and numerics contract as the CPU kernels (native/params/attention.h,
// native/cpu/attention.h): f32 scores (or the reference's bf16 score rounding), exact softmax
// normalisation, probabilities rounded to the activation dtype before P·V, f32 accumulation. A bad
// id or position sets the stream's error word.
#pragma once
#include <string>

#include "../native/params/attention.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

std::string mlaPrefillLaunch(const MlaPrefillParams& p, const CudaLaunch& l);
std::string mlaDecodeLaunch(const MlaDecodeParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
