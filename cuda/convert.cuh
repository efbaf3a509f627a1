// Device-side scalar conversions, bit-identical to native/runtime/dtype.h.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "../native/runtime/dtype.h"

namespace dsn::cuda {

__device__ __forceinline__ float loadAsF32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::bf16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::f16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::f8e4m3: return float(static_cast<const __nv_fp8_e4m3*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void storeFromF32(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::bf16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    case DType::f16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case DType::f8e4m3: static_cast<__nv_fp8_e4m3*>(p)[i] = __nv_fp8_e4m3(v); break;  // saturating, RNE
    default: static_cast<float*>(p)[i] = v; break;
  }
}

}  // namespace dsn::cuda
