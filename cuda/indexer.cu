// indexerScores on CUDA, on the tensor cores. One block runs one query and a chunk of kChunk key
// positions. The query's Hi × Di FP8 codes sit in shared memory as they are (heads padded to a
// multiple of 16, dims to a multiple of 32, with zero codes), and so does each tile of kTile cached
// keys. Each warp scores 8 keys: for every group of 16 heads, mma.sync m16n8k32 e4m3 → f32 computes
// the 16 × 8 block of q·k over the dims (32 at a time), then each lane adds w[h]·relu(q_h·k) of its
// two heads into its keys' totals, and the totals are summed across the 8 lanes sharing a key.
// Summation: a dot is ⌈Di/32⌉ tensor-core sums (exact FP8 products, f32 accumulator), a key's total
// 2·⌈Hi/16⌉ fmaf per lane plus 3 shuffle additions, then × the key's scale: the bound in
// test/ops/indexer-cuda.test.ts.
#include <cuda_runtime.h>

#include <limits>

#include "device_error.cuh"
#include "indexer.cuh"
#include "launch_check.cuh"
#include "paged.cuh"
#include "ptx/mma.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 8 * kWarps;  // keys staged in shared memory at a time: 8 a warp (the mma's n)
constexpr int64_t kChunk = 256;    // key positions a block
constexpr int64_t kBlockTokens = kPagedBlockTokens;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/** Shared-memory row stride in bytes for `dims` padded dims: 16 bytes more than the row, so the
 *  8 rows a fragment load touches start in different banks. */
__host__ __device__ inline int64_t rowStride(int64_t paddedDims) { return paddedDims + 16; }
__host__ __device__ inline int64_t roundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/** Raises bad seqIdx / qPos / block ids, one block per query (the CPU kernel's checks). */
__global__ void indexerCheckKernel(IndexerScoresParams p, DeviceErrorWord* err, uint32_t op) {
  const int64_t capacity = p.maxBlocks * kBlockTokens;
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    const int32_t seq = p.seqIdx[t], pos = p.qPos[t];
    if (!checkSeqAndPos(seq, pos, p.batch, capacity, err, op) || !checkSeqAndPos(seq, pos, p.batch, p.maxKeys, err, op)) continue;
    const int32_t* table = p.blockTable + int64_t(seq) * p.maxBlocks;
    for (int64_t b = threadIdx.x; b <= pos / kBlockTokens; b += blockDim.x)
      if (table[b] < 0 || table[b] >= p.numBlocks) raiseDeviceError(err, op, DeviceErrorWhat::indexOutOfRange, table[b], p.numBlocks);
  }
}

