#include <cuda_runtime.h>

#include "convert.cuh"
#include "device_error.cuh"
#include "launch_check.cuh"
#include "math.cuh"  // DSN_UNROLL: fragment loops fully unrolled, so the fragments stay in registers
#include "ptx/mma.cuh"
#include "sm90_fp8_gemm.cuh"

namespace dsn::cuda {
namespace {

constexpr int BLOCK_M = 64, BLOCK_N = 64, BLOCK_K = 128;
constexpr int kWarps = 4, kThreads = kWarps * 32;    // 2 x 2 warps, each a 32 x 32 sub-tile
constexpr int kRowBytes = BLOCK_K + 16;              // padded smem rows (16-byte aligned)
static_assert(BLOCK_M == 2 * 32 && BLOCK_N == 2 * 32, "four warps cover the tile as 2 x 2 sub-tiles of 32 x 32");
static_assert(BLOCK_K % 32 == 0, "the K block is a whole number of m16n8k32 steps");
static_assert(BLOCK_N <= 128 && 128 % BLOCK_N == 0, "a tile's columns share one 128-row block of wScales");

/** One output tile: rows [m0, mEnd) of a / y (a's rows for the tile's expert), columns [n0, n0 + 64). */
struct Tile {
  const uint8_t* a;
  const float* aScales;
  const uint8_t* w;
  const float* wScales;
  void* y;
  int64_t m0, mEnd, n0;
};

__device__ __forceinline__ uint32_t ld32(const uint8_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

__device__ __forceinline__ void fp8GemmTile(const Tile& t, DType yType, int64_t N, int64_t K, uint8_t (*As)[kRowBytes], uint8_t (*Ws)[kRowBytes]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, q = lane & 3;             // groupID, threadID_in_group (PTX ISA fragment tables)
  const int wm = warp / 2, wn = warp % 2;
  const int64_t kBlocks = K / BLOCK_K;
  float acc[2][4][4] = {};
  for (int64_t kb = 0; kb < kBlocks; ++kb) {
    // Stage the K block of a's and w's tile rows (zeros past the tile's last row / column).
    for (int i = threadIdx.x; i < BLOCK_M * BLOCK_K / 4; i += kThreads) {
      const int r = i / (BLOCK_K / 4), c = (i % (BLOCK_K / 4)) * 4;
      const int64_t m = t.m0 + r, n = t.n0 + r;
      *reinterpret_cast<uint32_t*>(&As[r][c]) = m < t.mEnd ? ld32(t.a + m * K + kb * BLOCK_K + c) : 0u;
      *reinterpret_cast<uint32_t*>(&Ws[r][c]) = n < N ? ld32(t.w + n * K + kb * BLOCK_K + c) : 0u;
    }
    __syncthreads();
    float part[2][4][4] = {};
    DSN_UNROLL
    for (int k0 = 0; k0 < BLOCK_K; k0 += 32) {
      uint32_t af[2][4], bf[4][2];
      DSN_UNROLL
      for (int mi = 0; mi < 2; ++mi) {
        const int r = wm * 32 + mi * 16 + g;
        af[mi][0] = ld32(&As[r][k0 + q * 4]);
        af[mi][1] = ld32(&As[r + 8][k0 + q * 4]);
        af[mi][2] = ld32(&As[r][k0 + 16 + q * 4]);
        af[mi][3] = ld32(&As[r + 8][k0 + 16 + q * 4]);
      }
      DSN_UNROLL
      for (int ni = 0; ni < 4; ++ni) {
        const int c = wn * 32 + ni * 8 + g;
        bf[ni][0] = ld32(&Ws[c][k0 + q * 4]);
        bf[ni][1] = ld32(&Ws[c][k0 + 16 + q * 4]);
      }
      DSN_UNROLL
      for (int mi = 0; mi < 2; ++mi)
        DSN_UNROLL
        for (int ni = 0; ni < 4; ++ni) ptx::mma_m16n8k32_e4m3(part[mi][ni], af[mi], bf[ni], part[mi][ni]);
    }
    // Two-level accumulation: this block's sums times aScale · wScale, added in f32.
    const float sw = t.wScales[((t.n0) / 128) * kBlocks + kb];
    DSN_UNROLL
    for (int mi = 0; mi < 2; ++mi)
      DSN_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int64_t m = t.m0 + wm * 32 + mi * 16 + g + 8 * (i >= 2);
        const float sa = m < t.mEnd ? t.aScales[m * kBlocks + kb] : 0.0f;
        const float s = __fmul_rn(sa, sw);
DSN_UNROLL
        for (int ni = 0; ni < 4; ++ni) acc[mi][ni][i] = __fadd_rn(acc[mi][ni][i], __fmul_rn(part[mi][ni][i], s));
      }
    __syncthreads();  // the tiles are restaged next
  }
  DSN_UNROLL
  for (int mi = 0; mi < 2; ++mi)
DSN_UNROLL
    for (int ni = 0; ni < 4; ++ni)
DSN_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int64_t m = t.m0 + wm * 32 + mi * 16 + g + 8 * (i >= 2);
        const int64_t n = t.n0 + wn * 32 + ni * 8 + q * 2 + (i & 1);
        if (m < t.mEnd && n < N) storeFromF32(t.y, yType, m * N + n, acc[mi][ni][i]);
      }
}

__global__ void __launch_bounds__(kThreads) fp8GemmKernel(Fp8GemmParams p) {
  __shared__ __align__(16) uint8_t As[BLOCK_M][kRowBytes];
  __shared__ __align__(16) uint8_t Ws[BLOCK_N][kRowBytes];
  const int64_t m0 = int64_t(blockIdx.y) * BLOCK_M;
  Tile t{p.a, p.aScales, p.w, p.wScales, p.y, m0, p.M, int64_t(blockIdx.x) * BLOCK_N};
  fp8GemmTile(t, p.yType, p.N, p.K, As, Ws);
}

/** Grouped: blockIdx.y walks the experts' row tiles (each expert's rows start a new tile); blocks past
 *  the last tile exit. Offsets are checked by block (0, 0) and by every block before use. */
__global__ void __launch_bounds__(kThreads) groupedFp8GemmKernel(GroupedFp8GemmParams p, DeviceErrorWord* err, uint32_t op) {
  __shared__ __align__(16) uint8_t As[BLOCK_M][kRowBytes];
  __shared__ __align__(16) uint8_t Ws[BLOCK_N][kRowBytes];
  const int32_t* off = p.offsets;
  // Bad offsets: nothing is computed (every block sees them), one error is raised.
  bool ok = off[0] == 0 && off[p.E] == p.R;
  for (int64_t e = 0; ok && e < p.E; ++e) ok = off[e] <= off[e + 1];
  if (!ok) {
    if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) {
      int64_t bad = off[0] != 0 ? off[0] : off[p.E];
      for (int64_t e = 0; e < p.E; ++e)
        if (off[e] > off[e + 1]) { bad = off[e + 1]; break; }
      raiseDeviceError(err, op, DeviceErrorWhat::offsetOutOfRange, bad, p.R + 1);
    }
    return;
  }
  int64_t tile = blockIdx.y, e = 0;
  for (; e < p.E; ++e) {
    const int64_t tiles = (int64_t(off[e + 1]) - off[e] + BLOCK_M - 1) / BLOCK_M;
    if (tile < tiles) break;
    tile -= tiles;
  }
  if (e == p.E) return;
  const int64_t kBlocks = p.K / BLOCK_K, nBlocks = (p.N + 127) / 128;
  Tile t{p.a, p.aScales, p.w + e * p.N * p.K, p.wScales + e * nBlocks * kBlocks, p.y, off[e] + tile * BLOCK_M, off[e + 1], int64_t(blockIdx.x) * BLOCK_N};
  fp8GemmTile(t, p.yType, p.N, p.K, As, Ws);
}

