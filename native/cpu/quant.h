// CPU FP8 quantisation: per-group activation quantisation (the reference's act_quant) and block
// dequantisation of FP8 weights.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct ActQuantParams {
  const void* x = nullptr;    // [rows, K], dtype xType (f32 | bf16)
  DType xType = DType::bf16;
  uint8_t* codes = nullptr;   // [rows, K] f8e4m3
  float* scales = nullptr;    // [rows, K / blockSize] f32
  int64_t rows = 0, K = 0;
  int64_t blockSize = 128;    // divides K
  bool ue8m0 = false;         // scales rounded up to a power of two
};
/**
 * Per group of blockSize: amax = max(max|x|, 1e-4); s = amax · f32(1/448) (ue8m0: the next power of
 * two ≥ s, from its bits); code = e4m3_rne(clamp(x / s, ±448)) with an f32 division. Bit-exact on every
 * SIMD path. Non-finite input as the reference's act_quant kernel (inference/kernel.py, TileLang,
 * whose max/min/clamp lower to fmaxf/fminf) produces it: amax skips NaN; a group holding ±inf gets
 * scale +inf, its finite elements code ±0 and its ±inf elements code -448 (inf/inf is NaN); a NaN
 * element codes -448 (fmaxf(NaN, -448)); a group of only NaN gets the floor scale 1e-4/448.
 */
void actQuant(const ActQuantParams& p, ThreadPool& pool);

struct Fp8DequantParams {
  const uint8_t* w = nullptr;     // [N, K] f8e4m3
  const float* scales = nullptr;  // [ceil(N/128), ceil(K/128)] f32
  void* out = nullptr;            // [N, K], dtype outType (f32 | bf16)
  DType outType = DType::bf16;
  int64_t N = 0, K = 0;
};
/** out[n, k] = f32(w[n, k]) · scales[n/128, k/128], rounded once to outType. */
void fp8Dequant(const Fp8DequantParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
