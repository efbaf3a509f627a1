#include <cuda.h>
#include <cuda_runtime.h>

#include "convert.cuh"
#include "device_error.cuh"
#include "launch_check.cuh"
#include "math.cuh"  // DSN_UNROLL: fragment loops fully unrolled, so the fragments stay in registers
#include "ptx/cp_async.cuh"
#include "ptx/mbarrier.cuh"
#include "ptx/mma.cuh"
#include "ptx/tma.cuh"
#include "ptx/wgmma.cuh"
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


// ------------------------------------------------------------------------------------------------
// The Hopper path (M > 64): DeepGEMM's scheme. A persistent grid of 128 x BLOCK_N output tiles
// (BLOCK_N 64 or 128 by N for fp8Gemm: fp8GemmHopperBlockN; 128 for the grouped layouts); per block
// one producer warpgroup (one thread issues the TMA loads of A's 128 x 128 and W's BLOCK_N x 128 K
// blocks, 128B-swizzled, into a kStages-deep shared-memory ring; `full` mbarriers count the bytes
// in, `empty` mbarriers the consumers out) and two consumer warpgroups (64 rows each) that run
// wgmma m64nBLOCK_Nk32 e4m3 -> f32 over each K block, then add the block's sums times
// aScale · wScale into f32 registers (two-level accumulation), and store the tile.
// ------------------------------------------------------------------------------------------------
namespace hopper {
constexpr int BLOCK_M = 128, BLOCK_K = 128;  // BLOCK_N: 64 or 128, a template argument (fp8GemmHopperBlockN)
constexpr int kStages = 4;
constexpr int kConsumerWarpgroups = 2, kThreads = 128 * (1 + kConsumerWarpgroups);
constexpr int WGMMA_M = 64, WGMMA_K = 32;
constexpr int kRasterGroup = 8;                                 // n-blocks per band of the tile order (L2 reuse of W)
constexpr uint32_t kTileBytesA = BLOCK_M * BLOCK_K;  // e4m3: one byte per element
/** W's tile and a ring stage (A's tile, then W's) of BLOCK_N columns. */
template <int BLOCK_N>
constexpr uint32_t tileBytesW() { return uint32_t(BLOCK_N) * BLOCK_K; }
template <int BLOCK_N>
constexpr uint32_t stageBytes() { return kTileBytesA + tileBytesW<BLOCK_N>(); }
constexpr uint32_t kSwizzleAtomBytes = 8 * 128;                 // 8 rows of 128 bytes (128B swizzle)
template <int BLOCK_N>
constexpr size_t smemBytes() { return size_t(kStages) * stageBytes<BLOCK_N>() + 2 * kStages * sizeof(uint64_t) + 1024; }  // + alignment slack
static_assert(BLOCK_K == 128, "one K block is one 128-wide scale block (two-level accumulation)");
static_assert(BLOCK_K * 1 == 128, "a K block row of e4m3 is exactly one 128-byte swizzle atom row (TMA box inner extent <= 128 B)");
static_assert(BLOCK_M == kConsumerWarpgroups * WGMMA_M, "each consumer warpgroup owns 64 rows of the tile");
static_assert(BLOCK_K % WGMMA_K == 0, "a K block is a whole number of k32 steps");
static_assert(kTileBytesA % kSwizzleAtomBytes == 0, "stage tiles keep 1024-byte alignment for the 128B swizzle");
static_assert(BLOCK_M <= 256, "a TMA box has at most 256 rows");
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;  // setmaxnreg: the producer needs few, the accumulators many
static_assert(128 * kProducerRegisters + 128 * kConsumerWarpgroups * kConsumerRegisters <= 65536, "the warpgroups' registers fit the SM's 64 K");

/** What the kernel multiplies: rows of a (and aScales, y) in per-expert ranges, each expert with its
 *  own [N, K] slice of w (rows e·N … of the 2D [E·N, K] view the W tensor map covers) and scales.
 *  Dense: one expert, rows [0, M). Contiguous: rows [offsets[e], offsets[e+1]). Masked: rows
 *  [e·M, e·M + counts[e]). Tiles never straddle experts. */
struct WgmmaGemmArgs {
  const float* aScales;    // [rows, K/128]
  const float* wScales;    // [E, ceil(N/128), K/128]
  void* y;                 // [rows, N], yType
  DType yType;
  int64_t N, K, E;
  const int32_t* offsets;  // contiguous: [E + 1]; else nullptr
  const int32_t* counts;   // masked: [E]; else nullptr
  int64_t rows;            // dense: M; contiguous: R; masked: E·M
  int64_t slots;           // masked: M (row slots per expert)
};

/** Expert e's rows [begin, end) (an empty range for a masked count outside [0, M]). */
__device__ __forceinline__ void expertRows(const WgmmaGemmArgs& p, int64_t e, int64_t& begin, int64_t& end) {
  if (p.offsets) {
    begin = p.offsets[e];
    end = p.offsets[e + 1];
  } else if (p.counts) {
    const int64_t c = p.counts[e];
    begin = e * p.slots;
    end = begin + (c >= 0 && c <= p.slots ? c : 0);
  } else {
    begin = 0;
    end = p.rows;
  }
}

/** One output tile: rows [row0, rowEnd) of a / y (capped at 128), columns [nb·128, +128), expert e. */
struct TileRef {
  int64_t row0, rowEnd, nb, e;
};

/** The tile order: bands of kRasterGroup n-blocks, each walked row tile by row tile, so the blocks
 *  running at once share W's columns (and A's rows) in L2. Row tiles count expert by expert. */
__device__ __forceinline__ TileRef tileAt(const WgmmaGemmArgs& p, int64_t tile, int64_t mTiles, int64_t nBlocks) {
  const int64_t perBand = int64_t(kRasterGroup) * mTiles;
  const int64_t band = tile / perBand, first = band * kRasterGroup;
  const int64_t width = nBlocks - first < kRasterGroup ? nBlocks - first : kRasterGroup;
  const int64_t r = tile % perBand;
  TileRef t{0, 0, first + r % width, 0};
  int64_t mt = r / width;
  for (int64_t e = 0; e < p.E; ++e) {
    int64_t begin, end;
    expertRows(p, e, begin, end);
    const int64_t n = (end - begin + BLOCK_M - 1) / BLOCK_M;
    if (mt < n) {
      t.e = e;
      t.row0 = begin + mt * BLOCK_M;
      t.rowEnd = end < t.row0 + BLOCK_M ? end : t.row0 + BLOCK_M;
      break;
    }
    mt -= n;
  }
  return t;
}

template <int BLOCK_N>
__global__ void __launch_bounds__(kThreads, 1) fp8GemmWgmmaKernel(const __grid_constant__ CUtensorMap mapA, const __grid_constant__ CUtensorMap mapW,
                                                                  WgmmaGemmArgs p, DeviceErrorWord* err, uint32_t op) {
  constexpr int WGMMA_N = BLOCK_N;
  constexpr uint32_t kTileBytesW = tileBytesW<BLOCK_N>(), kStageBytes = stageBytes<BLOCK_N>();
  static_assert(BLOCK_N == 64 || BLOCK_N == 128, "wgmma n64 / n128 (the wrapped and emulated shapes)");
  static_assert(128 % BLOCK_N == 0, "a tile's columns share one 128-row block of wScales");
  static_assert(kTileBytesW % kSwizzleAtomBytes == 0, "stage tiles keep 1024-byte alignment for the 128B swizzle");
  static_assert(smemBytes<BLOCK_N>() <= 227 * 1024, "the ring fits sm_90's 227 KiB of dynamic shared memory per block");
  // Check the routing (every thread reads the same words, so all agree) and count the row tiles.
  if (p.offsets) {
    bool ok = p.offsets[0] == 0 && p.offsets[p.E] == p.rows;
    for (int64_t e = 0; ok && e < p.E; ++e) ok = p.offsets[e] <= p.offsets[e + 1];
    if (!ok) {  // bad offsets: nothing is computed, one error is raised
      if (blockIdx.x == 0 && threadIdx.x == 0) {
        int64_t bad = p.offsets[0] != 0 ? p.offsets[0] : p.offsets[p.E];
        for (int64_t e = 0; e < p.E; ++e)
          if (p.offsets[e] > p.offsets[e + 1]) { bad = p.offsets[e + 1]; break; }
        raiseDeviceError(err, op, DeviceErrorWhat::offsetOutOfRange, bad, p.rows + 1);
      }
      return;
    }
  }
  if (p.counts && blockIdx.x == 0 && threadIdx.x == 0)
    for (int64_t e = 0; e < p.E; ++e)  // a bad count: that expert computes nothing (expertRows), the error is raised
      if (p.counts[e] < 0 || p.counts[e] > p.slots) raiseDeviceError(err, op, DeviceErrorWhat::rowCountOutOfRange, p.counts[e], p.slots + 1);
  int64_t mTiles = 0;
  for (int64_t e = 0; e < p.E; ++e) {
    int64_t begin, end;
    expertRows(p, e, begin, end);
    mTiles += (end - begin + BLOCK_M - 1) / BLOCK_M;
  }
  const int64_t nBlocks = (p.N + BLOCK_N - 1) / BLOCK_N, tiles = mTiles * nBlocks;
  const int64_t kBlocks = p.K / BLOCK_K, scaleBlocksN = (p.N + 127) / 128;  // wScales per expert: [ceil(N/128), K/128]

  extern __shared__ __align__(1024) uint8_t smemRaw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smemRaw) + 1023) & ~uintptr_t(1023));
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + size_t(kStages) * kStageBytes);
  uint64_t* empty = full + kStages;
  const int warpgroup = threadIdx.x / 128, lane = threadIdx.x % 32;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      ptx::mbarrier_init(&full[s], 1);                                // the producer's arrive (+ the TMA bytes)
      ptx::mbarrier_init(&empty[s], kConsumerWarpgroups * 4);         // one arrive per consumer warp
    }
    ptx::fence_mbarrier_init();
  }
  __syncthreads();

  if (warpgroup == 0) {
    // Producer: one thread walks the same tiles and K blocks as the consumers, up to kStages ahead.
    ptx::setmaxnreg<kProducerRegisters, false>();
    if (threadIdx.x == 0) {
      ptx::tma_prefetch_descriptor(&mapA);
      ptx::tma_prefetch_descriptor(&mapW);
      int stage = 0;
      uint32_t phase = 0;
      for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const TileRef t = tileAt(p, tile, mTiles, nBlocks);
        for (int64_t kb = 0; kb < kBlocks; ++kb) {
          ptx::mbarrier_wait_parity(&empty[stage], phase ^ 1u);       // the consumers released this slot
          uint8_t* sA = smem + size_t(stage) * kStageBytes;
          ptx::mbarrier_arrive_expect_tx(&full[stage], kStageBytes);
          // Rows past the tile's end (the next expert's, or past the tensor: zeros) are loaded but never stored.
          ptx::tma_load_2d(sA, &mapA, &full[stage], int(kb * BLOCK_K), int(t.row0));
          ptx::tma_load_2d(sA + kTileBytesA, &mapW, &full[stage], int(kb * BLOCK_K), int(t.e * p.N + t.nb * BLOCK_N));
          if (++stage == kStages) stage = 0, phase ^= 1u;
        }
      }
    }
    return;
  }

  // Consumers.
  ptx::setmaxnreg<kConsumerRegisters, true>();
  const bool pairStores = p.N % 2 == 0 && (p.yType == DType::bf16 || p.yType == DType::f32) && reinterpret_cast<uintptr_t>(p.y) % 8 == 0;
  const int consumer = warpgroup - 1, warpInGroup = (threadIdx.x / 32) % 4;
  const int g = lane >> 2, q = lane & 3;                                // groupID, threadID_in_group (wgmma D fragment)
  int stage = 0;
  uint32_t phase = 0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const TileRef t = tileAt(p, tile, mTiles, nBlocks);
    const float* wScales = p.wScales + (t.e * scaleBlocksN + t.nb * BLOCK_N / 128) * kBlocks;
    // This thread's two rows of the tile: D rows 16 w + g and + 8 of its warpgroup's 64.
    const int64_t row0 = t.row0 + consumer * WGMMA_M + warpInGroup * 16 + g, row1 = row0 + 8;
    float acc[WGMMA_N / 2];
    DSN_UNROLL
    for (int i = 0; i < WGMMA_N / 2; ++i) acc[i] = 0.0f;
    for (int64_t kb = 0; kb < kBlocks; ++kb) {
      const float sw = wScales[kb];
      const float sa0 = row0 < t.rowEnd ? p.aScales[row0 * kBlocks + kb] : 0.0f;
      const float sa1 = row1 < t.rowEnd ? p.aScales[row1 * kBlocks + kb] : 0.0f;
      ptx::mbarrier_wait_parity(&full[stage], phase);
      const uint8_t* sA = smem + size_t(stage) * kStageBytes + consumer * (WGMMA_M * BLOCK_K);
      const uint8_t* sW = smem + size_t(stage) * kStageBytes + kTileBytesA;
      // K-major, 128B swizzle: 8-row atoms 1024 bytes apart (SBO); LBO unused; a k32 step moves
      // the start address 32 bytes along the atom row.
      const uint64_t descA = ptx::wgmma_desc(sA, 16, kSwizzleAtomBytes, ptx::WgmmaSwizzle::bytes128);
      const uint64_t descW = ptx::wgmma_desc(sW, 16, kSwizzleAtomBytes, ptx::WgmmaSwizzle::bytes128);
      float part[WGMMA_N / 2];  // the block's sums (the first k32 step overwrites them: scale-d 0)
      DSN_UNROLL
      for (int i = 0; i < WGMMA_N / 2; ++i) {
        part[i] = 0.0f;
        ptx::wgmma_fence_operand(part[i]);
      }
      ptx::wgmma_fence();
      DSN_UNROLL
      for (int k = 0; k < BLOCK_K / WGMMA_K; ++k)
        ptx::wgmma_m64k32_e4m3<WGMMA_N>(part, descA + uint64_t(k * WGMMA_K / 16), descW + uint64_t(k * WGMMA_K / 16), k > 0);
      ptx::wgmma_commit_group();
      ptx::wgmma_wait_group<0>();
      DSN_UNROLL
      for (int i = 0; i < WGMMA_N / 2; ++i) ptx::wgmma_fence_operand(part[i]);
      if (lane == 0) ptx::mbarrier_arrive(&empty[stage]);              // this warp is done with the slot
      if (++stage == kStages) stage = 0, phase ^= 1u;
      // Two-level accumulation: the block's tensor-core sums times aScale · wScale, added in f32.
      const float s0 = __fmul_rn(sa0, sw), s1 = __fmul_rn(sa1, sw);
      DSN_UNROLL
      for (int i = 0; i < WGMMA_N / 2; ++i) acc[i] = __fadd_rn(acc[i], __fmul_rn(part[i], (i >> 1) & 1 ? s1 : s0));
    }
    // Epilogue: d[i] is D[16 w + g + 8 ((i >> 1) & 1)][8 (i >> 2) + 2 q + (i & 1)], so d[i], d[i + 1]
    // (i even) are two adjacent columns of one row: one 4-byte bf16 pair or 8-byte f32 pair store
    // when N is even (the pair's offset is then even: aligned), else element by element.
    DSN_UNROLL
    for (int i = 0; i < WGMMA_N / 2; i += 2) {
      const int64_t m = (i >> 1) & 1 ? row1 : row0;
      const int64_t n = t.nb * BLOCK_N + 8 * (i >> 2) + 2 * q;
      if (m >= t.rowEnd) continue;
      const int64_t at = m * p.N + n;
      if (pairStores && n + 1 < p.N) {
        if (p.yType == DType::bf16) reinterpret_cast<__nv_bfloat162*>(p.y)[at / 2] = __floats2bfloat162_rn(acc[i], acc[i + 1]);
        else reinterpret_cast<float2*>(p.y)[at / 2] = make_float2(acc[i], acc[i + 1]);
      } else {
        if (n < p.N) storeFromF32(p.y, p.yType, at, acc[i]);
        if (n + 1 < p.N) storeFromF32(p.y, p.yType, at + 1, acc[i + 1]);
      }
    }
  }
}

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                   const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/** The driver's cuTensorMapEncodeTiled (through the runtime's entry-point query: the addon links no
 *  libcuda), or nullptr when the driver lacks it. */
