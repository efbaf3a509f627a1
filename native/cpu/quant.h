// CPU FP8 quantisation: per-group activation quantisation (the reference's act_quant) and block
// dequantisation of FP8 weights.
#pragma once
#include <cstdint>

#include "../params/quant.h"
#include "../runtime/threadpool.h"
#include "simd.h"

namespace dsn::cpu {

// The params (native/params/quant.h) are the ones cuda/quant.cu takes.
using dsn::ActQuantParams;
using dsn::Fp8DequantParams;

/**
 * Per group of blockSize: amax = max(max|x|, 1e-4); s = amax · f32(1/448) (ue8m0: the next power of
 * two ≥ s, from its bits); code = e4m3_rne(clamp(x / s, ±448)) with an f32 division. Bit-exact on every
 * SIMD path. Non-finite input as the reference's act_quant kernel (inference/kernel.py, TileLang,
 * whose max/min/clamp lower to fmaxf/fminf) produces it: amax skips NaN; a group holding ±inf gets
 * scale +inf, its finite elements code ±0 and its ±inf elements code -448 (inf/inf is NaN); a NaN
 * element codes -448 (fmaxf(NaN, -448)); a group of only NaN gets the floor scale 1e-4/448.
 */
void actQuant(const ActQuantParams& p, ThreadPool& pool);

/** actQuant of rows [r0, r1) on the calling thread, on SIMD path `level`: the routine the fused
 *  epilogues of rmsNorm and swiglu call on the rows they have just written. */
void actQuantRows(const ActQuantParams& p, int64_t r0, int64_t r1, Simd level);

/** The value of every E4M3 code, f32 (256 entries): the dequantising kernels' lookup table. */
const float* e4m3Values();

/** out[n, k] = f32(w[n, k]) · scales[n/128, k/128], rounded once to outType. */
void fp8Dequant(const Fp8DequantParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
