#include <cuda_runtime.h>

#include "convert.cuh"
#include "elementwise.cuh"
#include "launch_check.cuh"
#include "math.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 256;

/** Blocks for a grid-stride loop over n items: enough to fill the GPU, at most 2^16. */
unsigned gridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return unsigned(blocks < 1 ? 1 : blocks > 65536 ? 65536 : blocks);
}

/** Launch: gridFor(n) blocks of 256 threads, grid-stride, one element a thread. */
__global__ void binaryKernel(BinaryParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.n; i += int64_t(gridDim.x) * blockDim.x) {
    const float a = loadAsF32(p.a, p.aType, i), b = loadAsF32(p.b, p.bType, p.period > 0 ? i % p.period : i);
    storeFromF32(p.out, p.outType, i, p.kind == BinaryKind::Add ? __fadd_rn(a, b) : __fmul_rn(a, b));
  }
}

/** Launch: as binaryKernel. */
__global__ void unaryKernel(UnaryParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = loadAsF32(p.x, p.xType, i);
    storeFromF32(p.out, p.outType, i, p.kind == UnaryKind::Silu ? siluRef(x) : __fmul_rn(x, p.scale));
  }
}

/** The widest unit (16, 8, 4, 2 or 1 bytes) that every given address, size and stride is a multiple of. */
int64_t unitFor(uint64_t bits) {
  for (int64_t u = 16; u > 1; u /= 2)
    if (bits % uint64_t(u) == 0) return u;
  return 1;
}

/** Copies one `unit`-byte piece (the unit divides both addresses). */
__device__ __forceinline__ void copyUnit(uint8_t* dst, const uint8_t* src, int64_t unit) {
  switch (unit) {
    case 16: *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src); break;
    case 8: *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(src); break;
    case 4: *reinterpret_cast<uint32_t*>(dst) = *reinterpret_cast<const uint32_t*>(src); break;
    case 2: *reinterpret_cast<uint16_t*>(dst) = *reinterpret_cast<const uint16_t*>(src); break;
    default: *dst = *src; break;
  }
}

/** Launch: gridFor(rows · rowBytes / unit) blocks of 256 threads, grid-stride over the units of the
 *  destination in order (coalesced writes; reads coalesced along each row). */
__global__ void copyStridedKernel(CopyStridedParams p, int64_t unit) {
  const int64_t perRow = p.rowBytes / unit, n = p.rows * perRow;
  for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < n; u += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = u / perRow, k = (u % perRow) * unit;
    copyUnit(static_cast<uint8_t*>(p.dst) + r * p.dstStride + k, static_cast<const uint8_t*>(p.src) + r * p.srcStride + k, unit);
  }
}

/** Launch: gridFor(numel · elemBytes / unit) blocks of 256 threads, grid-stride over the units of y in
 *  order: y's row (o, j, m, i) of inner elements comes from x's row (o, i, m, j). Writes coalesced;
 *  reads coalesced when the rows are long (inner ≥ a few units), strided otherwise. */
__global__ void transposeKernel(TransposeParams p, int64_t unit) {
  const int64_t rowBytes = p.inner * p.elemBytes, perRow = rowBytes / unit;
  const int64_t n = p.outer * p.b * p.mid * p.a * perRow;
  for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < n; u += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = u / perRow;
    const int64_t k = (u % perRow) * unit;
    const int64_t i = r % p.a;
    r /= p.a;
    const int64_t m = r % p.mid;
    r /= p.mid;
    const int64_t j = r % p.b, o = r / p.b;
    const int64_t src = (((o * p.a + i) * p.mid + m) * p.b + j) * rowBytes;
    copyUnit(static_cast<uint8_t*>(p.y) + u * unit, static_cast<const uint8_t*>(p.x) + src + k, unit);
  }
}

}  // namespace

std::string binaryLaunch(const BinaryParams& p, const CudaLaunch& l) {
  if (p.n == 0) return "";
  binaryKernel<<<gridFor(p.n), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

std::string unaryLaunch(const UnaryParams& p, const CudaLaunch& l) {
  if (p.n == 0) return "";
  unaryKernel<<<gridFor(p.n), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

std::string copyStridedLaunch(const CopyStridedParams& p, const CudaLaunch& l) {
  if (p.rows <= 0 || p.rowBytes <= 0) return "";
  const int64_t unit = unitFor(uint64_t(uintptr_t(p.dst)) | uint64_t(uintptr_t(p.src)) | uint64_t(p.dstStride) | uint64_t(p.srcStride) | uint64_t(p.rowBytes));
  copyStridedKernel<<<gridFor(p.rows * (p.rowBytes / unit)), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, unit);
  return launchError();
}

std::string transposeLaunch(const TransposeParams& p, const CudaLaunch& l) {
  const int64_t bytes = p.outer * p.a * p.mid * p.b * p.inner * p.elemBytes;
  if (bytes == 0) return "";
  const int64_t unit = unitFor(uint64_t(uintptr_t(p.x)) | uint64_t(uintptr_t(p.y)) | uint64_t(p.inner * p.elemBytes));
  transposeKernel<<<gridFor(bytes / unit), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, unit);
  return launchError();
}

}  // namespace dsn::cuda