EncodeTiledFn encodeTiled() {
#if defined(__CUDA_EMU__)
  return &cuTensorMapEncodeTiled;
#else
  static const EncodeTiledFn fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess || q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return EncodeTiledFn(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(f);
  }();
  return fn;
#endif
}

/** A 2D e4m3 tensor map over rows x K bytes (row stride K), boxes of boxRows x 128 bytes, 128B swizzle. */
bool encodeOperandMap(CUtensorMap* map, const uint8_t* base, int64_t rows, int64_t K, uint32_t boxRows) {
  const EncodeTiledFn encode = encodeTiled();
  if (!encode) return false;
  const cuuint64_t dims[2] = {cuuint64_t(K), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(K)};
  const cuuint32_t box[2] = {cuuint32_t(BLOCK_K), boxRows};
  const cuuint32_t elementStrides[2] = {1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<uint8_t*>(base), dims, strides, box, elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/** Launches the Hopper kernel with BLOCK_N-column tiles over a ([rows, K]) and w ([wRows, K]); ""
 *  when launched, "fallback" when the operands do not suit TMA (not 16-byte aligned, or a coordinate
 *  past int32), else the error. */
template <int BLOCK_N>
std::string launchBlockN(const uint8_t* a, const uint8_t* w, int64_t wRows, const WgmmaGemmArgs& p, const CudaLaunch& l) {
  constexpr size_t kSmem = smemBytes<BLOCK_N>();
  const int64_t limit = int64_t(1) << 31;
  if (reinterpret_cast<uintptr_t>(a) % 16 || reinterpret_cast<uintptr_t>(w) % 16 || p.rows >= limit || wRows >= limit || p.K >= limit) return "fallback";
  if (p.rows == 0) return "";
  CUtensorMap mapA, mapW;
  if (!encodeOperandMap(&mapA, a, p.rows, p.K, BLOCK_M) || !encodeOperandMap(&mapW, w, wRows, p.K, BLOCK_N))
    return "cuTensorMapEncodeTiled refused the operands' tensor maps (or the driver lacks it)";
  if (cudaFuncSetAttribute(fp8GemmWgmmaKernel<BLOCK_N>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmem)) != cudaSuccess) return launchError();
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || sms < 1) return launchError();
  // Persistent: one block per SM at most; the tile count (routing-dependent when grouped) is
  // bounded by the row tiles there can be, and found on the device.
  const int64_t nBlocks = (p.N + BLOCK_N - 1) / BLOCK_N;
  const int64_t maxRowTiles = p.offsets ? (p.rows + BLOCK_M - 1) / BLOCK_M + p.E : p.counts ? p.E * ((p.slots + BLOCK_M - 1) / BLOCK_M) : (p.rows + BLOCK_M - 1) / BLOCK_M;
  const int64_t maxTiles = maxRowTiles * nBlocks;
  const unsigned blocks = unsigned(maxTiles < sms ? maxTiles : sms);
  fp8GemmWgmmaKernel<BLOCK_N><<<blocks, kThreads, kSmem, static_cast<cudaStream_t>(l.stream)>>>(mapA, mapW, p, l.error, l.op);
  return launchError();
}

