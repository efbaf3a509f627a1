// cuda-emu: cuTensorMapEncodeTiled, validating as the driver documents.
#include <cstring>

#include "cuda_emu.h"
#include "emu_tensormap.h"

CUresult cuTensorMapEncodeTiled(CUtensorMap* map, CUtensorMapDataType dtype, cuuint32_t rank, void* globalAddress, const cuuint64_t* globalDim,
                                const cuuint64_t* globalStrides, const cuuint32_t* boxDim, const cuuint32_t* elementStrides,
                                CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill oobFill) {
  static const uint8_t sizes[] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2};
  if (!map || rank < 1 || rank > 5 || unsigned(dtype) > 9 || interleave != CU_TENSOR_MAP_INTERLEAVE_NONE) return CUDA_ERROR_INVALID_VALUE;
  if (reinterpret_cast<uintptr_t>(globalAddress) % 16) return CUDA_ERROR_INVALID_VALUE;
  cuda_emu::TensorMapDesc d;
  memset(&d, 0, sizeof d);
  d.magic = cuda_emu::kTensorMapMagic;
  d.rank = uint8_t(rank);
  d.elemBytes = sizes[dtype];
  d.swizzle = uint8_t(swizzle);
  d.oobNan = oobFill == CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA;
  d.base = static_cast<const char*>(globalAddress);
  uint64_t extent = 0;
  for (uint32_t i = 0; i < rank; ++i) {
    if (globalDim[i] == 0 || globalDim[i] > (uint64_t(1) << 32)) return CUDA_ERROR_INVALID_VALUE;
    if (boxDim[i] == 0 || boxDim[i] > 256) return CUDA_ERROR_INVALID_VALUE;
    if (elementStrides && elementStrides[i] != 1) return CUDA_ERROR_INVALID_VALUE;  // only dense boxes are emulated
    d.dims[i] = uint32_t(globalDim[i]);
    d.box[i] = uint16_t(boxDim[i]);
    uint64_t stride = i == 0 ? d.elemBytes : globalStrides[i - 1];
    if (i > 0) {
      if (stride % 16 || stride >= (uint64_t(1) << 40)) return CUDA_ERROR_INVALID_VALUE;
      d.strides[i - 1] = stride;
    }
    extent += (globalDim[i] - 1) * stride;
  }
  extent += d.elemBytes;
  const uint32_t innerBytes = boxDim[0] * d.elemBytes;
  if (innerBytes % 16) return CUDA_ERROR_INVALID_VALUE;
  if (swizzle != CU_TENSOR_MAP_SWIZZLE_NONE && innerBytes > (16u << swizzle)) return CUDA_ERROR_INVALID_VALUE;  // 32, 64, 128 bytes
  if (!cuda_emu::isGlobal(globalAddress, size_t(extent))) return CUDA_ERROR_INVALID_VALUE;
  memset(map, 0, sizeof *map);
  memcpy(map, &d, sizeof d);
  return CUDA_SUCCESS;
}
