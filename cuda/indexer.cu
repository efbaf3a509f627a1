// indexerScores on CUDA. One block runs one query and a chunk of kChunk key positions: the query's
// Hi × Di FP8 codes (widened to f32, exactly) and weights sit in shared memory, each tile of kTile
// cached keys is widened once into shared memory, and a warp scores a key with its lanes splitting
// the heads (each lane's dot over d in order), the weighted ReLUs summed across the warp.
#include <cuda_runtime.h>

#include <limits>

#include "convert.cuh"
#include "device_error.cuh"
#include "indexer.cuh"
#include "launch_check.cuh"
#include "paged.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 32;         // keys widened into shared memory at a time
constexpr int64_t kChunk = 256;   // key positions a block
constexpr int64_t kBlockTokens = kPagedBlockTokens;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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

__global__ void __launch_bounds__(kThreads) indexerScoresKernel(IndexerScoresParams p) {
  extern __shared__ float smem[];
  const int64_t H = p.heads, D = p.dim, qStride = D + 1;  // +1: lanes reading different heads' rows hit different banks
  float* qS = smem;                     // [H][D + 1]
  float* wS = qS + H * qStride;         // [H]
  float* kS = wS + H;                   // [kTile][D]
  __shared__ float scaleS[kTile];
  __shared__ int64_t rows[kTile];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t capacity = p.maxBlocks * kBlockTokens;
  const int64_t s0 = int64_t(blockIdx.x) * kChunk, s1 = s0 + kChunk < p.maxKeys ? s0 + kChunk : p.maxKeys;
  for (int64_t t = blockIdx.y; t < p.tokens; t += gridDim.y) {
    const int32_t seq = p.seqIdx[t], pos = p.qPos[t];
    if (seq < 0 || seq >= p.batch || pos < 0 || pos >= capacity || pos >= p.maxKeys) continue;  // raised by the check kernel
    float* out = p.scores + t * p.maxKeys;
    const int64_t last = s1 < int64_t(pos) + 1 ? s1 : int64_t(pos) + 1;  // keys [s0, last) are visible
    for (int64_t s = (s0 > last ? s0 : last) + tid; s < s1; s += kThreads) out[s] = kNegInf;
    if (last <= s0) continue;
    const int32_t* table = p.blockTable + int64_t(seq) * p.maxBlocks;
    for (int64_t e = tid; e < H * D; e += kThreads) qS[(e / D) * qStride + e % D] = loadAsF32(p.q + t * H * D, DType::f8e4m3, e);
    for (int64_t h = tid; h < H; h += kThreads) wS[h] = p.weights[t * H + h];
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
      for (int64_t e = tid; e < kTile * D; e += kThreads) {
        const int64_t row = rows[e / D];
        kS[e] = row < 0 ? 0.0f : loadAsF32(p.kCache + row * D, DType::f8e4m3, e % D);
      }
      __syncthreads();
      for (int j = warp; j < kTile; j += kWarps) {
        if (rows[j] < 0) continue;  // past `last`, or a bad block (raised)
        const float* k = kS + j * D;
        float total = 0.0f;
        for (int64_t h = lane; h < H; h += 32) {
          const float* q = qS + h * qStride;
          float dot = 0.0f;
          for (int64_t d = 0; d < D; ++d) dot = fmaf(q[d], k[d], dot);  // FP8 products are exact in f32
          total = fmaf(wS[h], dot > 0.0f ? dot : 0.0f, total);
        }
        for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
        if (lane == 0) out[k0 + j] = __fmul_rn(total, scaleS[j]);
      }
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
  const size_t smem = size_t(p.heads * (p.dim + 1) + p.heads + kTile * p.dim) * sizeof(float);
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