/** The Hopper kernel with 64- or 128-column tiles (fp8GemmHopperBlockN). */
std::string launch(const uint8_t* a, const uint8_t* w, int64_t wRows, const WgmmaGemmArgs& p, int blockN, const CudaLaunch& l) {
  if (blockN == 64) return launchBlockN<64>(a, w, wRows, p, l);
  if (blockN == 128) return launchBlockN<128>(a, w, wRows, p, l);
  return "the Hopper kernel has BLOCK_N 64 or 128, not " + std::to_string(blockN);
}
}  // namespace hopper

// ------------------------------------------------------------------------------------------------
// The decode path (M <= 64): "swap AB". A decode GEMM is bound by reading W once, so the block's
// tile is 64 rows of W (N) by all M activation rows, W's rows on the 16-row side of mma.sync
// m16n8k32 (four warps, 16 W rows each) and the activation rows on its n = 8 side (kColTiles
// n8 tiles: 8·kColTiles ≥ M, so few lanes are wasted when M is 1..8). Each 128-wide K block of W
// and A is copied with cp.async (16 bytes a thread, zero-filled past N and M) into a kStages-deep
// shared-memory ring, so several blocks' worth of W are in flight per SM. When the ⌈N/64⌉ tiles
// cannot fill the SMs, K is split across blocks (blockIdx.y: fp8GemmDecodeSplits); each split
// writes its f32 partial tile to the workspace and splitSumKernel adds the partials in split order,
// so the result's bits do not depend on scheduling (no float atomics). The masked grouped GEMM
// with ≤ 64 row slots runs the same kernel, blockIdx.z its expert.
// D = W_tile · A_tileᵀ is [64 N, 8·kColTiles M]; the epilogue stores it transposed (y is [M, N]).
// ------------------------------------------------------------------------------------------------
namespace decode {
constexpr int BLOCK_N = 64, BLOCK_K = 128, kStages = 4;
constexpr int kWarps = 4, kThreads = kWarps * 32;
constexpr int kRowBytes = BLOCK_K + 16;              // padded smem rows: fragment reads hit 32 distinct banks
constexpr int kChunksPerRow = BLOCK_K / 16;          // cp.async copies 16 bytes
static_assert(BLOCK_N == kWarps * 16, "each warp owns 16 W rows (the m16 side of the mma)");
static_assert(BLOCK_K == 128, "one K block is one 128-wide scale block (two-level accumulation)");
static_assert(BLOCK_K % 32 == 0, "a K block is a whole number of k32 steps");
static_assert(128 % BLOCK_N == 0, "a tile's W rows share one 128-row block of wScales");
static_assert(kRowBytes % 16 == 0, "cp.async destinations are 16-byte aligned");
static_assert((BLOCK_N * kChunksPerRow) % kThreads == 0, "the W tile's 16-byte chunks spread evenly over the threads");
static_assert(kStages >= 2, "a ring needs at least two stages");

template <int kColTiles>
constexpr size_t smemBytes() { return size_t(kStages) * (BLOCK_N + 8 * kColTiles) * kRowBytes; }
static_assert(smemBytes<8>() <= 227 * 1024, "the widest ring fits sm_90's dynamic shared memory");

/** What one launch multiplies: E experts (dense: 1), expert e's rows [e·slots, e·slots + rows_e) of a
 *  (aScales, y) against w's [N, K] slice e; rows_e = M (dense) or counts[e] (masked). */
struct DecodeArgs {
  const uint8_t* a;        // [E·slots, K] e4m3
  const float* aScales;    // [E·slots, K/128]
  const uint8_t* w;        // [E, N, K] e4m3
  const float* wScales;    // [E, ceil(N/128), K/128]
  void* y;                 // [E·slots, N], yType
  DType yType;
  const int32_t* counts;   // masked: [E]; dense: nullptr
  int64_t slots, N, K;     // slots: dense M, masked the row slots per expert (≤ 8·kColTiles)
  int64_t kBlocksPerSplit; // K blocks of one split (the last may have fewer)
  float* partial;          // splits > 1: [splits, slots, N] f32; else nullptr (y is written)
};

template <int kColTiles>
__global__ void __launch_bounds__(kThreads) decodeGemmKernel(DecodeArgs p, DeviceErrorWord* err, uint32_t op) {
  constexpr int kColRows = 8 * kColTiles;
  constexpr uint32_t kStageBytes = uint32_t(BLOCK_N + kColRows) * kRowBytes;
  const int64_t e = blockIdx.z, n0 = int64_t(blockIdx.x) * BLOCK_N, split = blockIdx.y;
  int64_t rows = p.slots;
  if (p.counts) {
    rows = p.counts[e];
    if (rows < 0 || rows > p.slots) {  // that expert computes nothing; one error is raised
      if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) raiseDeviceError(err, op, DeviceErrorWhat::rowCountOutOfRange, rows, p.slots + 1);
      return;
    }
    if (rows == 0) return;
  }
  const int64_t kBlocks = p.K / BLOCK_K, kb0 = split * p.kBlocksPerSplit;
  const int64_t kbEnd = kb0 + p.kBlocksPerSplit < kBlocks ? kb0 + p.kBlocksPerSplit : kBlocks;
  const int64_t steps = kbEnd - kb0;
  const uint8_t* a = p.a + e * p.slots * p.K;
  const float* aScales = p.aScales + e * p.slots * kBlocks;
  const uint8_t* w = p.w + e * p.N * p.K;
  const float* wScales = p.wScales + (e * ((p.N + 127) / 128) + n0 / 128) * kBlocks;

