// Device-side scalar conversions, bit-identical to native/runtime/dtype.h.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "../native/runtime/dtype.h"
#include "math.cuh"  // DSN_UNROLL

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

/** Elements per vector access of load8AsF32 / store8FromF32. */
constexpr int kVecElems = 8;

/** Whether p suits the 128-bit accesses below (16-byte aligned; null counts as aligned). */
__host__ __device__ __forceinline__ bool vectorAligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

/** The 8 elements [i, i + 8) of p (dtype t) as f32, read with 128-bit loads: two for f32, one for
 *  bf16 / f16, one 64-bit load for f8e4m3. p 16-byte aligned and i a multiple of 8. Each element
 *  converts as loadAsF32 converts it, bit for bit. */
__device__ __forceinline__ void load8AsF32(const void* p, DType t, int64_t i, float (&v)[kVecElems]) {
  switch (t) {
    case DType::bf16:
    case DType::f16: {
      const uint4 u = static_cast<const uint4*>(p)[i / 8];
      const uint32_t w[4] = {u.x, u.y, u.z, u.w};
      DSN_UNROLL
      for (int j = 0; j < 8; ++j) {
        const unsigned short b = static_cast<unsigned short>(w[j / 2] >> (16 * (j & 1)));
        v[j] = t == DType::bf16 ? __bfloat162float(__ushort_as_bfloat16(b)) : __half2float(__ushort_as_half(b));
      }
      break;
    }
    case DType::f8e4m3: {
      const uint2 u = static_cast<const uint2*>(p)[i / 8];
      DSN_UNROLL
      for (int j = 0; j < 8; ++j) {
        __nv_fp8_e4m3 c;
        c.__x = static_cast<__nv_fp8_storage_t>((j < 4 ? u.x : u.y) >> (8 * (j & 3)));
        v[j] = float(c);
      }
      break;
    }
    default: {
      const float4 a = static_cast<const float4*>(p)[i / 4], b = static_cast<const float4*>(p)[i / 4 + 1];
      v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    }
  }
}

/** Stores v to the 8 elements [i, i + 8) of p (dtype t) with 128-bit stores (f8e4m3: one 64-bit
 *  store), each converted as storeFromF32 converts it. p 16-byte aligned and i a multiple of 8. */
__device__ __forceinline__ void store8FromF32(void* p, DType t, int64_t i, const float (&v)[kVecElems]) {
  switch (t) {
    case DType::bf16:
    case DType::f16: {
      uint32_t w[4];
      DSN_UNROLL
      for (int j = 0; j < 4; ++j) {
        const uint32_t lo = t == DType::bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v[2 * j])) : __half_as_ushort(__float2half_rn(v[2 * j]));
        const uint32_t hi = t == DType::bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v[2 * j + 1])) : __half_as_ushort(__float2half_rn(v[2 * j + 1]));
        w[j] = lo | (hi << 16);
      }
      static_cast<uint4*>(p)[i / 8] = make_uint4(w[0], w[1], w[2], w[3]);
      break;
    }
    case DType::f8e4m3: {
      uint32_t w[2] = {0u, 0u};
      DSN_UNROLL
      for (int j = 0; j < 8; ++j) w[j / 4] |= uint32_t(__nv_fp8_e4m3(v[j]).__x) << (8 * (j & 3));  // saturating, RNE
      static_cast<uint2*>(p)[i / 8] = make_uint2(w[0], w[1]);
      break;
    }
    default:
      static_cast<float4*>(p)[i / 4] = make_float4(v[0], v[1], v[2], v[3]);
      static_cast<float4*>(p)[i / 4 + 1] = make_float4(v[4], v[5], v[6], v[7]);
  }
}

}  // namespace dsn::cuda
