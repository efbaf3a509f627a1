#include <cuda_runtime.h>

#include "convert.cuh"
#include "fp8.cuh"
#include "launch_check.cuh"
#include "norm.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 256;

/** Elements [c, c + 8) ∩ [0, dim) of the row at `base` as f32 (zeros past dim): one 128-bit access
 *  (load8AsF32) when `vectors`, else element by element. Same values either way. */
__device__ __forceinline__ void loadGroup(const void* x, DType t, int64_t base, int64_t c, int64_t dim, bool vectors, float (&v)[kVecElems]) {
  if (vectors) return load8AsF32(x, t, base + c, v);
  DSN_UNROLL
  for (int j = 0; j < kVecElems; ++j) v[j] = c + j < dim ? loadAsF32(x, t, base + c + j) : 0.0f;
}
/** Stores the elements [c, c + 8) ∩ [0, dim) of v to the row at `base`, as loadGroup reads them. */
__device__ __forceinline__ void storeGroup(void* y, DType t, int64_t base, int64_t c, int64_t dim, bool vectors, const float (&v)[kVecElems]) {
  if (vectors) return store8FromF32(y, t, base + c, v);
  DSN_UNROLL
  for (int j = 0; j < kVecElems; ++j)
    if (c + j < dim) storeFromF32(y, t, base + c + j, v[j]);
}

/** The group at c of rmsNorm's input: x, plus residual (in f32) when there is one. */
__device__ __forceinline__ void loadInput(const RmsNormParams& p, int64_t base, int64_t c, bool vectors, float (&v)[kVecElems]) {
  loadGroup(p.x, p.xType, base, c, p.dim, vectors, v);
  if (!p.residual) return;
  float r[kVecElems];
  loadGroup(p.residual, p.xType, base, c, p.dim, vectors, r);
  DSN_UNROLL
  for (int j = 0; j < kVecElems; ++j) v[j] += r[j];
}

/** One block a row. Thread t takes the row's groups of 8 elements t, t + 256, …, with 128-bit loads
 *  and stores when `vectors` (rmsNormLaunch: dim a multiple of 8 and every pointer 16-byte aligned),
 *  else element by element in the same groups, so both ways sum the squares in the same order: the
 *  same bits. */
__global__ void rmsNormKernel(RmsNormParams p, bool vectors) {
  const int64_t row = blockIdx.x;
  const int64_t base = row * p.dim;
  __shared__ float partial[kThreads / 32];
  float ss = 0.f;
  for (int64_t c = int64_t(threadIdx.x) * kVecElems; c < p.dim; c += kThreads * kVecElems) {
    float v[kVecElems];
    loadInput(p, base, c, vectors, v);
    if (p.residual) storeGroup(p.residualOut, p.xType, base, c, p.dim, vectors, v);
    DSN_UNROLL
    for (int j = 0; j < kVecElems; ++j) ss += v[j] * v[j];  // past dim: + 0, exact
  }
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < kThreads / 32 ? partial[threadIdx.x] : 0.f;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (threadIdx.x == 0) partial[0] = v;
  }
  __syncthreads();
  const float inv = rsqrtf(partial[0] / float(p.dim) + p.eps);
  for (int64_t c = int64_t(threadIdx.x) * kVecElems; c < p.dim; c += kThreads * kVecElems) {
    // Re-read the input: rows are short and in L2; keeps registers free for any dim.
    float v[kVecElems], wv[kVecElems];
    loadInput(p, base, c, vectors, v);
    loadGroup(p.weight, p.wType, 0, c, p.dim, vectors, wv);
    DSN_UNROLL
    for (int j = 0; j < kVecElems; ++j) v[j] = wv[j] * (v[j] * inv);
    storeGroup(p.out, p.xType, base, c, p.dim, vectors, v);
  }
  if (p.codes) {
    // The fused actQuant of the row just written (read back as stored, so rounded to xType): one
    // warp per group of 128.
    static_assert(kQuantBlock == 128, "warpQuantGroup128 quantises groups of 128");
    __syncthreads();
    const int64_t groups = p.dim / kQuantBlock;
    const int lane = threadIdx.x & 31;
    for (int64_t g = threadIdx.x >> 5; g < groups; g += kThreads / 32) {
      const int64_t at = base + g * kQuantBlock;
      float v[4];
      for (int j = 0; j < 4; ++j) v[j] = loadAsF32(p.out, p.xType, at + lane + 32 * j);
      warpQuantGroup128(v, p.codes + at, p.scales + row * groups + g, p.ue8m0);
    }
  }
}

