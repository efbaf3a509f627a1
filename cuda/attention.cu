// mlaPrefill and mlaDecode on CUDA. mlaPrefill (SIMT, and mma.sync for bf16 at the model's widths)
// is described with its kernels below. mlaDecode (SIMT; tensor cores are future work): the contract
// is the CPU kernel's (native/cpu/attention.h): per query t and head h,
// s_k = (qLatent·c_k + qPe·pe_k) · scale in f32 (or bf16(bf16(bf16(qLatent·c) + bf16(qPe·pe)) · scale)
// with bf16Scores), m = max_k s_k, sum = Σ_k e^(s_k − m), P_k = dtype(e^(s_k − m) / sum),
// out = dtype(Σ_k P_k c_k) with f32 sums.
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

#include <algorithm>
#include <climits>
#include <limits>

#include "../native/cpu/latent_cache.h"
#include "attention.cuh"
#include "block_sort.cuh"
#include "convert.cuh"
#include "device_error.cuh"
#include "launch_check.cuh"
#include "math.cuh"
#include "paged.cuh"
#include "ptx/mma.cuh"

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

/** Pass 1 of the attention kernels: folds a tile's scores (sS [rows][kTile], -inf where invisible)
 *  into each row's running max mS and sum lS (sum of e^(s − max)); threads 0..rows-1 do a row each. */
__device__ __forceinline__ void foldTileStats(const float* sS, float* mS, float* lS, int rows) {
  const int r = threadIdx.x;
  if (r >= rows) return;
  float tileMax = kNegInf;
  for (int j = 0; j < kTile; ++j) tileMax = sS[r * kTile + j] > tileMax ? sS[r * kTile + j] : tileMax;
  if (tileMax == kNegInf) return;
  const float m = mS[r], mNew = m > tileMax ? m : tileMax;
  float l = m == kNegInf ? 0.0f : lS[r] * expf(m - mNew);
  for (int j = 0; j < kTile; ++j) l += expf(sS[r * kTile + j] - mNew);
  mS[r] = mNew;
  lS[r] = l;
}

/** Pass 2 of the attention kernels: a tile's scores (sS [rows][kTile]) become P = dtype(e^(s − m) / sum)
 *  with each row's global max mS and sum lS (0 where invisible, or where the row sees nothing). */
__device__ __forceinline__ void tileProbabilities(float* sS, const float* mS, const float* lS, int rows, DType type) {
  for (int e = threadIdx.x; e < rows * kTile; e += blockDim.x) {
    const int r = e / kTile;
    const float s = sS[e];
    sS[e] = s == kNegInf || !(lS[r] > 0.0f) ? 0.0f : roundTo(type, expf(s - mS[r]) / lS[r]);
  }
}

/** A query's index list in shared memory, for the attention kernels (every thread of the block
 *  calls it): list[0, pad) gets row[0, topk) with entries < 0 or > pos (and the padding) as INT_MAX,
 *  sorted ascending (bitonic; pad a power of two >= topk). Returns the entries before the INT_MAX
 *  tail, repeats included (a caller counts a repeated key once: list[i - 1] == list[i]). `visible`
 *  is a __shared__ int of the caller. */
