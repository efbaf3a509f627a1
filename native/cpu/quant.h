// CPU FP8 quantisation: per-group activation quantisation (the reference's act_quant) and block
// dequantisation of FP8 weights.
#pragma once
#include <cstdint>

#include "../params/quant.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The params (native/params/quant.h) are the ones cuda/quant.cu takes.
using dsn::ActQuantParams;
using dsn::Fp8DequantParams;

/**
 * Per group of blockSize: amax = max(max|x|, 1e-4); s = amax · f32(1/448) (ue8m0: the next power of
 * two ≥ s, from its bits); code = e4m3_rne(clamp(x / s, ±448)) with an f32 division. Bit-exact on every
 * SIMD path.
 */
void actQuant(const ActQuantParams& p, ThreadPool& pool);

/** out[n, k] = f32(w[n, k]) · scales[n/128, k/128], rounded once to outType. */
void fp8Dequant(const Fp8DequantParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
