// topK on CUDA: radix select, then a gather that takes the lowest indices among ties (cuda/topk.cuh).
#include <cuda_runtime.h>

#include "block_sort.cuh"
#include "device_error.cuh"
#include "launch_check.cuh"
#include "topk.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRadixBits = 8, kBins = 1 << kRadixBits;

/** A key whose unsigned order is the scores' order: -0 as +0, every NaN the largest key. */
__device__ __forceinline__ uint32_t orderKey(float f) {
  if (f != f) return 0xffffffffu;
  uint32_t b = __float_as_uint(f);
  if (b == 0x80000000u) b = 0;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/** A selected entry: its key, then the complement of its index, so that sorting descending lists
 *  higher scores first and, among equal scores, lower indices first. 0 (no real key is 0) pads. */
__device__ __forceinline__ unsigned long long packEntry(uint32_t key, int64_t i) {
  return (static_cast<unsigned long long>(key) << 32) | static_cast<unsigned long long>(0xffffffffu - uint32_t(i));
}

__global__ void __launch_bounds__(kThreads) topKKernel(TopKParams p, int pad, DeviceErrorWord* err, uint32_t op) {
  extern __shared__ unsigned long long chosen[];  // [pad]
  __shared__ uint32_t hist[kBins];
  __shared__ uint32_t threshold;      // the bits of the k-th largest key found so far
  __shared__ uint32_t thresholdMask;  // which bits those are
  __shared__ int need;                            // entries equal to the threshold still to take
  __shared__ int count;                           // entries in chosen
  __shared__ int eqSeen;                          // entries equal to the threshold before this tile
  __shared__ int warpEq[kWarps];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int64_t t = blockIdx.x; t < p.rows; t += gridDim.x) {
    const int64_t n = p.lengths ? p.lengths[t] : p.cols;
    int32_t* out = p.indices + t * p.k;
    if (n < 0 || n > p.cols) {
      if (tid == 0) raiseDeviceError(err, op, DeviceErrorWhat::offsetOutOfRange, n, p.cols + 1);
      continue;
    }
    const float* row = p.scores + t * p.cols;
    const int64_t take = n < p.k ? n : p.k;
    if (take > 0) {
      if (tid == 0) {
        threshold = 0;
        thresholdMask = 0;
        need = int(take);
      }
      // The k-th largest key, 8 bits at a time from the top: need is its rank among the keys that
      // share the bits found so far.
      for (int shift = 32 - kRadixBits; shift >= 0; shift -= kRadixBits) {
        for (int b = tid; b < kBins; b += kThreads) hist[b] = 0;
        __syncthreads();
        const uint32_t want = threshold, mask = thresholdMask;
        for (int64_t i = tid; i < n; i += kThreads) {
          const uint32_t key = orderKey(row[i]);
          if ((key & mask) == want) atomicAdd(&hist[(key >> shift) & (kBins - 1)], 1u);
        }
        __syncthreads();
        if (tid == 0) {
          int above = 0;
          for (int b = kBins - 1; b >= 0; --b) {
            if (above + int(hist[b]) >= need) {
              threshold |= uint32_t(b) << shift;
              thresholdMask |= uint32_t(kBins - 1) << shift;
              need -= above;
              break;
            }
            above += int(hist[b]);
          }
          count = 0;
          eqSeen = 0;
        }
        __syncthreads();
      }
      // Everything above the threshold; of the entries equal to it, the first `need` in index order.
      const uint32_t thr = threshold;
      for (int64_t base = 0; base < n; base += kThreads) {
        const int64_t i = base + tid;
        const uint32_t key = i < n ? orderKey(row[i]) : 0u;
        const bool eq = i < n && key == thr;
        if (i < n && key > thr) chosen[atomicAdd(&count, 1)] = packEntry(key, i);
        const unsigned ballot = __ballot_sync(0xffffffffu, eq);
        if (lane == 0) warpEq[warp] = __popc(ballot);
        __syncthreads();
        if (eq) {
          int rank = eqSeen + __popc(ballot & ((1u << lane) - 1u));
          for (int w = 0; w < warp; ++w) rank += warpEq[w];
          if (rank < need) chosen[atomicAdd(&count, 1)] = packEntry(key, i);
        }
        __syncthreads();
        if (tid == 0)
          for (int w = 0; w < kWarps; ++w) eqSeen += warpEq[w];
        __syncthreads();
      }
      // List them: bitonic sort, descending.
      for (int i = int(take) + tid; i < pad; i += kThreads) chosen[i] = 0;
      __syncthreads();
      blockBitonicSort</*Descending=*/true>(chosen, pad);
      for (int64_t j = tid; j < take; j += kThreads) out[j] = int32_t(0xffffffffu - uint32_t(chosen[j] & 0xffffffffu));
    }
    for (int64_t j = take + tid; j < p.k; j += kThreads) out[j] = -1;
    __syncthreads();
  }
}

}  // namespace

std::string topKLaunch(const TopKParams& p, const CudaLaunch& l) {
  if (p.rows == 0) return "";
  if (p.k > kTopKMaxK) return "topK: k = " + std::to_string(p.k) + " is more than the CUDA kernel's " + std::to_string(kTopKMaxK);
  if (p.cols > 0x7fffffff) return "topK: rows of more than 2^31 - 1 scores";
  int pad = 1;
  while (pad < p.k) pad <<= 1;
  const size_t smem = size_t(pad) * sizeof(unsigned long long);
  if (smem > 48 * 1024) {
    const std::string e = errorText(cudaFuncSetAttribute(topKKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    if (!e.empty()) return e;
  }
  const unsigned grid = unsigned(p.rows < 65535 ? p.rows : 65535);
  topKKernel<<<grid, kThreads, smem, static_cast<cudaStream_t>(l.stream)>>>(p, pad, l.error, l.op);
  return launchError();
}

}  // namespace dsn::cuda
