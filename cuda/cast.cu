#include <cuda_runtime.h>

#include "cast.cuh"
#include "convert.cuh"
#include "launch_check.cuh"

namespace dsn::cuda {
namespace {

__global__ void castKernel(CastParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.n; i += int64_t(gridDim.x) * blockDim.x)
    storeFromF32(p.y, p.to, i, loadAsF32(p.x, p.from, i));
}

}  // namespace

std::string castLaunch(const CastParams& p, const CudaLaunch& l) {
  if (p.n == 0) return "";
  int64_t blocks = (p.n + 255) / 256;
  if (blocks > 65535 * 16) blocks = 65535 * 16;
  castKernel<<<unsigned(blocks), 256, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

}  // namespace dsn::cuda