__device__ int64_t sortedVisibleList(const int32_t* row, int64_t topk, int pad, int32_t pos, int* list, int* visible) {
  const int tid = threadIdx.x, threads = blockDim.x;
  for (int i = tid; i < pad; i += threads) {
    const int s = i < topk ? row[i] : INT_MAX;
    list[i] = s < 0 || s > pos ? INT_MAX : s;
  }
  __syncthreads();
  blockBitonicSort</*Descending=*/false>(list, pad);
  if (tid == 0) *visible = 0;
  __syncthreads();
  for (int i = tid; i < pad; i += threads)
    if (list[i] != INT_MAX && (i + 1 == pad || list[i + 1] == INT_MAX)) *visible = i + 1;
  __syncthreads();
  return *visible;
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
    const int64_t n = p.indices ? sortedVisibleList(p.indices + t * p.topk, p.topk, a.listPad, pos, list, &visible) : pos + 1;
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
        foldTileStats(sS, mS, lS, kHeads);
      } else {
        tileProbabilities(sS, mS, lS, kHeads, p.type);
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

// ---- mlaPrefill ----
//
// The contract is the CPU kernel's (native/cpu/attention.h): per query t and head h, over the keys s
// it sees (s <= qPos[t]; with index lists, the listed ones, a repeat counting once),
// s_k = (q_nope·k_nope + q_pe·kPe) · scale in f32 (or bf16(bf16(q·k) · scale) with bf16Scores),
// P_k = dtype(e^(s_k − m) / sum) with the global max m and sum, out = dtype(Σ_k P_k v_k), f32 sums.
// As mlaDecode, two passes over the keys so that P is rounded after exact normalisation: pass 0
// the max and sum (online over the key tiles), pass 1 the scores again, P and Σ P·v. There is no
// split-KV: one block runs all the keys of its rows (prefill has T × H rows to spread).
//
// Work split. The kv rows are per head, so keys are shared across queries: a block runs up to 16
// (query, head) rows: dense, up to 16 consecutive queries of one head (causal neighbours see nearly
// the same keys; fewer queries leave rows to more heads); with index lists one query (each has its
// own list, sorted in shared memory as mlaDecode's) and up to 16 heads, which share the RoPE keys.
// Ids are checked by mlaPrefillCheckKernel (qPos: "position", an index-list entry: "key index");
// the attention kernel treats a bad qPos as a query that sees nothing and never reads through one.

constexpr int kPrefillRows = 16;  // (query, head) rows of a block

/** The prefill kernel's view of a launch: the op's params and the block shape the launcher chose. */
struct PrefillArgs {
  MlaPrefillParams p;
  int queries = 1;  // consecutive queries of a block (1 with index lists: each query has its own keys)
  int heads = 1;    // consecutive heads of a block; queries * heads <= kPrefillRows
  int listPad = 1;  // sparse: the index list padded to a power of two
};

/** Bytes of dynamic shared memory of the prefill kernel for a block shape (the layout in mlaPrefillKernel). */
size_t prefillSmemBytes(const MlaPrefillParams& p, int64_t queries, int64_t heads, int64_t listPad) {
  const int64_t rows = queries * heads;
  const int64_t floats = rows * (p.dn + p.dr) + kTile * heads * (p.dn + p.dv) + kTile * p.dr + rows * kTile + rows * p.dv;
  return size_t(floats) * sizeof(float) + (p.indices ? size_t(listPad) * sizeof(int) : 0);
}

/** Raises bad qPos ("position") and index-list entries ("key index"), one block per query. */
__global__ void mlaPrefillCheckKernel(MlaPrefillParams p, DeviceErrorWord* err, uint32_t op) {
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    const int32_t pos = p.qPos[t];
    if (threadIdx.x == 0 && (pos < 0 || pos >= p.keys)) raiseDeviceError(err, op, DeviceErrorWhat::positionOutOfRange, pos, p.keys);
    if (p.indices)
      for (int64_t j = threadIdx.x; j < p.topk; j += blockDim.x) {
        const int32_t s = p.indices[t * p.topk + j];
        if (s < -1 || s >= p.keys) raiseDeviceError(err, op, DeviceErrorWhat::keyIndexOutOfRange, s, p.keys);
      }
  }
}

/** One block: `queries` consecutive queries × `heads` consecutive heads (rows r = (query r / heads,
 *  head r % heads)) over the keys any of them sees, a tile of kTile keys at a time in shared memory.
 *  Pass 0: each row's max and sum (online); pass 1: the scores again, P = dtype(e^(s − m) / sum),
 *  and Σ P·v. */