__global__ void __launch_bounds__(kThreads, 1) indexerScoresKernel(IndexerScoresParams p) {
  extern __shared__ __align__(16) unsigned char smemBytes[];
  const int64_t H = p.heads, D = p.dim, Hp = roundUp(H, 16), Dp = roundUp(D, 32), stride = rowStride(Dp);
  float* wS = reinterpret_cast<float*>(smemBytes);   // [Hp], 0 for padded heads
  unsigned char* qS = smemBytes + Hp * 4;            // [Hp][stride] E4M3 codes, padding 0
  unsigned char* kS = qS + Hp * stride;              // [kTile][stride]
  __shared__ float scaleS[kTile];
  __shared__ int64_t rows[kTile];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
  const int64_t capacity = p.maxBlocks * kBlockTokens;
  const int64_t s0 = int64_t(blockIdx.x) * kChunk, s1 = s0 + kChunk < p.maxKeys ? s0 + kChunk : p.maxKeys;
  const auto word = [](const unsigned char* at) { return *reinterpret_cast<const uint32_t*>(at); };
  for (int64_t t = blockIdx.y; t < p.tokens; t += gridDim.y) {
    const int32_t seq = p.seqIdx[t], pos = p.qPos[t];
    if (seq < 0 || seq >= p.batch || pos < 0 || pos >= capacity || pos >= p.maxKeys) continue;  // raised by the check kernel
    float* out = p.scores + t * p.maxKeys;
    const int64_t last = s1 < int64_t(pos) + 1 ? s1 : int64_t(pos) + 1;  // keys [s0, last) are visible
    for (int64_t s = (s0 > last ? s0 : last) + tid; s < s1; s += kThreads) out[s] = kNegInf;
    if (last <= s0) continue;
    const int32_t* table = p.blockTable + int64_t(seq) * p.maxBlocks;
    __syncthreads();  // the previous query's last tile is read by every warp before qS changes
    for (int64_t e = tid; e < Hp * Dp; e += kThreads) {
      const int64_t h = e / Dp, d = e % Dp;
      qS[h * stride + d] = h < H && d < D ? p.q[(t * H + h) * D + d] : 0;
    }
    for (int64_t h = tid; h < Hp; h += kThreads) wS[h] = h < H ? p.weights[t * H + h] : 0.0f;
    for (int64_t k0 = s0; k0 < last; k0 += kTile) {
      if (tid < kTile) {
        const int64_t s = k0 + tid;
        int64_t row = -1;
        if (s < last) {
          const int32_t id = table[s / kBlockTokens];
          if (id >= 0 && id < p.numBlocks) row = int64_t(id) * kBlockTokens + s % kBlockTokens;
        }
        rows[tid] = row;
        scaleS[tid] = row < 0 ? 0.0f : p.kScales[row];
      }
      __syncthreads();
      for (int64_t e = tid; e < kTile * Dp; e += kThreads) {
        const int64_t j = e / Dp, d = e % Dp, row = rows[j];
        kS[j * stride + d] = row < 0 || d >= D ? 0 : p.kCache[row * D + d];
      }
      __syncthreads();
      // This warp's keys j0 .. j0 + 7; lane (g, tq) ends with the totals of keys j0 + 2tq, j0 + 2tq + 1.
      const int j0 = warp * 8;
      float total0 = 0.0f, total1 = 0.0f;
      for (int h0 = 0; h0 < int(Hp); h0 += 16) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const unsigned char* qa = qS + (h0 + g) * stride + tq * 4;
        const unsigned char* qb = qa + 8 * stride;
        const unsigned char* kb = kS + (j0 + g) * stride + tq * 4;
        for (int d0 = 0; d0 < int(Dp); d0 += 32) {
          uint32_t a[4], b[2];
          a[0] = word(qa + d0);
          a[1] = word(qb + d0);
          a[2] = word(qa + d0 + 16);
          a[3] = word(qb + d0 + 16);
          b[0] = word(kb + d0);
          b[1] = word(kb + d0 + 16);
          ptx::mma_m16n8k32_e4m3(acc, a, b, acc);
        }
        // acc: (head h0 + g, key 2tq), (h0 + g, 2tq + 1), (h0 + g + 8, 2tq), (h0 + g + 8, 2tq + 1).
        const float wa = wS[h0 + g], wb = wS[h0 + g + 8];
        total0 = fmaf(wa, acc[0] > 0.0f ? acc[0] : 0.0f, total0);
        total0 = fmaf(wb, acc[2] > 0.0f ? acc[2] : 0.0f, total0);
        total1 = fmaf(wa, acc[1] > 0.0f ? acc[1] : 0.0f, total1);
        total1 = fmaf(wb, acc[3] > 0.0f ? acc[3] : 0.0f, total1);
      }
      for (int o = 4; o < 32; o <<= 1) {  // over g: the 8 lanes holding the same two keys
        total0 += __shfl_xor_sync(0xffffffffu, total0, o);
        total1 += __shfl_xor_sync(0xffffffffu, total1, o);
      }
      const int j = j0 + 2 * tq;  // rows < 0: past `last`, or a bad block (raised)
      if (g == 0 && rows[j] >= 0) out[k0 + j] = __fmul_rn(total0, scaleS[j]);
      if (g == 0 && rows[j + 1] >= 0) out[k0 + j + 1] = __fmul_rn(total1, scaleS[j + 1]);
      __syncthreads();
    }
  }
}

}  // namespace

std::string indexerScoresLaunch(const IndexerScoresParams& p, const CudaLaunch& l) {
  cudaStream_t stream = static_cast<cudaStream_t>(l.stream);
  if (p.tokens == 0) return "";
  indexerCheckKernel<<<unsigned(p.tokens < 65535 ? p.tokens : 65535), 128, 0, stream>>>(p, l.error, l.op);
  std::string e = launchError();
  if (!e.empty() || p.maxKeys == 0) return e;
  const int64_t Hp = roundUp(p.heads, 16), stride = rowStride(roundUp(p.dim, 32));
  const size_t smem = size_t(Hp * 4 + (Hp + kTile) * stride);
  if (smem > 227 * 1024) return "indexerScores: Hi = " + std::to_string(p.heads) + ", Di = " + std::to_string(p.dim) + " need more than 227 KiB of shared memory a block";
  if (smem > 48 * 1024) {
    e = errorText(cudaFuncSetAttribute(indexerScoresKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    if (!e.empty()) return e;
  }
  const int64_t chunks = (p.maxKeys + kChunk - 1) / kChunk;
  const dim3 grid(unsigned(chunks), unsigned(p.tokens < 65535 ? p.tokens : 65535));
  indexerScoresKernel<<<grid, kThreads, smem, stream>>>(p);
  return launchError();
}

}  // namespace dsn::cuda
