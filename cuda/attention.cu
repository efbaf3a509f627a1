// mlaDecode on CUDA (SIMT; tensor cores are future work). The contract is the CPU kernel's
// (native/cpu/attention.h): per query t and head h, s_k = (qLatent·c_k + qPe·pe_k) · scale in f32
// (or bf16(bf16(bf16(qLatent·c) + bf16(qPe·pe)) · scale) with bf16Scores), m = max_k s_k,
// sum = Σ_k e^(s_k − m), P_k = dtype(e^(s_k − m) / sum), out = dtype(Σ_k P_k c_k) with f32 sums.
//
// Work split. One block runs one query, a group of up to 16 heads (kHeads) and one split of the
// query's key positions: each cached row is read from global memory once per block, dequantised
// into shared memory (FP8 rows: f32(code) · scale rounded to the activation dtype, as
// latentRowDequant), and used by every head of the group. Split-KV spreads a long context over
// `splits` blocks (mlaDecodeSplits, native/params/attention.h) when there are few queries.
//
// Split-KV and the rounding of P. P must be rounded after exact normalisation by the global max and
// sum, so the usual one-pass log-sum-exp rescaling of partial outputs (which rounds nothing, or
// rounds the unnormalised P) cannot give the same P. So two passes:
//   pass 1 (stats): each split's max m_i and sum l_i = Σ e^(s − m_i) (online over its key tiles);
//   pass 2 (values): each block combines every split's (m_i, l_i) into the global m and
//     sum = Σ_i l_i · e^(m_i − m), recomputes its scores, rounds P = dtype(e^(s − m) / sum) exactly
//     as the CPU does, and accumulates Σ P·c over its keys (f32);
//   combine: out = dtype(Σ_i partial_i) (with one split, pass 2 writes out directly).
// The scores are computed twice (about 1.5× the flops of one pass, the P·V half being the other
// 0.5×); in exchange no score buffer is needed, whatever the context length. sum differs from the
// CPU's direct Σ e^(s − m) by the rescaling's few f32 ulps, far inside the 2^-12 relative noise the
// tests allow P for bf16 rounding flips.
//
// Visibility. Dense: positions 0..qPos[t]. Sparse: the index list is sorted in shared memory
// (bitonic) with entries < 0 or > qPos[t] moved to the end, and a repeated key counts once (as the
// CPU's sorted, unique list). Ids are checked by mlaDecodeCheckKernel, which raises the stream's
// error word (seqIdx: "index", qPos: "offset", an index-list entry: "key index", a block id:
// "index"); the attention kernels skip what is bad without reading through it.
#include <cuda_runtime.h>

#include <climits>
#include <limits>

#include "../native/cpu/latent_cache.h"
#include "attention.cuh"
#include "convert.cuh"
#include "device_error.cuh"
#include "launch_check.cuh"
#include "math.cuh"
#include "paged.cuh"

