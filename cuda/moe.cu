#include <cuda_runtime.h>

#include <limits>

#include "convert.cuh"
#include "device_error.cuh"
#include "fp8.cuh"
#include "launch_check.cuh"
#include "math.cuh"
#include "moe.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

unsigned blocksFor(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

// ---- moeRoute: one block per token; scores in parallel, the choice by thread 0 ----
// Shared: scores [E] (unbiased) and chosen [E] (biased, NaN as -inf, -0 as +0), then group scores.

__global__ void moeRouteKernel(MoeRouteParams p) {
  extern __shared__ float smem[];
  const int64_t E = p.experts, G = p.nGroups, gs = E / G;
  float* scores = smem;
  float* chosen = smem + E;
  float* groupScore = smem + 2 * E;
  char* keep = reinterpret_cast<char*>(smem + 2 * E + G);
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    const float* logits = p.logits + t * E;
    if (!p.softmax) {
      for (int64_t e = threadIdx.x; e < E; e += blockDim.x) scores[e] = sigmoidRef(logits[e]);
    } else {
      // The CPU's order: the max (exact), e^(x - max), the sum in 16 interleaved partials then a fixed fold.
      for (int64_t e = threadIdx.x; e < E; e += blockDim.x) chosen[e] = logits[e];
      __syncthreads();
      if (threadIdx.x == 0) {
        float m = kNegInf;
        for (int64_t e = 0; e < E; ++e) m = chosen[e] > m ? chosen[e] : m;
        groupScore[0] = m;
      }
      __syncthreads();
      const float shift = groupScore[0];
      for (int64_t e = threadIdx.x; e < E; e += blockDim.x) scores[e] = expRef(__fadd_rn(logits[e], -shift));
      __syncthreads();
      if (threadIdx.x == 0) {
        // Partial i sums scores[i], scores[i + 16], … in order (the CPU's s[e % 16] += x[e]); the
        // loops over i are unrolled so the partials stay in registers.
        float s[16];
        DSN_UNROLL
        for (int i = 0; i < 16; ++i) {
          float v = 0.0f;
          for (int64_t e = i; e < E; e += 16) v = __fadd_rn(v, scores[e]);
          s[i] = v;
        }
        DSN_UNROLL
        for (int i = 0; i < 8; ++i) s[i] = __fadd_rn(s[i], s[i + 8]);  // the CPU's fixed fold: 8, 4, 2, 1
        DSN_UNROLL
        for (int i = 0; i < 4; ++i) s[i] = __fadd_rn(s[i], s[i + 4]);
        s[0] = __fadd_rn(s[0], s[2]);
        s[1] = __fadd_rn(s[1], s[3]);
        s[0] = __fadd_rn(s[0], s[1]);
        groupScore[0] = s[0];
      }
      __syncthreads();
      const float sum = groupScore[0];
      for (int64_t e = threadIdx.x; e < E; e += blockDim.x) scores[e] = scores[e] / sum;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
      const float c = __fadd_rn(scores[e], p.bias ? p.bias[e] : 0.0f);
      chosen[e] = __fadd_rn(c == c ? c : kNegInf, 0.0f);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      if (G > 1) {
        for (int64_t g = 0; g < G; ++g) {
          float a = kNegInf, b = kNegInf;  // the top two of the group
          for (int64_t e = g * gs; e < (g + 1) * gs; ++e) {
            const float x = chosen[e];
            const float lo = x < a ? x : a;
            a = x > a ? x : a;
            b = lo > b ? lo : b;
          }
          groupScore[g] = p.bias ? __fadd_rn(a, b) : a;
          keep[g] = 0;
        }
        for (int k = 0; k < p.topkGroups; ++k) {  // ties: the lower group
          int64_t best = -1;
          for (int64_t g = 0; g < G; ++g)
            if (!keep[g] && (best < 0 || groupScore[g] > groupScore[best])) best = g;
          keep[best] = 1;
        }
      }
      // The k largest eligible chosen scores, descending, ties to the lower id (insertion).
      int32_t* ids = p.ids + t * p.topk;
      float* w = p.weights + t * p.topk;  // holds the chosen values while selecting
      int size = 0;
      for (int64_t g = 0; g < G; ++g) {
        if (G > 1 && !keep[g]) continue;
        for (int64_t e = g * gs; e < (g + 1) * gs; ++e) {
          const float v = chosen[e];
          if (size == p.topk) {
            if (!(v > w[size - 1])) continue;
            --size;
          }
          int pos = size++;
          while (pos > 0 && w[pos - 1] < v) {
            w[pos] = w[pos - 1];
            ids[pos] = ids[pos - 1];
            --pos;
          }
          w[pos] = v;
          ids[pos] = int32_t(e);
        }
      }
      for (int j = 0; j < p.topk; ++j) w[j] = scores[ids[j]];
      if (p.normalize) {
        float sum = 0.0f;
        for (int j = 0; j < p.topk; ++j) sum = __fadd_rn(sum, w[j]);
        for (int j = 0; j < p.topk; ++j) w[j] = w[j] / sum;
      }
      for (int j = 0; j < p.topk; ++j) w[j] = __fmul_rn(w[j], p.routeScale);
    }
    __syncthreads();
  }
}