  extern __shared__ __align__(1024) uint8_t smemRaw[];
  // Stage s: W rows [BLOCK_N][kRowBytes], then activation rows [kColRows][kRowBytes].
  auto load = [&](int stage, int64_t kb) {
    uint8_t* sStage = smemRaw + size_t(stage) * kStageBytes;
    for (int i = threadIdx.x; i < (BLOCK_N + kColRows) * kChunksPerRow; i += kThreads) {
      const int r = i / kChunksPerRow, c = (i % kChunksPerRow) * 16;
      const bool isW = r < BLOCK_N;
      const int64_t row = isW ? n0 + r : r - BLOCK_N;
      const bool inside = row < (isW ? p.N : rows);
      // Past the last row: 0 source bytes (the 16 bytes are zero-filled); the address stays valid.
      const uint8_t* src = (isW ? w : a) + (inside ? row : 0) * p.K + kb * BLOCK_K + c;
      ptx::cp_async_cg16(sStage + r * kRowBytes + c, src, inside ? 16 : 0);
    }
  };
  DSN_UNROLL
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load(s, kb0 + s);
    ptx::cp_async_commit_group();  // empty groups keep the count: wait_group below stays exact
  }

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, q = lane & 3;                  // groupID, threadID_in_group (PTX ISA fragment tables)
  float acc[kColTiles][4];
  DSN_UNROLL
  for (int t = 0; t < kColTiles; ++t)
    DSN_UNROLL
    for (int i = 0; i < 4; ++i) acc[t][i] = 0.0f;
  for (int64_t step = 0; step < steps; ++step) {
    ptx::cp_async_wait_group<kStages - 2>();              // this step's stage has landed (for this thread)
    __syncthreads();                                      // ... for every thread; and the stage refilled next is free
    if (step + kStages - 1 < steps) load(int((step + kStages - 1) % kStages), kb0 + step + kStages - 1);
    ptx::cp_async_commit_group();
    const int64_t kb = kb0 + step;
    const uint8_t* sW = smemRaw + size_t(step % kStages) * kStageBytes;
    const uint8_t* sA = sW + BLOCK_N * kRowBytes;
    float part[kColTiles][4];
    DSN_UNROLL
    for (int t = 0; t < kColTiles; ++t)
      DSN_UNROLL
      for (int i = 0; i < 4; ++i) part[t][i] = 0.0f;
    DSN_UNROLL
    for (int k0 = 0; k0 < BLOCK_K; k0 += 32) {
      // A fragment (m16 x k32, row-major): W rows 16·warp + g and + 8; B fragment (k32 x n8): activation row 8t + g.
      const uint8_t* wr = sW + (warp * 16 + g) * kRowBytes + k0 + q * 4;
      const uint32_t af[4] = {ld32(wr), ld32(wr + 8 * kRowBytes), ld32(wr + 16), ld32(wr + 8 * kRowBytes + 16)};
      DSN_UNROLL
      for (int t = 0; t < kColTiles; ++t) {
        const uint8_t* ar = sA + (t * 8 + g) * kRowBytes + k0 + q * 4;
        const uint32_t bf[2] = {ld32(ar), ld32(ar + 16)};
        ptx::mma_m16n8k32_e4m3(part[t], af, bf, part[t]);
      }
    }
    // Two-level accumulation: the block's sums times aScale · wScale, added in f32. part[t][i] is
    // D[16·warp + g + 8 (i ≥ 2)][8t + 2q + (i & 1)]: activation row 8t + 2q + (i & 1).
    const float sw = wScales[kb];
    DSN_UNROLL
    for (int t = 0; t < kColTiles; ++t)
      DSN_UNROLL
      for (int j = 0; j < 2; ++j) {
        const int64_t m = t * 8 + 2 * q + j;
        const float s = __fmul_rn(m < rows ? aScales[m * kBlocks + kb] : 0.0f, sw);
        acc[t][j] = __fadd_rn(acc[t][j], __fmul_rn(part[t][j], s));
        acc[t][j + 2] = __fadd_rn(acc[t][j + 2], __fmul_rn(part[t][j + 2], s));
      }
  }
  ptx::cp_async_wait_all();  // no copy outlives the block

  // Epilogue, transposed: D[n][m] goes to y[m, n] (or the split's partial tile).
  DSN_UNROLL
  for (int t = 0; t < kColTiles; ++t)
    DSN_UNROLL
    for (int i = 0; i < 4; ++i) {
      const int64_t m = t * 8 + 2 * q + (i & 1), n = n0 + warp * 16 + g + 8 * (i >> 1);
      if (m >= rows || n >= p.N) continue;
      if (p.partial) p.partial[(split * p.slots + m) * p.N + n] = acc[t][i];
      else storeFromF32(p.y, p.yType, (e * p.slots + m) * p.N + n, acc[t][i]);
    }
}

