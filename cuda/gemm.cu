#include <cuda_runtime.h>

#include "convert.cuh"
#include "gemm.cuh"
#include "launch_check.cuh"

namespace dsn::cuda {
namespace {

constexpr int TILE = 64, TILE_K = 16, kThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each
static_assert(TILE == 4 * 16 && kThreads == 16 * 16, "each thread owns a 4 x 4 block of the tile");

/** y[b][m, n] = Σ_k x[b][m, k] · w[b](k, n), w(k, n) at w + k·wk + n·wn; batch b adds the strides. */
struct Strided {
  const void* x; DType xType; int64_t xm, xb;   // x(m, k) = x[b·xb + m·xm + k]
  const void* w; DType wType; int64_t wk, wn, wb;
  void* y; DType yType; int64_t ym, yb;         // y(m, n) = y[b·yb + m·ym + n]
  int64_t M, N, K;
};

__global__ void __launch_bounds__(kThreads) stridedGemmKernel(Strided s) {
  __shared__ float xs[TILE_K][TILE + 1];
  __shared__ float ws[TILE_K][TILE + 1];
  const int64_t b = blockIdx.z, m0 = int64_t(blockIdx.y) * TILE, n0 = int64_t(blockIdx.x) * TILE;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < s.K; k0 += TILE_K) {
    for (int i = threadIdx.x; i < TILE_K * TILE; i += kThreads) {
      const int kk = i % TILE_K, r = i / TILE_K;
      const int64_t k = k0 + kk, m = m0 + r, n = n0 + r;
      xs[kk][r] = (m < s.M && k < s.K) ? loadAsF32(s.x, s.xType, b * s.xb + m * s.xm + k) : 0.0f;
      ws[kk][r] = (n < s.N && k < s.K) ? loadAsF32(s.w, s.wType, b * s.wb + k * s.wk + n * s.wn) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < TILE_K; ++kk)
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(xs[kk][ty * 4 + i], ws[kk][tx * 4 + j], acc[i][j]);
    __syncthreads();
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const int64_t m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
      if (m < s.M && n < s.N) storeFromF32(s.y, s.yType, b * s.yb + m * s.ym + n, acc[i][j]);
    }
}

std::string launchStrided(const Strided& s, int64_t batch, cudaStream_t stream) {
  if (s.M == 0 || s.N == 0 || batch == 0) return "";
  const int64_t mTiles = (s.M + TILE - 1) / TILE;
  if (mTiles > 65535 || batch > 65535) return "too many rows or heads for one launch";
  dim3 grid(unsigned((s.N + TILE - 1) / TILE), unsigned(mTiles), unsigned(batch));
  stridedGemmKernel<<<grid, kThreads, 0, stream>>>(s);
  return launchError();
}

}  // namespace

std::string gemmLaunch(const GemmParams& p, const CudaLaunch& l) {
  // w is [N, K]: w(k, n) = w[n·K + k].
  Strided s{p.x, p.xType, p.K, 0, p.w, p.wType, 1, p.K, 0, p.y, p.yType, p.N, 0, p.M, p.N, p.K};
  return launchStrided(s, 1, static_cast<cudaStream_t>(l.stream));
}

std::string bmmHeadsLaunch(const BmmHeadsParams& p, const CudaLaunch& l) {
  // Per head h: x(t, a) = x[(t·H + h)·A + a], w(a, b) = w[(h·A + a)·B + b], y(t, b) = y[(t·H + h)·B + b].
  Strided s{p.x, p.xType, p.H * p.A, p.A, p.w, p.wType, p.B, 1, p.A * p.B, p.y, p.yType, p.H * p.B, p.B, p.T, p.B, p.A};
  return launchStrided(s, p.H, static_cast<cudaStream_t>(l.stream));
}

}  // namespace dsn::cuda