// ---- moeDispatch: one block; a histogram, a scan, then a stable placement by thread 0 ----
// The placement is serial (tokens·k steps): dispatch moves a few int32 per slot, far below the GEMMs
// around it. Bad ids set the error word and leave the outputs unwritten.

__global__ void moeDispatchKernel(MoeDispatchParams p, DeviceErrorWord* err, uint32_t op) {
  extern __shared__ int32_t next[];  // [experts]
  const int64_t S = p.tokens * p.k, E = p.experts;
  __shared__ int bad;
  if (threadIdx.x == 0) bad = 0;
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) next[e] = 0;
  __syncthreads();
  for (int64_t s = threadIdx.x; s < S; s += blockDim.x) {
    const int32_t id = p.ids[s];
    if (id < 0 || id >= E) {
      raiseDeviceError(err, op, DeviceErrorWhat::expertIdOutOfRange, id, E);
      atomicExch(&bad, 1);
    } else {
      atomicAdd(&next[id], 1);
    }
  }
  __syncthreads();
  if (bad) return;
  if (threadIdx.x == 0) {
    int32_t row = 0;
    for (int64_t e = 0; e < E; ++e) {
      p.offsets[e] = row;
      const int32_t n = next[e];
      next[e] = row;
      row += n;
    }
    p.offsets[E] = row;
    for (int64_t s = 0; s < S; ++s) {
      const int32_t r = next[p.ids[s]]++;
      p.tokenOfRow[r] = int32_t(s / p.k);
      p.rowOfSlot[s] = r;
    }
  }
}

// ---- gatherRows / embedding: one block per output row ----

__global__ void gatherRowsKernel(GatherRowsParams p, DeviceErrorWord* err, uint32_t op) {
  for (int64_t r = blockIdx.x; r < p.count; r += gridDim.x) {
    const int32_t i = p.index[r];
    if (i < 0 || i >= p.rows) {
      if (threadIdx.x == 0) raiseDeviceError(err, op, DeviceErrorWhat::indexOutOfRange, i, p.rows);
      continue;
    }
    const unsigned char* src = static_cast<const unsigned char*>(p.x) + int64_t(i) * p.rowBytes;
    unsigned char* dst = static_cast<unsigned char*>(p.out) + r * p.rowBytes;
    if (p.rowBytes % 4 == 0 && (reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) % 4 == 0) {
      for (int64_t b = threadIdx.x; b < p.rowBytes / 4; b += blockDim.x)
        reinterpret_cast<uint32_t*>(dst)[b] = reinterpret_cast<const uint32_t*>(src)[b];
    } else {
      for (int64_t b = threadIdx.x; b < p.rowBytes; b += blockDim.x) dst[b] = src[b];
    }
  }
}

__global__ void embeddingKernel(EmbeddingParams p, DeviceErrorWord* err, uint32_t op) {
  for (int64_t t = blockIdx.x; t < p.count; t += gridDim.x) {
    const int32_t id = p.ids[t];
    if (id < 0 || id >= p.vocab) {
      if (threadIdx.x == 0) raiseDeviceError(err, op, DeviceErrorWhat::tokenIdOutOfRange, id, p.vocab);
      continue;
    }
    for (int64_t d = threadIdx.x; d < p.dim; d += blockDim.x)
      storeFromF32(p.out, p.outType, t * p.dim + d, loadAsF32(p.table, p.tableType, int64_t(id) * p.dim + d));
  }
}

// ---- swiglu: element-wise over [rows, inter] ----

__global__ void swigluKernel(SwigluParams p) {
  const int64_t n = p.rows * p.inter;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / p.inter, c = i % p.inter;
    const float g = loadAsF32(p.gateUp, p.inType, r * 2 * p.inter + c);
    const float u = loadAsF32(p.gateUp, p.inType, r * 2 * p.inter + p.inter + c);
    storeFromF32(p.out, p.outType, i, __fmul_rn(siluRef(g), u));
  }
}

/** swiglu with the fused actQuant: one warp per (row, group of 128); each lane writes its 4 outputs,
 *  reads them back as stored (rounded to outType, its own writes) and the warp quantises the group. */
