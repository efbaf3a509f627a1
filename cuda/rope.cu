#include <cuda_runtime.h>

#include "convert.cuh"
#include "device_error.cuh"
#include "launch_check.cuh"
#include "rope.cuh"

namespace dsn::cuda {
namespace {

constexpr int kWarps = 8;  // rows per block: one warp per row of D dims

/**
 * Launch: grid min(ceil(rows / 8), 2^16) blocks of 8 warps, grid-stride over the T·H rows; one warp
 * per row: the lanes copy the dims outside [offset, offset + 2·half) and rotate the pairs (lane i
 * takes pairs i, i + 32, ...; the cos/sin row of the token is read coalesced). The arithmetic is
 * cpu::rope's: ac - bs and as + bc from four rounded f32 products.
 */
__global__ void ropeKernel(RopeParams p, DeviceErrorWord* err, uint32_t op) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = p.tokens * p.heads;
  const int64_t warpsInGrid = int64_t(gridDim.x) * kWarps;
  for (int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); r < rows; r += warpsInGrid) {
    const int64_t t = r / p.heads;
    const int32_t pos = p.positions[t];
    if (pos < 0 || pos >= p.tableRows) {
      if (lane == 0) raiseDeviceError(err, op, DeviceErrorWhat::positionOutOfRange, pos, p.tableRows);
      continue;
    }
    const int64_t base = r * p.dim, end = p.offset + 2 * p.half;
    for (int64_t d = lane; d < p.dim; d += 32)
      if (d < p.offset || d >= end) storeFromF32(p.out, p.type, base + d, loadAsF32(p.x, p.type, base + d));
    const float* c = p.cos + int64_t(pos) * p.half;
    const float* s = p.sin + int64_t(pos) * p.half;
    for (int64_t i = lane; i < p.half; i += 32) {
      const int64_t ia = base + p.offset + (p.interleaved ? 2 * i : i);
      const int64_t ib = p.interleaved ? ia + 1 : ia + p.half;
      const float a = loadAsF32(p.x, p.type, ia), b = loadAsF32(p.x, p.type, ib);
      const float ci = c[i], si = s[i];
      storeFromF32(p.out, p.type, ia, __fadd_rn(__fmul_rn(a, ci), -__fmul_rn(b, si)));
      storeFromF32(p.out, p.type, ib, __fadd_rn(__fmul_rn(a, si), __fmul_rn(b, ci)));
    }
  }
}

}  // namespace

std::string ropeLaunch(const RopeParams& p, const CudaLaunch& l) {
  const int64_t rows = p.tokens * p.heads;
  if (rows == 0) return "";
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  ropeKernel<<<unsigned(blocks < 65536 ? blocks : 65536), kWarps * 32, 0, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

}  // namespace dsn::cuda