namespace dsn::cuda {
namespace {

constexpr int kHeads = int(kMlaDecodeHeadsPerBlock);  // heads sharing a block's key rows
constexpr int kTile = 8;                              // key rows in shared memory at a time
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kBlockTokens = kPagedBlockTokens;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
static_assert(kHeads <= kThreads && kTile <= kThreads, "one thread per head and per tile row");

/** The kernels' view of a launch: the op's params and what the launcher derived from them. */
struct DecodeArgs {
  MlaDecodeParams p;
  int64_t width = 0;       // C + Dr: elements of a dequantised row
  int64_t rowBytes = 0;    // FP8 cache: bytes of a row
  int64_t ropeOffset = 0;  // FP8 cache: byte offset of the RoPE key in a row
  int64_t chunk = 0;       // key positions per split (a multiple of kTile)
  int listPad = 1;         // sparse: the index list padded to a power of two
};

__device__ __forceinline__ float roundTo(DType t, float v) {
  return t == DType::bf16 ? __bfloat162float(__float2bfloat16_rn(v)) : v;
}

/** Element c of cache row `row`, as the activation dtype's value in f32. */
__device__ __forceinline__ float keyElement(const DecodeArgs& a, int64_t row, int64_t c) {
  const MlaDecodeParams& p = a.p;
  if (!p.fp8Cache) return loadAsF32(p.cache, p.type, row * a.width + c);
  const uint8_t* r = static_cast<const uint8_t*>(p.cache) + row * a.rowBytes;
  if (c >= p.latent) return loadAsF32(r + a.ropeOffset, p.type, c - p.latent);
  const float scale = *reinterpret_cast<const float*>(r + p.latent + 4 * (c / cpu::kLatentGroup));
  return roundTo(p.type, __fmul_rn(loadAsF32(r, DType::f8e4m3, c), scale));
}

/** Raises bad seqIdx / qPos / index-list entries / block ids, one block per query. */
__global__ void mlaDecodeCheckKernel(MlaDecodeParams p, DeviceErrorWord* err, uint32_t op) {
  const int64_t capacity = p.maxBlocks * kBlockTokens;
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    const int32_t seq = p.seqIdx[t], pos = p.qPos[t];
    if (!checkSeqAndPos(seq, pos, p.batch, capacity, err, op)) continue;
    const int32_t* table = p.blockTable + int64_t(seq) * p.maxBlocks;
    auto checkBlock = [&](int64_t b) {
      const int32_t id = table[b];
      if (id < 0 || id >= p.numBlocks) raiseDeviceError(err, op, DeviceErrorWhat::indexOutOfRange, id, p.numBlocks);
    };
    if (p.indices) {
      for (int64_t j = threadIdx.x; j < p.topk; j += blockDim.x) {
        const int32_t s = p.indices[t * p.topk + j];
        if (s < -1 || s >= capacity) raiseDeviceError(err, op, DeviceErrorWhat::keyIndexOutOfRange, s, capacity);
        else if (s >= 0 && s <= pos) checkBlock(s / kBlockTokens);
      }
    } else {
      for (int64_t b = threadIdx.x; b <= pos / kBlockTokens; b += blockDim.x) checkBlock(b);
    }
  }
}

/** Pass 1 (kValues false): per split, the max and sum of each head's scores. Pass 2 (kValues true):
 *  P from the global max and sum, and the split's Σ P·c (or, with one split, the output). */
template <bool kValues>
__global__ void __launch_bounds__(kThreads) mlaDecodeKernel(DecodeArgs a) {
  const MlaDecodeParams& p = a.p;
  extern __shared__ float smem[];
  int* list = reinterpret_cast<int*>(smem);        // [listPad] sparse: sorted visible keys, then INT_MAX
  float* qS = smem + (p.indices ? a.listPad : 0);  // [kHeads][width] the group's queries
  float* kS = qS + kHeads * a.width;               // [kTile][width] dequantised rows
  float* sS = kS + kTile * a.width;                // [kHeads][kTile] scores, then P
  float* oS = sS + kHeads * kTile;                 // [kHeads][C] pass 2: Σ P·c
  __shared__ int64_t rows[kTile];                  // physical row of each tile row (-1: invisible)
  __shared__ float mS[kHeads];                     // pass 1: running max; pass 2: the global one
  __shared__ float lS[kHeads];                     // pass 1: running sum; pass 2: the global one
  __shared__ int visible;                          // sparse: entries of list before the INT_MAX padding

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t H = p.heads, C = p.latent, W = a.width, splits = p.splits, split = blockIdx.x;
  const int64_t h0 = int64_t(blockIdx.y) * kHeads;
  const int64_t capacity = p.maxBlocks * kBlockTokens;
  for (int64_t t = blockIdx.z; t < p.tokens; t += gridDim.z) {
    const int32_t seq = p.seqIdx[t], pos = p.qPos[t];
    if (seq < 0 || seq >= p.batch || pos < 0 || pos >= capacity) continue;  // raised by the check kernel
    const int32_t* table = p.blockTable + int64_t(seq) * p.maxBlocks;

    for (int64_t e = tid; e < kHeads * W; e += kThreads) {
      const int64_t h = h0 + e / W, c = e % W;
      float v = 0.0f;
      if (h < H) v = c < C ? loadAsF32(p.qLatent, p.type, (t * H + h) * C + c) : loadAsF32(p.qPe, p.type, (t * H + h) * p.dr + c - C);
      qS[e] = v;
    }
    int64_t n = pos + 1;  // key positions of the query
    if (p.indices) {
      for (int i = tid; i < a.listPad; i += kThreads) {
        int s = i < p.topk ? p.indices[t * p.topk + i] : INT_MAX;
        list[i] = s < 0 || s > pos ? INT_MAX : s;
      }
      __syncthreads();
      for (int k = 2; k <= a.listPad; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1) {
          for (int i = tid; i < a.listPad; i += kThreads) {
            const int o = i ^ j;
            if (o > i) {
              const int x = list[i], y = list[o];
              if ((x > y) == ((i & k) == 0)) {
                list[i] = y;
                list[o] = x;
              }
            }
          }
          __syncthreads();
        }
      if (tid == 0) visible = 0;
      __syncthreads();
      for (int i = tid; i < a.listPad; i += kThreads)
        if (list[i] != INT_MAX && (i + 1 == a.listPad || list[i + 1] == INT_MAX)) visible = i + 1;
      __syncthreads();
      n = visible;
    }
    if (tid < kHeads) {
      const int64_t h = h0 + tid;
      float m = kNegInf, l = 0.0f;
      if (kValues && h < H) {  // the global max and sum from every split's
        const float* st = p.workspace + (t * H + h) * splits * 2;
        for (int64_t i = 0; i < splits; ++i) m = st[2 * i] > m ? st[2 * i] : m;
        if (m != kNegInf)
          for (int64_t i = 0; i < splits; ++i)
            if (st[2 * i + 1] > 0.0f) l += st[2 * i + 1] * expf(st[2 * i] - m);
      }
      mS[tid] = m;
      lS[tid] = l;
    }
    if (kValues)
      for (int64_t e = tid; e < kHeads * C; e += kThreads) oS[e] = 0.0f;
    __syncthreads();

    const int64_t begin = split * a.chunk, end = begin + a.chunk < n ? begin + a.chunk : n;
    for (int64_t i0 = begin; i0 < end; i0 += kTile) {
      if (tid < kTile) {
        const int64_t i = i0 + tid;
        int64_t s = -1, row = -1;
        if (i < end) s = !p.indices ? i : (i > 0 && list[i - 1] == list[i] ? -1 : list[i]);  // a repeat counts once
        if (s >= 0) {
          const int32_t id = table[s / kBlockTokens];
          if (id >= 0 && id < p.numBlocks) row = int64_t(id) * kBlockTokens + s % kBlockTokens;
        }
        rows[tid] = row;
      }
      __syncthreads();
      for (int64_t e = tid; e < kTile * W; e += kThreads) {
        const int64_t row = rows[e / W];
        kS[e] = row < 0 ? 0.0f : keyElement(a, row, e % W);
      }
      __syncthreads();
      // Scores: a warp per (head, row) pair, the lanes splitting the dims; latent and RoPE parts apart.
      for (int pair = warp; pair < kHeads * kTile; pair += kWarps) {
        const int h = pair / kTile, j = pair % kTile;
        if (h0 + h >= H || rows[j] < 0) {
          if (lane == 0) sS[pair] = kNegInf;
          continue;
        }
        const float* q = qS + h * W;
        const float* k = kS + j * W;
        float dl = 0.0f, dp = 0.0f;
        for (int64_t c = lane; c < C; c += 32) dl = fmaf(q[c], k[c], dl);
        for (int64_t c = C + lane; c < W; c += 32) dp = fmaf(q[c], k[c], dp);
        for (int o = 16; o > 0; o >>= 1) {
          dl += __shfl_xor_sync(0xffffffffu, dl, o);
          dp += __shfl_xor_sync(0xffffffffu, dp, o);
        }
        if (lane == 0) {
          float s;
          if (p.bf16Scores) s = roundTo(DType::bf16, __fmul_rn(roundTo(DType::bf16, roundTo(DType::bf16, dl) + roundTo(DType::bf16, dp)), p.scale));
          else s = __fmul_rn(dl + dp, p.scale);
          sS[pair] = s;
        }
      }
      __syncthreads();
      if (!kValues) {
        if (tid < kHeads) {
          float tileMax = kNegInf;
          for (int j = 0; j < kTile; ++j) tileMax = sS[tid * kTile + j] > tileMax ? sS[tid * kTile + j] : tileMax;
          if (tileMax != kNegInf) {
            const float m = mS[tid], mNew = m > tileMax ? m : tileMax;
            float l = m == kNegInf ? 0.0f : lS[tid] * expf(m - mNew);
            for (int j = 0; j < kTile; ++j) l += expf(sS[tid * kTile + j] - mNew);
            mS[tid] = mNew;
            lS[tid] = l;
          }
        }
      } else {
        for (int e = tid; e < kHeads * kTile; e += kThreads) {
          const int h = e / kTile;
          const float s = sS[e];
          sS[e] = s == kNegInf || !(lS[h] > 0.0f) ? 0.0f : roundTo(p.type, expf(s - mS[h]) / lS[h]);
        }
        __syncthreads();
        for (int h = 0; h < kHeads; ++h)  // (no 64-bit division by C: it is a call that spills)
          for (int64_t c = tid; c < C; c += kThreads) {
            float acc = oS[h * C + c];
            DSN_UNROLL
            for (int j = 0; j < kTile; ++j) acc = fmaf(sS[h * kTile + j], kS[j * W + c], acc);
            oS[h * C + c] = acc;
          }
      }
      __syncthreads();
    }

    if (!kValues) {
      if (tid < kHeads && h0 + tid < H) {
        float* st = p.workspace + ((t * H + h0 + tid) * splits + split) * 2;
        st[0] = mS[tid];
        st[1] = lS[tid];
      }
    } else {
      for (int hh = 0; hh < kHeads && h0 + hh < H; ++hh)
        for (int64_t c = tid; c < C; c += kThreads) {
          const int64_t h = h0 + hh;
          if (splits == 1) storeFromF32(p.out, p.type, (t * H + h) * C + c, oS[hh * C + c]);
          else p.workspace[2 * p.tokens * H * splits + ((t * H + h) * splits + split) * C + c] = oS[hh * C + c];
        }
    }
    __syncthreads();
  }
}

/** out = dtype(Σ over splits of the partial rows), one block per (query, head) row. */
__global__ void mlaDecodeCombineKernel(MlaDecodeParams p) {
  const int64_t rowsTotal = p.tokens * p.heads, C = p.latent;
  const float* partial = p.workspace + 2 * rowsTotal * p.splits;
  for (int64_t r = blockIdx.x; r < rowsTotal; r += gridDim.x)
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      float acc = 0.0f;
      for (int64_t i = 0; i < p.splits; ++i) acc += partial[(r * p.splits + i) * C + c];
      storeFromF32(p.out, p.type, r * C + c, acc);
    }
}