__global__ void swigluQuantKernel(SwigluParams p) {
  static_assert(kQuantBlock == 128, "warpQuantGroup128 quantises groups of 128");
  const int64_t groups = p.inter / kQuantBlock, warps = p.rows * groups;
  const int lane = threadIdx.x & 31;
  for (int64_t wg = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; wg < warps; wg += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const int64_t r = wg / groups, c0 = (wg % groups) * kQuantBlock;
    float v[4];
    for (int j = 0; j < 4; ++j) {
      const int64_t c = c0 + lane + 32 * j;
      const float g = loadAsF32(p.gateUp, p.inType, r * 2 * p.inter + c);
      const float u = loadAsF32(p.gateUp, p.inType, r * 2 * p.inter + p.inter + c);
      storeFromF32(p.out, p.outType, r * p.inter + c, __fmul_rn(siluRef(g), u));
      v[j] = loadAsF32(p.out, p.outType, r * p.inter + c);
    }
    warpQuantGroup128(v, p.codes + r * p.inter + c0, p.scales + wg, p.ue8m0);
  }
}

// ---- moeCombine: one block per token; each thread owns columns; the k terms in ascending expert id ----

__global__ void moeCombineKernel(MoeCombineParams p, DeviceErrorWord* err, uint32_t op) {
  extern __shared__ int32_t order[];  // [k]: the token's choices in ascending expert id (then choice)
  __shared__ int bad;
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    if (threadIdx.x == 0) {
      bad = 0;
      for (int64_t j = 0; j < p.k; ++j) {
        const int32_t row = p.rowOfSlot[t * p.k + j];
        if (row < 0 || row >= p.expertRows) {
          raiseDeviceError(err, op, DeviceErrorWhat::indexOutOfRange, row, p.expertRows);
          bad = 1;
        }
        int64_t pos = j;  // insertion: stable in the choice index
        while (pos > 0 && p.ids[t * p.k + order[pos - 1]] > p.ids[t * p.k + j]) {
          order[pos] = order[pos - 1];
          --pos;
        }
        order[pos] = int32_t(j);
      }
    }
    __syncthreads();
    if (!bad) {
      for (int64_t d = threadIdx.x; d < p.dim; d += blockDim.x) {
        float acc = 0.0f;
        for (int64_t jj = 0; jj < p.k; ++jj) {
          const int64_t j = order[jj];
          const float v = loadAsF32(p.expertOut, p.eType, int64_t(p.rowOfSlot[t * p.k + j]) * p.dim + d);
          acc = __fadd_rn(acc, __fmul_rn(p.weights[t * p.k + j], v));
        }
        if (p.shared) acc = __fadd_rn(acc, loadAsF32(p.shared, p.sType, t * p.dim + d));
        storeFromF32(p.out, p.outType, t * p.dim + d, acc);
      }
    }
    __syncthreads();
  }
}

}  // namespace

std::string moeRouteLaunch(const MoeRouteParams& p, const CudaLaunch& l) {
  if (p.tokens == 0) return "";
  const size_t smem = size_t(2 * p.experts + p.nGroups) * sizeof(float) + size_t(p.nGroups);
  if (smem > 48 * 1024) return "moeRoute: too many experts for one block's shared memory";
  moeRouteKernel<<<blocksFor(p.tokens, 1), kThreads, smem, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

std::string moeDispatchLaunch(const MoeDispatchParams& p, const CudaLaunch& l) {
  const size_t smem = size_t(p.experts) * sizeof(int32_t);
  if (smem > 48 * 1024) return "moeDispatch: too many experts for one block's shared memory";
  moeDispatchKernel<<<1, kThreads, smem, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

std::string gatherRowsLaunch(const GatherRowsParams& p, const CudaLaunch& l) {
  if (p.count == 0 || p.rowBytes == 0) return "";
  gatherRowsKernel<<<blocksFor(p.count, 1), 128, 0, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

std::string embeddingLaunch(const EmbeddingParams& p, const CudaLaunch& l) {
  if (p.count == 0 || p.dim == 0) return "";
  embeddingKernel<<<blocksFor(p.count, 1), 128, 0, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

std::string swigluLaunch(const SwigluParams& p, const CudaLaunch& l) {
  if (p.rows == 0 || p.inter == 0) return "";
  if (p.codes) {
    if (p.inter % kQuantBlock != 0 || !p.scales) return "swiglu: the fused actQuant needs inter a multiple of 128 and scales";
    static_assert(kThreads % 32 == 0, "whole warps");
    swigluQuantKernel<<<blocksFor(p.rows * (p.inter / kQuantBlock) * 32), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  } else {
    swigluKernel<<<blocksFor(p.rows * p.inter), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  }
  return launchError();
}

std::string moeCombineLaunch(const MoeCombineParams& p, const CudaLaunch& l) {
  if (p.tokens == 0 || p.dim == 0) return "";
  if (p.k > 4096) return "moeCombine: more than 4096 choices a token";
  moeCombineKernel<<<blocksFor(p.tokens, 1), 128, size_t(p.k > 0 ? p.k : 1) * sizeof(int32_t), static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

}  // namespace dsn::cuda