/** y[i] = Σ_s partial[s][i] for s = 0, 1, … in order (i < count = M·N): the fixed order makes the
 *  split-K result deterministic. */
__global__ void splitSumKernel(const float* partial, int64_t splits, int64_t count, void* y, DType yType) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    float v = partial[i];
    for (int64_t s = 1; s < splits; ++s) v = __fadd_rn(v, partial[s * count + i]);
    storeFromF32(y, yType, i, v);
  }
}

template <int kColTiles>
std::string launchTiles(const DecodeArgs& p, int64_t splits, int64_t experts, const CudaLaunch& l) {
  constexpr size_t kSmem = smemBytes<kColTiles>();
  if (cudaFuncSetAttribute(decodeGemmKernel<kColTiles>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmem)) != cudaSuccess) return launchError();
  dim3 grid(unsigned((p.N + BLOCK_N - 1) / BLOCK_N), unsigned(splits), unsigned(experts));
  decodeGemmKernel<kColTiles><<<grid, kThreads, kSmem, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

/** Launches the decode kernel (and the split sum); "fallback" when the operands are not 16-byte
 *  aligned (cp.async), else "" or the error. */
std::string launch(DecodeArgs p, int64_t splits, int64_t experts, float* workspace, const CudaLaunch& l) {
  if (reinterpret_cast<uintptr_t>(p.a) % 16 || reinterpret_cast<uintptr_t>(p.w) % 16) return "fallback";
  if (p.slots < 1 || p.slots > 64) return "the decode kernel takes 1 to 64 rows";
  const int64_t kBlocks = p.K / BLOCK_K;
  if (splits < 1 || splits > kBlocks || experts < 1 || experts > 65535 || splits > 65535 || (p.N + BLOCK_N - 1) / BLOCK_N > 0x7fffffff)
    return "the decode kernel's grid is out of range";
  if (splits > 1 && (!workspace || p.counts)) return "a K split needs the workspace (and a dense product)";
  p.kBlocksPerSplit = (kBlocks + splits - 1) / splits;
  if ((kBlocks + p.kBlocksPerSplit - 1) / p.kBlocksPerSplit != splits) return "the K split leaves a split empty";
  p.partial = splits > 1 ? workspace : nullptr;
  std::string r = p.slots <= 8 ? launchTiles<1>(p, splits, experts, l) : p.slots <= 16 ? launchTiles<2>(p, splits, experts, l)
                : p.slots <= 32 ? launchTiles<4>(p, splits, experts, l) : launchTiles<8>(p, splits, experts, l);
  if (!r.empty() || splits == 1) return r;
  const int64_t count = p.slots * p.N;
  const int64_t blocks = (count + 255) / 256 < 65535 * 16 ? (count + 255) / 256 : 65535 * 16;
  splitSumKernel<<<unsigned(blocks), 256, 0, static_cast<cudaStream_t>(l.stream)>>>(workspace, splits, count, p.y, p.yType);
  return launchError();
}
}  // namespace decode

}  // namespace