__global__ void __launch_bounds__(kThreads) mlaPrefillKernel(PrefillArgs a) {
  const MlaPrefillParams& p = a.p;
  extern __shared__ float smem[];
  const int QB = a.queries, HB = a.heads, rows = QB * HB;
  const int Dn = int(p.dn), Dr = int(p.dr), Dv = int(p.dv), Dq = Dn + Dr, Dkv = Dn + Dv, KW = HB * Dkv;
  int* list = reinterpret_cast<int*>(smem);        // [listPad] sparse: the sorted visible keys, then INT_MAX
  float* qS = smem + (p.indices ? a.listPad : 0);  // [rows][Dq] the rows' queries
  float* kS = qS + rows * Dq;                      // [kTile][HB][Dkv] the tile keys' kv rows of the block's heads
  float* peS = kS + kTile * KW;                    // [kTile][Dr] their RoPE keys
  float* sS = peS + kTile * Dr;                    // [rows][kTile] scores, then P
  float* oS = sS + rows * kTile;                   // [rows][Dv] Σ P·v
  __shared__ int keyPos[kTile];                    // key position of each tile row (-1: none)
  __shared__ int rowPos[kPrefillRows];             // qPos of each row's query (-1: no such row, or a bad qPos)
  __shared__ float mS[kPrefillRows];               // the running max, then the max
  __shared__ float lS[kPrefillRows];               // the running sum, then the sum
  __shared__ int visible;                          // key positions the block runs over

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t T = p.tokens, H = p.heads, h0 = int64_t(blockIdx.y) * HB, groups = (T + QB - 1) / QB;
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const int64_t t0 = g * QB;
    if (tid < rows) {
      const int64_t t = t0 + tid / HB, h = h0 + tid % HB;
      const int32_t pos = t < T && h < H ? p.qPos[t] : -1;
      rowPos[tid] = pos >= 0 && pos < p.keys ? pos : -1;  // a bad qPos is raised by the check kernel
      mS[tid] = kNegInf;
      lS[tid] = 0.0f;
    }
    for (int e = tid; e < rows * Dq; e += kThreads) {
      const int r = e / Dq;
      const int64_t t = t0 + r / HB, h = h0 + r % HB;
      qS[e] = t < T && h < H ? loadAsF32(p.q, p.type, (t * H + h) * Dq + (e - r * Dq)) : 0.0f;
    }
    for (int e = tid; e < rows * Dv; e += kThreads) oS[e] = 0.0f;
    __syncthreads();
    int64_t n;  // dense: positions 0..n-1; sparse: entries of list
    if (p.indices) {
      n = sortedVisibleList(p.indices + t0 * p.topk, p.topk, a.listPad, rowPos[0], list, &visible);  // one query a block
    } else {
      if (tid == 0) {
        int last = -1;
        for (int r = 0; r < rows; ++r) last = rowPos[r] > last ? rowPos[r] : last;
        visible = last + 1;
      }
      __syncthreads();
      n = visible;
    }

    for (int pass = 0; pass < 2; ++pass)
      for (int64_t i0 = 0; i0 < n; i0 += kTile) {
        if (tid < kTile) {
          const int64_t i = i0 + tid;
          int s = -1;
          if (i < n) s = !p.indices ? int(i) : (i > 0 && list[i - 1] == list[i] ? -1 : list[i]);  // a repeat counts once
          keyPos[tid] = s;
        }
        __syncthreads();
        for (int e = tid; e < kTile * KW; e += kThreads) {  // the heads' kv rows of a key are contiguous
          const int j = e / KW, w = e - j * KW, s = keyPos[j];
          kS[e] = s < 0 || h0 + w / Dkv >= H ? 0.0f : loadAsF32(p.kv, p.type, (int64_t(s) * H + h0) * Dkv + w);
        }
        for (int e = tid; e < kTile * Dr; e += kThreads) {
          const int j = e / Dr, s = keyPos[j];
          peS[e] = s < 0 ? 0.0f : loadAsF32(p.kPe, p.type, int64_t(s) * Dr + (e - j * Dr));
        }
        __syncthreads();
        // Scores: a warp per (row, key) pair, the lanes splitting the dims.
        for (int pair = warp; pair < rows * kTile; pair += kWarps) {
          const int r = pair / kTile, j = pair - r * kTile, s = keyPos[j];
          if (s < 0 || s > rowPos[r]) {
            if (lane == 0) sS[pair] = kNegInf;
            continue;
          }
          const float* q = qS + r * Dq;
          const float* k = kS + j * KW + (r % HB) * Dkv;
          const float* pe = peS + j * Dr;
          float dot = 0.0f;
          for (int c = lane; c < Dn; c += 32) dot = fmaf(q[c], k[c], dot);
          for (int c = lane; c < Dr; c += 32) dot = fmaf(q[Dn + c], pe[c], dot);
          for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
          if (lane == 0) sS[pair] = p.bf16Scores ? roundTo(DType::bf16, __fmul_rn(roundTo(DType::bf16, dot), p.scale)) : __fmul_rn(dot, p.scale);
        }
        __syncthreads();
        if (pass == 0) {
          foldTileStats(sS, mS, lS, rows);
        } else {
          tileProbabilities(sS, mS, lS, rows, p.type);
          __syncthreads();
          for (int e = tid; e < rows * Dv; e += kThreads) {
            const int r = e / Dv;
            const float* v = kS + (r % HB) * Dkv + Dn + (e - r * Dv);
            float acc = oS[e];
            DSN_UNROLL
            for (int j = 0; j < kTile; ++j) acc = fmaf(sS[r * kTile + j], v[j * KW], acc);
            oS[e] = acc;
          }
        }
        __syncthreads();
      }

    for (int e = tid; e < rows * Dv; e += kThreads) {
      const int r = e / Dv;
      const int64_t t = t0 + r / HB, h = h0 + r % HB;
      if (t < T && h < H) storeFromF32(p.out, p.type, (t * H + h) * Dv + (e - r * Dv), oS[e]);
    }
    __syncthreads();
  }
}


