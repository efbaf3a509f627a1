// Params of the FP8 quantisation family (actQuant, fp8Dequant): used by native/cpu/quant.cc and
// cuda/quant.cu alike. Plain data; g++ and nvcc both compile this header.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"

namespace dsn {

/** Elements per group of the quantised outputs rmsNorm and swiglu can fuse (actQuant's default block). */
constexpr int64_t kQuantBlock = 128;

/** Per-group FP8 quantisation of activations (the reference's act_quant). */
struct ActQuantParams {
  const void* x = nullptr;    // [rows, K], dtype xType (f32 | bf16)
  DType xType = DType::bf16;
  uint8_t* codes = nullptr;   // [rows, K] f8e4m3
  float* scales = nullptr;    // [rows, K / blockSize] f32
  int64_t rows = 0, K = 0;
  int64_t blockSize = 128;    // divides K
  bool ue8m0 = false;         // scales rounded up to a power of two
};

/** FP8 block-scaled weights to f32 / bf16. */
struct Fp8DequantParams {
  const uint8_t* w = nullptr;     // [N, K] f8e4m3
  const float* scales = nullptr;  // [ceil(N/128), ceil(K/128)] f32
  void* out = nullptr;            // [N, K], dtype outType (f32 | bf16)
  DType outType = DType::bf16;
  int64_t N = 0, K = 0;
};

}  // namespace dsn