/**
 * LayerNorm with cpu::layerNorm's arithmetic, bit for bit: the mean and the variance each from 8
 * partial sums (partial k adds elements k, k + 8, ... in order, as the CPU's s[i % 8]) folded in the
 * CPU's order; rstd = 1 / sqrt(var + eps); out = ((x - mean) · rstd) · w + b, each step rounded
 * (b = 0 without a bias, as on the CPU). Launch: grid min(rows, 2^16) blocks of 256 threads,
 * grid-stride over rows. With `vectors` (layerNormLaunch: dim a multiple of 8, every pointer 16-byte
 * aligned) thread 0 keeps all 8 partial sums and reads the row 8 elements at a time with 128-bit
 * loads (the same 8 chains of additions), and the output pass moves groups of 8; else threads 0..7
 * each sum one partial element by element. The sums are sequential: meant for the model's short rows
 * (the indexer's 128), not for rows of thousands.
 */
__global__ void layerNormKernel(LayerNormParams p, bool vectors) {
  __shared__ float partial[8];
  static_assert(kVecElems == 8, "a vector group holds one element of each of the 8 partial sums");
  const int64_t D = p.dim;
  auto fold = [&]() { return __fadd_rn(__fadd_rn(__fadd_rn(partial[0], partial[4]), __fadd_rn(partial[2], partial[6])), __fadd_rn(__fadd_rn(partial[1], partial[5]), __fadd_rn(partial[3], partial[7]))); };
  // The 8 partial sums of f(x) over the row at base, into partial[] (CPU order: element i into i % 8).
  auto partialSums = [&](int64_t base, auto f) {
    if (vectors) {
      if (threadIdx.x == 0) {
        float s[kVecElems] = {};
        for (int64_t c = 0; c < D; c += kVecElems) {
          float v[kVecElems];
          load8AsF32(p.x, p.xType, base + c, v);
          DSN_UNROLL
          for (int j = 0; j < kVecElems; ++j) s[j] = __fadd_rn(s[j], f(v[j]));
        }
        DSN_UNROLL
        for (int j = 0; j < kVecElems; ++j) partial[j] = s[j];
      }
    } else if (threadIdx.x < 8) {
      float s = 0.0f;
      for (int64_t i = threadIdx.x; i < D; i += 8) s = __fadd_rn(s, f(loadAsF32(p.x, p.xType, base + i)));
      partial[threadIdx.x] = s;
    }
  };
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const int64_t base = row * D;
    partialSums(base, [](float v) { return v; });
    __syncthreads();
    const float mean = fold() / float(D);
    __syncthreads();
    partialSums(base, [mean](float v) {
      const float d = __fadd_rn(v, -mean);
      return __fmul_rn(d, d);
    });
    __syncthreads();
    const float var = fold() / float(D);
    const float rstd = 1.0f / sqrtf(__fadd_rn(var, p.eps));
    const auto normed = [&](float x, float w, float b) { return __fadd_rn(__fmul_rn(__fmul_rn(__fadd_rn(x, -mean), rstd), w), b); };
    if (vectors) {
      for (int64_t c = int64_t(threadIdx.x) * kVecElems; c < D; c += int64_t(blockDim.x) * kVecElems) {
        float x[kVecElems], w[kVecElems], b[kVecElems] = {};
        load8AsF32(p.x, p.xType, base + c, x);
        load8AsF32(p.weight, p.wType, c, w);
        if (p.bias) load8AsF32(p.bias, p.bType, c, b);
        DSN_UNROLL
        for (int j = 0; j < kVecElems; ++j) x[j] = normed(x[j], w[j], b[j]);
        store8FromF32(p.out, p.xType, base + c, x);
      }
    } else {
      for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        const float b = p.bias ? loadAsF32(p.bias, p.bType, i) : 0.0f;
        storeFromF32(p.out, p.xType, base + i, normed(loadAsF32(p.x, p.xType, base + i), loadAsF32(p.weight, p.wType, i), b));
      }
    }
    __syncthreads();  // partial is reused by the next row
  }
}

}  // namespace

std::string layerNormLaunch(const LayerNormParams& p, const CudaLaunch& l) {
  if (p.rows == 0) return "";
  const bool vectors = p.dim % kVecElems == 0 && vectorAligned(p.x) && vectorAligned(p.weight) && vectorAligned(p.bias) && vectorAligned(p.out);
  layerNormKernel<<<unsigned(p.rows < 65536 ? p.rows : 65536), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, vectors);
  return launchError();
}

std::string rmsNormLaunch(const RmsNormParams& p, const CudaLaunch& l) {
  if (p.rows == 0) return "";
  if (p.rows > 0x7fffffff) return "too many rows for one launch";
  if (p.codes && (p.dim % kQuantBlock != 0 || !p.scales)) return "rmsNorm: the fused actQuant needs dim a multiple of 128 and scales";
  const bool vectors = p.dim % kVecElems == 0 && vectorAligned(p.x) && vectorAligned(p.residual) && vectorAligned(p.weight) && vectorAligned(p.out) &&
                       vectorAligned(p.residualOut);
  rmsNormKernel<<<unsigned(p.rows), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p, vectors);
  return launchError();
}

}  // namespace dsn::cuda