// ---- mlaPrefill on tensor cores: bf16, dense, Dn + Dr = 192 and Dv = 128 (the model's widths) ----
//
// The same two passes with mma.sync m16n8k16 (bf16 × bf16 products, exact; f32 accumulators;
// cuda/ptx/mma.cuh). A block of 4 warps runs 64 consecutive queries of one head, a warp 16 of
// them (the MMA's rows), over tiles of 64 keys held in shared memory as bf16: S = Q·Kᵀ from the
// warp's Q fragments (in registers for the whole block) and the key tile; pass 0 folds each row's
// max and sum (the quad of lanes holding a row shares its max and adds the four partial sums at
// the end); pass 1 computes S again, rounds P = bf16(e^(s − m) / sum) as the SIMT kernel does,
// repacks it from the S accumulators into A fragments (the C and A fragment maps put the same
// (row, key) pairs in the same lane) and accumulates O += P·V with V transposed in shared memory.

constexpr int kMmaQSteps = 12;                    // (Dn + Dr) / 16: k-steps of S = Q·Kᵀ
constexpr int kMmaVTiles = 16;                    // Dv / 8: n-tiles of O = P·V
constexpr int kMmaDq = 16 * kMmaQSteps, kMmaDv = 8 * kMmaVTiles;
constexpr int kMmaWarps = 4;
constexpr int kMmaQueries = 16 * kMmaWarps;       // queries a block
constexpr int kMmaKeys = 64;                      // keys a tile
constexpr int kMmaKStride = kMmaDq + 8;           // padded rows: the fragment reads hit 32 different banks
constexpr int kMmaVStride = kMmaKeys + 8;

/** Two bf16 bit patterns in one register, `lo` in the low half (the fragments' element order). */
__device__ __forceinline__ uint32_t bf16Pair(uint16_t lo, uint16_t hi) { return uint32_t(lo) | uint32_t(hi) << 16; }
__device__ __forceinline__ uint16_t bf16Bits(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }

