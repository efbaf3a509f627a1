// cuda-emu: the driver API's tensor maps (CUtensorMap, cuTensorMapEncodeTiled) for the emulated
// TMA (cuda/ptx/tma.cuh). The 128-byte map holds the encoded parameters; encoding validates them
// as the driver documents (alignments, strides, box sizes, swizzle span) and checks that the
// tensor lies inside one device allocation.
#pragma once
#include <cstdint>

typedef int CUresult;
#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
typedef uint64_t cuuint64_t;
typedef uint32_t cuuint32_t;

struct alignas(64) CUtensorMap {
  unsigned long long opaque[16];
};

enum CUtensorMapDataType {
  CU_TENSOR_MAP_DATA_TYPE_UINT8 = 0,
  CU_TENSOR_MAP_DATA_TYPE_UINT16,
  CU_TENSOR_MAP_DATA_TYPE_UINT32,
  CU_TENSOR_MAP_DATA_TYPE_INT32,
  CU_TENSOR_MAP_DATA_TYPE_UINT64,
  CU_TENSOR_MAP_DATA_TYPE_INT64,
  CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
  CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
  CU_TENSOR_MAP_DATA_TYPE_FLOAT64,
  CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
};
enum CUtensorMapInterleave { CU_TENSOR_MAP_INTERLEAVE_NONE = 0 };
enum CUtensorMapSwizzle {
  CU_TENSOR_MAP_SWIZZLE_NONE = 0,
  CU_TENSOR_MAP_SWIZZLE_32B,
  CU_TENSOR_MAP_SWIZZLE_64B,
  CU_TENSOR_MAP_SWIZZLE_128B,
};
enum CUtensorMapL2promotion { CU_TENSOR_MAP_L2_PROMOTION_NONE = 0, CU_TENSOR_MAP_L2_PROMOTION_L2_64B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B };
enum CUtensorMapFloatOOBfill { CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0, CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA };

CUresult cuTensorMapEncodeTiled(CUtensorMap* map, CUtensorMapDataType dtype, cuuint32_t rank, void* globalAddress, const cuuint64_t* globalDim,
                                const cuuint64_t* globalStrides, const cuuint32_t* boxDim, const cuuint32_t* elementStrides,
                                CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oobFill);

namespace cuda_emu {
/** The decoded tensor map (what cuTensorMapEncodeTiled stored). */
struct TensorMapDesc {
  uint32_t magic;
  uint8_t rank, elemBytes, swizzle, oobNan;
  const char* base;
  uint32_t dims[5];
  uint64_t strides[4];  // bytes, of dims 1 .. rank-1
  uint16_t box[5];
};
static_assert(sizeof(TensorMapDesc) <= sizeof(CUtensorMap), "the emulated tensor map must fit in CUtensorMap");
constexpr uint32_t kTensorMapMagic = 0x544d4150;  // "TMAP"
/** Byte offset after the swizzle of `mode` (0 none, 1 32B, 2 64B, 3 128B), per the PTX ISA: the
 *  16-byte chunk index (address bits 4..6) is XORed with address bits 7..9, of which 32B uses 1
 *  bit, 64B 2 bits, 128B 3 bits; the pattern repeats every 256, 512, 1024 bytes. */
inline uint32_t swizzle(uint32_t offset, int mode) {
  if (mode == 0) return offset;
  const uint32_t bits = (1u << mode) - 1;  // 1, 3, 7
  return offset ^ (((offset >> 7) & bits) << 4);
}
inline uint32_t swizzleRepeat(int mode) { return mode == 0 ? 16 : 128u << mode; }
}  // namespace cuda_emu