/** Masked: blockIdx.z is the expert, blockIdx.y its row tile; tiles at or past counts[e] exit, so the
 *  grid is the same whatever the routing. A count outside [0, M] raises the error word (once, from
 *  the expert's first tile) and that expert computes nothing. */
__global__ void __launch_bounds__(kThreads) maskedGroupedFp8GemmKernel(MaskedGroupedFp8GemmParams p, DeviceErrorWord* err, uint32_t op) {
  __shared__ __align__(16) uint8_t As[BLOCK_M][kRowBytes];
  __shared__ __align__(16) uint8_t Ws[BLOCK_N][kRowBytes];
  const int64_t e = blockIdx.z, count = p.counts[e];
  if (count < 0 || count > p.M) {
    if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) raiseDeviceError(err, op, DeviceErrorWhat::rowCountOutOfRange, count, p.M + 1);
    return;
  }
  const int64_t m0 = int64_t(blockIdx.y) * BLOCK_M;
  if (m0 >= count) return;
  // a, aScales and y are [E * M, ...] row-major: expert e's rows are e * M + [0, count).
  const int64_t kBlocks = p.K / BLOCK_K, nBlocks = (p.N + 127) / 128;
  Tile t{p.a, p.aScales, p.w + e * p.N * p.K, p.wScales + e * nBlocks * kBlocks, p.y, e * p.M + m0, e * p.M + count, int64_t(blockIdx.x) * BLOCK_N};
  fp8GemmTile(t, p.yType, p.N, p.K, As, Ws);
}

}  // namespace

std::string fp8GemmLaunch(const Fp8GemmParams& p, const CudaLaunch& l) {
  if (p.M == 0 || p.N == 0) return "";
  if (p.K == 0) return "fp8Gemm: K = 0 is not supported on CUDA yet";
  const int64_t mTiles = (p.M + BLOCK_M - 1) / BLOCK_M;
  if (mTiles > 65535) return "fp8Gemm: more than 65535 row tiles (M > 4194240) in one launch";
  dim3 grid(unsigned((p.N + BLOCK_N - 1) / BLOCK_N), unsigned(mTiles));
  fp8GemmKernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

std::string groupedFp8GemmLaunch(const GroupedFp8GemmParams& p, const CudaLaunch& l) {
  if (p.N == 0) return "";
  if (p.K == 0) return "groupedFp8Gemm: K = 0 is not supported on CUDA yet";
  // At most ceil(R / 64) + E tiles, whatever the routing: each expert's rows start a new tile.
  const int64_t mTiles = (p.R + BLOCK_M - 1) / BLOCK_M + p.E;
  if (mTiles > 65535) return "groupedFp8Gemm: more than 65535 row tiles in one launch";
  dim3 grid(unsigned((p.N + BLOCK_N - 1) / BLOCK_N), unsigned(mTiles));
  groupedFp8GemmKernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

std::string maskedGroupedFp8GemmLaunch(const MaskedGroupedFp8GemmParams& p, const CudaLaunch& l) {
  if (p.M == 0 || p.N == 0) return "";
  if (p.K == 0) return "maskedGroupedFp8Gemm: K = 0 is not supported on CUDA yet";
  const int64_t mTiles = (p.M + BLOCK_M - 1) / BLOCK_M;
  if (mTiles > 65535 || p.E > 65535) return "maskedGroupedFp8Gemm: more than 65535 row tiles or experts in one launch";
  dim3 grid(unsigned((p.N + BLOCK_N - 1) / BLOCK_N), unsigned(mTiles), unsigned(p.E));
  maskedGroupedFp8GemmKernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

}  // namespace dsn::cuda