__global__ void __launch_bounds__(32 * kMmaWarps) mlaPrefillMmaKernel(MlaPrefillParams p) {
  __shared__ __align__(16) uint16_t kS[kMmaKeys * kMmaKStride];  // [key][Dq] the tile's keys: k_nope, then kPe
  __shared__ __align__(16) uint16_t vS[kMmaDv * kMmaVStride];    // [Dv][key] the tile's values, transposed
  __shared__ int warpLast[kMmaWarps];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tig = lane & 3;
  const int64_t T = p.tokens, H = p.heads, h = blockIdx.y, Dn = p.dn, Dr = p.dr, Dkv = p.dn + p.dv;
  const auto* q = static_cast<const uint16_t*>(p.q);
  const auto* kv = static_cast<const uint16_t*>(p.kv);
  const auto* kPe = static_cast<const uint16_t*>(p.kPe);
  for (int64_t t0 = int64_t(blockIdx.x) * kMmaQueries; t0 < T; t0 += int64_t(gridDim.x) * kMmaQueries) {
    // This lane's rows of the warp's 16: g and g + 8 (the C fragment's rows).
    int64_t rowT[2];
    int rowPos[2];
    DSN_UNROLL
    for (int ri = 0; ri < 2; ++ri) {
      rowT[ri] = t0 + warp * 16 + g + 8 * ri;
      const int32_t pos = rowT[ri] < T ? p.qPos[rowT[ri]] : -1;
      rowPos[ri] = pos >= 0 && pos < p.keys ? pos : -1;  // a bad qPos is raised by the check kernel
    }
    // A fragments of Q: register r holds row g + 8 (r & 1), columns 16 ks + 2 tig + 8 (r >> 1) and + 1.
    uint32_t qa[kMmaQSteps][4];
    DSN_UNROLL
    for (int ks = 0; ks < kMmaQSteps; ++ks)
      DSN_UNROLL
      for (int r = 0; r < 4; ++r) {
        const int64_t t = rowT[r & 1];
        const uint16_t* e = q + (t * H + h) * kMmaDq + 16 * ks + 2 * tig + 8 * (r >> 1);
        qa[ks][r] = t < T ? bf16Pair(e[0], e[1]) : 0u;
      }
    int last = rowPos[0] > rowPos[1] ? rowPos[0] : rowPos[1];
    for (int o = 16; o > 0; o >>= 1) {
      const int other = __shfl_xor_sync(0xffffffffu, last, o);
      last = other > last ? other : last;
    }
    if (lane == 0) warpLast[warp] = last;
    __syncthreads();
    for (int w = 0; w < kMmaWarps; ++w) last = warpLast[w] > last ? warpLast[w] : last;
    const int64_t n = int64_t(last) + 1;  // keys 0..n-1 are seen by some query of the block

    float m[2] = {kNegInf, kNegInf}, l[2] = {0.0f, 0.0f};
    float o[kMmaVTiles][4];
    DSN_UNROLL
    for (int vt = 0; vt < kMmaVTiles; ++vt)
      DSN_UNROLL
      for (int i = 0; i < 4; ++i) o[vt][i] = 0.0f;
    for (int pass = 0; pass < 2; ++pass) {
      for (int64_t k0 = 0; k0 < n; k0 += kMmaKeys) {
        __syncthreads();  // the previous tile has been read
        for (int e = tid; e < kMmaKeys * kMmaDq; e += 32 * kMmaWarps) {
          const int j = e / kMmaDq, d = e - j * kMmaDq;
          const int64_t s = k0 + j;
          uint16_t v = 0;
          if (s < n) v = d < Dn ? kv[(s * H + h) * Dkv + d] : kPe[s * Dr + (d - Dn)];
          kS[j * kMmaKStride + d] = v;
        }
        if (pass == 1)
          for (int e = tid; e < kMmaKeys * kMmaDv; e += 32 * kMmaWarps) {
            const int j = e / kMmaDv, c = e - j * kMmaDv;
            const int64_t s = k0 + j;
            vS[c * kMmaVStride + j] = s < n ? kv[(s * H + h) * Dkv + Dn + c] : uint16_t(0);
          }
        __syncthreads();

        // S of the warp's 16 rows × 64 keys: n-tile nt holds keys k0 + 8 nt + (2 tig, 2 tig + 1) in
        // c[0], c[1] (row g) and c[2], c[3] (row g + 8). B register r: key 8 nt + g, dims 16 ks + 2 tig + 8 r.
        float sc[kMmaKeys / 8][4];
        DSN_UNROLL
        for (int nt = 0; nt < kMmaKeys / 8; ++nt)
          DSN_UNROLL
          for (int i = 0; i < 4; ++i) sc[nt][i] = 0.0f;
        DSN_UNROLL
        for (int ks = 0; ks < kMmaQSteps; ++ks)
          DSN_UNROLL
          for (int nt = 0; nt < kMmaKeys / 8; ++nt) {
            const uint16_t* kr = kS + (8 * nt + g) * kMmaKStride + 16 * ks + 2 * tig;
            const uint32_t b[2] = {bf16Pair(kr[0], kr[1]), bf16Pair(kr[8], kr[9])};
            ptx::mma_m16n8k16_bf16(sc[nt], qa[ks], b, sc[nt]);
          }
        DSN_UNROLL
        for (int nt = 0; nt < kMmaKeys / 8; ++nt)
          DSN_UNROLL
          for (int i = 0; i < 4; ++i) {
            const int64_t key = k0 + 8 * nt + 2 * tig + (i & 1);
            const float dot = sc[nt][i];
            const float s = p.bf16Scores ? roundTo(DType::bf16, __fmul_rn(roundTo(DType::bf16, dot), p.scale)) : __fmul_rn(dot, p.scale);
            sc[nt][i] = key <= rowPos[i >> 1] ? s : kNegInf;
          }

        if (pass == 0) {
          DSN_UNROLL
          for (int ri = 0; ri < 2; ++ri) {
            float tileMax = kNegInf;
            DSN_UNROLL
            for (int nt = 0; nt < kMmaKeys / 8; ++nt)
              DSN_UNROLL
              for (int i = 2 * ri; i < 2 * ri + 2; ++i) tileMax = sc[nt][i] > tileMax ? sc[nt][i] : tileMax;
            for (int x = 1; x < 4; x <<= 1) {  // the quad's max
              const float other = __shfl_xor_sync(0xffffffffu, tileMax, x);
              tileMax = other > tileMax ? other : tileMax;
            }
            if (tileMax != kNegInf) {
              const float mNew = m[ri] > tileMax ? m[ri] : tileMax;
              float sum = m[ri] == kNegInf ? 0.0f : l[ri] * expf(m[ri] - mNew);
              DSN_UNROLL
              for (int nt = 0; nt < kMmaKeys / 8; ++nt)
                DSN_UNROLL
                for (int i = 2 * ri; i < 2 * ri + 2; ++i) sum += expf(sc[nt][i] - mNew);
              m[ri] = mNew;
              l[ri] = sum;
            }
          }
        } else {
          // P as A fragments of 16 keys (k-step j = n-tiles 2j, 2j + 1): registers
          // (row g, tile 2j), (row g + 8, tile 2j), (row g, tile 2j + 1), (row g + 8, tile 2j + 1).
          DSN_UNROLL
          for (int j = 0; j < kMmaKeys / 16; ++j) {
            uint16_t pb[2][4];
            DSN_UNROLL
            for (int half = 0; half < 2; ++half)
              DSN_UNROLL
              for (int i = 0; i < 4; ++i) {
                const float s = sc[2 * j + half][i], mr = m[i >> 1], lr = l[i >> 1];
                pb[half][i] = bf16Bits(s == kNegInf || !(lr > 0.0f) ? 0.0f : expf(s - mr) / lr);
              }
            const uint32_t a[4] = {bf16Pair(pb[0][0], pb[0][1]), bf16Pair(pb[0][2], pb[0][3]), bf16Pair(pb[1][0], pb[1][1]), bf16Pair(pb[1][2], pb[1][3])};
            DSN_UNROLL
            for (int vt = 0; vt < kMmaVTiles; ++vt) {  // B register r: column 8 vt + g, keys 16 j + 2 tig + 8 r
              const uint16_t* vr = vS + (8 * vt + g) * kMmaVStride + 16 * j + 2 * tig;
              const uint32_t b[2] = {bf16Pair(vr[0], vr[1]), bf16Pair(vr[8], vr[9])};
              ptx::mma_m16n8k16_bf16(o[vt], a, b, o[vt]);
            }
          }
        }
      }
      if (pass == 0)
        DSN_UNROLL
        for (int ri = 0; ri < 2; ++ri)
          for (int x = 1; x < 4; x <<= 1) l[ri] += __shfl_xor_sync(0xffffffffu, l[ri], x);  // the quad's sum
    }

    auto* out = static_cast<uint16_t*>(p.out);
    DSN_UNROLL
    for (int vt = 0; vt < kMmaVTiles; ++vt)
      DSN_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int64_t t = rowT[i >> 1];
        if (t < T) out[(t * H + h) * kMmaDv + 8 * vt + 2 * tig + (i & 1)] = bf16Bits(o[vt][i]);
      }
    __syncthreads();  // warpLast is written again by the next group
  }
}

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

