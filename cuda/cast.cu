#include <cuda_runtime.h>

#include "cast.cuh"
#include "convert.cuh"
#include "launch_check.cuh"

namespace dsn::cuda {
namespace {

/** y = x converted. With both pointers 16-byte aligned (castLaunch decides), whole groups of 8
 *  elements move with 128-bit loads and stores (load8AsF32 / store8FromF32) and the last n % 8 one
 *  by one; otherwise every element one by one. The same conversions either way: the same bits. */
__global__ void castKernel(CastParams p, bool vectors) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x, first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t vectorEnd = vectors ? p.n / kVecElems * kVecElems : 0;
  for (int64_t i = first * kVecElems; i < vectorEnd; i += stride * kVecElems) {
    float v[kVecElems];
    load8AsF32(p.x, p.from, i, v);
    store8FromF32(p.y, p.to, i, v);
  }
  for (int64_t i = vectorEnd + first; i < p.n; i += stride) storeFromF32(p.y, p.to, i, loadAsF32(p.x, p.from, i));
}

}  // namespace

std::string castLaunch(const CastParams& p, const CudaLaunch& l) {
  if (p.n == 0) return "";
  const bool vectors = vectorAligned(p.x) && vectorAligned(p.y);
  const int64_t perThread = vectors ? kVecElems : 1;
  int64_t blocks = (p.n + 256 * perThread - 1) / (256 * perThread);
  if (blocks > 65535 * 16) blocks = 65535 * 16;
  castKernel<<<unsigned(blocks), 256, 0, static_cast<cudaStream_t>(l.stream)>>>(p, vectors);
  return launchError();
}

}  // namespace dsn::cuda