std::string fp8GemmLaunch(const Fp8GemmParams& p, const CudaLaunch& l) {
  if (p.M == 0 || p.N == 0) return "";
  if (p.K == 0) return "fp8Gemm: K = 0 is not supported on CUDA yet";
  if (std::string(fp8GemmCudaPath(p.M, p.N, p.K)) == "wgmma") {
    const hopper::WgmmaGemmArgs args{p.aScales, p.wScales, p.y, p.yType, p.N, p.K, 1, nullptr, nullptr, p.M, 0};
    std::string r = hopper::launch(p.a, p.w, p.N, args, int(fp8GemmHopperBlockN(p.M, p.N)), l);
    if (r != "fallback") return r.empty() ? r : "fp8Gemm: " + r;
  } else if (std::string(fp8GemmCudaPath(p.M, p.N, p.K)) == "swapAB") {
    const decode::DecodeArgs args{p.a, p.aScales, p.w, p.wScales, p.y, p.yType, nullptr, p.M, p.N, p.K, 0, nullptr};
    std::string r = decode::launch(args, p.splits, 1, p.workspace, l);
    if (r != "fallback") return r.empty() ? r : "fp8Gemm: " + r;
  }
  const int64_t mTiles = (p.M + BLOCK_M - 1) / BLOCK_M;
  if (mTiles > 65535) return "fp8Gemm: more than 65535 row tiles (M > 4194240) in one launch";
  dim3 grid(unsigned((p.N + BLOCK_N - 1) / BLOCK_N), unsigned(mTiles));
  fp8GemmKernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

std::string groupedFp8GemmLaunch(const GroupedFp8GemmParams& p, const CudaLaunch& l) {
  if (p.N == 0) return "";
  if (p.K == 0) return "groupedFp8Gemm: K = 0 is not supported on CUDA yet";
  if (std::string(groupedFp8GemmCudaPath(p.R, p.E, p.N, p.K)) == "wgmma") {
    const hopper::WgmmaGemmArgs args{p.aScales, p.wScales, p.y, p.yType, p.N, p.K, p.E, p.offsets, nullptr, p.R, 0};
    std::string r = hopper::launch(p.a, p.w, p.E * p.N, args, 128, l);  // the rows per expert are on the device: 128 columns
    if (r != "fallback") return r.empty() ? r : "groupedFp8Gemm: " + r;
  }
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
  if (std::string(maskedGroupedFp8GemmCudaPath(p.E, p.M, p.N, p.K)) == "wgmma") {
    const hopper::WgmmaGemmArgs args{p.aScales, p.wScales, p.y, p.yType, p.N, p.K, p.E, nullptr, p.counts, p.E * p.M, p.M};
    std::string r = hopper::launch(p.a, p.w, p.E * p.N, args, 128, l);
    if (r != "fallback") return r.empty() ? r : "maskedGroupedFp8Gemm: " + r;
  } else if (std::string(maskedGroupedFp8GemmCudaPath(p.E, p.M, p.N, p.K)) == "swapAB") {
    const decode::DecodeArgs args{p.a, p.aScales, p.w, p.wScales, p.y, p.yType, p.counts, p.M, p.N, p.K, 0, nullptr};
    std::string r = decode::launch(args, 1, p.E, nullptr, l);
    if (r != "fallback") return r.empty() ? r : "maskedGroupedFp8Gemm: " + r;
  }
  const int64_t mTiles = (p.M + BLOCK_M - 1) / BLOCK_M;
  if (mTiles > 65535 || p.E > 65535) return "maskedGroupedFp8Gemm: more than 65535 row tiles or experts in one launch";
  dim3 grid(unsigned((p.N + BLOCK_N - 1) / BLOCK_N), unsigned(mTiles), unsigned(p.E));
  maskedGroupedFp8GemmKernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

}  // namespace dsn::cuda