std::string mlaPrefillLaunch(const MlaPrefillParams& p, const CudaLaunch& l) {
  cudaStream_t stream = static_cast<cudaStream_t>(l.stream);
  if (p.tokens == 0) return "";
  mlaPrefillCheckKernel<<<gridOf(p.tokens), 128, 0, stream>>>(p, l.error, l.op);
  std::string e = launchError();
  if (!e.empty() || p.heads == 0) return e;

  if (p.type == DType::bf16 && !p.indices && p.dn + p.dr == kMmaDq && p.dv == kMmaDv && p.heads <= 65535) {
    const int64_t groups = (p.tokens + kMmaQueries - 1) / kMmaQueries;
    const dim3 grid(unsigned(std::min<int64_t>(groups, INT_MAX)), unsigned(p.heads));
    mlaPrefillMmaKernel<<<grid, 32 * kMmaWarps, 0, stream>>>(p);
    return launchError();
  }

  PrefillArgs a;
  a.p = p;
  if (p.indices) {
    int64_t pad = 1;
    while (pad < p.topk) pad <<= 1;
    a.listPad = int(pad);
  }
  // Dense: up to 16 consecutive queries of one head share each key tile (causal neighbours see
  // nearly the same keys); with fewer queries, more heads fill the block's rows. Index lists: one
  // query (the queries' lists differ) and up to 16 heads, which share the RoPE keys.
  constexpr size_t kMaxSmem = 227 * 1024;
  int64_t queries = p.indices ? 1 : std::min<int64_t>(p.tokens, kPrefillRows);
  int64_t heads = std::max<int64_t>(1, std::min<int64_t>(p.heads, kPrefillRows / queries));
  while (heads > 1 && prefillSmemBytes(p, queries, heads, a.listPad) > kMaxSmem) --heads;
  while (queries > 1 && prefillSmemBytes(p, queries, heads, a.listPad) > kMaxSmem) --queries;
  const size_t smem = prefillSmemBytes(p, queries, heads, a.listPad);
  if (smem > kMaxSmem)
    return "mlaPrefill: Dn + Dr = " + std::to_string(p.dn + p.dr) + ", Dv = " + std::to_string(p.dv) +
           (p.indices ? " with " + std::to_string(p.topk) + " indices a query" : "") + " needs " + std::to_string(smem) +
           " bytes of shared memory a block, more than 227 KiB";
  a.queries = int(queries);
  a.heads = int(heads);
  const int64_t groups = (p.tokens + queries - 1) / queries, headGroups = (p.heads + heads - 1) / heads;
  if (headGroups > 65535) return "mlaPrefill: too many heads for one grid";
  const dim3 grid(unsigned(std::min<int64_t>(groups, INT_MAX)), unsigned(headGroups));
  if (smem > 48 * 1024) {
    e = errorText(cudaFuncSetAttribute(mlaPrefillKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    if (!e.empty()) return e;
  }
  mlaPrefillKernel<<<grid, kThreads, smem, stream>>>(a);
  return launchError();
}

}  // namespace dsn::cuda
