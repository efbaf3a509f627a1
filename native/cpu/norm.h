// CPU RMSNorm and LayerNorm over the last dimension. Math in f32, output rounded to its dtype.
// The params (native/params/norm.h) are the ones cuda/norm.cu takes.
#pragma once
#include <cstdint>

#include "../params/norm.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

/** out = weight · (x · 1/sqrt(mean(x²) + eps)); the sum of squares runs in a fixed order (64
 *  interleaved partial sums, then a fixed tree), so every SIMD path gives the same bits. With p.codes,
 *  each row is quantised right after it is written, by actQuant's own routine (actQuantRows). */
void rmsNorm(const RmsNormParams& p, ThreadPool& pool);

/** out = (x − mean) · 1/sqrt(var + eps) · weight + bias, mean and biased variance in f32. */
void layerNorm(const LayerNormParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