template <bool kValues>
std::string runPass(const DecodeArgs& a, size_t smem, dim3 grid, cudaStream_t stream) {
  if (smem > 48 * 1024) {
    const std::string e = errorText(cudaFuncSetAttribute(mlaDecodeKernel<kValues>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    if (!e.empty()) return e;
  }
  mlaDecodeKernel<kValues><<<grid, kThreads, smem, stream>>>(a);
  return launchError();
}

unsigned gridOf(int64_t n) { return unsigned(n < 65535 ? (n > 0 ? n : 1) : 65535); }

}  // namespace

std::string mlaDecodeLaunch(const MlaDecodeParams& p, const CudaLaunch& l) {
  cudaStream_t stream = static_cast<cudaStream_t>(l.stream);
  if (p.tokens == 0) return "";
  mlaDecodeCheckKernel<<<gridOf(p.tokens), 128, 0, stream>>>(p, l.error, l.op);
  std::string e = launchError();
  if (!e.empty() || p.heads == 0 || p.latent == 0) return e;
  if (p.splits < 1 || !p.workspace) return "mlaDecode: the launch needs a workspace of mlaDecodeWorkspaceFloats floats";

  DecodeArgs a;
  a.p = p;
  a.width = p.latent + p.dr;
  if (p.fp8Cache) {
    const cpu::LatentCacheLayout layout{p.latent, p.dr, p.type};
    a.rowBytes = layout.rowBytes();
    a.ropeOffset = layout.ropeOffset();
  }
  const int64_t maxKeys = p.indices ? p.topk : p.maxBlocks * kBlockTokens;
  const int64_t perSplit = (maxKeys + p.splits - 1) / p.splits;
  a.chunk = (perSplit + kTile - 1) / kTile * kTile;
  if (a.chunk == 0) a.chunk = kTile;
  if (p.indices) {
    int64_t pad = 1;
    while (pad < p.topk) pad <<= 1;
    a.listPad = int(pad);
  }
  const size_t stats = size_t(kHeads * (a.width + kTile) + kTile * a.width) * sizeof(float) + (p.indices ? size_t(a.listPad) * sizeof(int) : 0);
  const size_t values = stats + size_t(kHeads * p.latent) * sizeof(float);
  constexpr size_t kMaxSmem = 227 * 1024;
  if (values > kMaxSmem)
    return "mlaDecode: C + Dr = " + std::to_string(a.width) + (p.indices ? " with " + std::to_string(p.topk) + " indices a query" : "") +
           " needs " + std::to_string(values) + " bytes of shared memory a block, more than 227 KiB";
  const dim3 grid(unsigned(p.splits), unsigned((p.heads + kHeads - 1) / kHeads), gridOf(p.tokens));
  if (p.splits > 65535 || grid.y > 65535) return "mlaDecode: too many heads or splits for one grid";
  e = runPass<false>(a, stats, grid, stream);
  if (e.empty()) e = runPass<true>(a, values, grid, stream);
  if (e.empty() && p.splits > 1) {
    mlaDecodeCombineKernel<<<gridOf(p.tokens * p.heads), 128, 0, stream>>>(p);
    e = launchError();
  }
  return e;
}

}  // namespace dsn::cuda
