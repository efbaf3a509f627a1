#include <cuda_runtime.h>

#include <cmath>

#include "convert.cuh"
#include "hadamard.cuh"
#include "launch_check.cuh"

namespace dsn::cuda {
namespace {

constexpr int kMaxThreads = 256;

/**
 * Launch: grid min(rows, 2^16) blocks, grid-stride over rows; clamp(dim / 8, 32, 256) threads; the
 * row in dynamic shared memory as f32 (dim · 4 bytes, up to 128 KiB for dim 32768). The stages of
 * width 1, 2, 4 run in registers on blocks of 8 (as cpu::hadamard), the wider ones across shared
 * memory with a barrier each. Every output is the same sequence of f32 sums and differences as on
 * the CPU, then one product with `scale`.
 */
__global__ void hadamardKernel(HadamardParams p, float scale) {
  extern __shared__ float row[];  // [dim]
  const int64_t n = p.dim;
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const int64_t base = r * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) row[i] = loadAsF32(p.x, p.type, base + i);
    int64_t h = 1;
    if (n >= 8) {
      __syncthreads();
      for (int64_t c = threadIdx.x; c < n / 8; c += blockDim.x) {
        float* b = row + 8 * c;
        const float a0 = __fadd_rn(b[0], b[1]), a1 = __fadd_rn(b[0], -b[1]), a2 = __fadd_rn(b[2], b[3]), a3 = __fadd_rn(b[2], -b[3]);
        const float a4 = __fadd_rn(b[4], b[5]), a5 = __fadd_rn(b[4], -b[5]), a6 = __fadd_rn(b[6], b[7]), a7 = __fadd_rn(b[6], -b[7]);
        const float c0 = __fadd_rn(a0, a2), c1 = __fadd_rn(a1, a3), c2 = __fadd_rn(a0, -a2), c3 = __fadd_rn(a1, -a3);
        const float c4 = __fadd_rn(a4, a6), c5 = __fadd_rn(a5, a7), c6 = __fadd_rn(a4, -a6), c7 = __fadd_rn(a5, -a7);
        b[0] = __fadd_rn(c0, c4); b[1] = __fadd_rn(c1, c5); b[2] = __fadd_rn(c2, c6); b[3] = __fadd_rn(c3, c7);
        b[4] = __fadd_rn(c0, -c4); b[5] = __fadd_rn(c1, -c5); b[6] = __fadd_rn(c2, -c6); b[7] = __fadd_rn(c3, -c7);
      }
      h = 8;
    }
    for (; h < n; h *= 2) {
      __syncthreads();
      for (int64_t k = threadIdx.x; k < n / 2; k += blockDim.x) {
        const int64_t i = ((k & ~(h - 1)) << 1) | (k & (h - 1));  // the k-th pair (i, i + h) of this stage
        const float lo = row[i], hi = row[i + h];
        row[i] = __fadd_rn(lo, hi);
        row[i + h] = __fadd_rn(lo, -hi);
      }
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) storeFromF32(p.out, p.type, base + i, __fmul_rn(row[i], scale));
    __syncthreads();  // the row buffer is reused by the next row
  }
}

}  // namespace

std::string hadamardLaunch(const HadamardParams& p, const CudaLaunch& l) {
  if (p.rows == 0) return "";
  if (p.dim < 1 || p.dim > 32768 || (p.dim & (p.dim - 1)) != 0) return "hadamard: dim must be a power of two <= 32768";
  // The reference passes scale = dim ** -0.5 (a double) to a kernel taking a float, as cpu::hadamard.
  const float scale = float(1.0 / std::sqrt(double(p.dim)));
  const size_t smem = size_t(p.dim) * sizeof(float);
  if (smem > 48 * 1024) {
    const std::string e = errorText(cudaFuncSetAttribute(hadamardKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    if (!e.empty()) return e;
  }
  const int64_t threads = p.dim / 8 < 32 ? 32 : p.dim / 8 > kMaxThreads ? kMaxThreads : p.dim / 8;
  hadamardKernel<<<unsigned(p.rows < 65536 ? p.rows : 65536), unsigned(threads), smem, static_cast<cudaStream_t>(l.stream)>>>(p, scale);
  return launchError();
}

}  // namespace dsn::cuda
