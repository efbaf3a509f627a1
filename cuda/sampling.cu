// Token selection on CUDA (cuda/sampling.cuh): argmax, and the seeded draw of sample / sampleRows with
// the CPU's contract (native/cpu/sampling.cc), one block per row, the logits never leaving the device.
#include <cuda_runtime.h>

#include <cstdint>

#include "launch_check.cuh"
#include "math.cuh"
#include "sampling.cuh"

namespace dsn::cuda {
namespace {

constexpr int kThreads = 256;          // argmax
constexpr int kSampleThreads = 512;    // sample / sampleRows: one block per row
constexpr int kSampleWarps = kSampleThreads / 32;
constexpr int kFan = 16;               // thresholds tried per pass of a prefix search (4 bits a pass)
constexpr int kMaxTopLogprobs = 1024;  // native/ops/sampling.cc bounds topLogprobs by this
constexpr int32_t kNone = 0x7fffffff;  // no value above -inf seen yet: loses every tie, becomes 0
static_assert(kSampleThreads % 32 == 0, "whole warps");

/** (v, i) replaces (best, at) when larger, or equal with a lower index; NaN never does (v > best is false). */
__device__ __forceinline__ void better(float v, int32_t i, float& best, int32_t& at) {
  if (v > best || (v == best && i < at)) {
    best = v;
    at = i;
  }
}

/**
 * cpu::argmax of one row by the whole block: each thread keeps the first best of its stride (strict
 * >, so NaN and -inf are never taken), then the warps and the block merge by (value desc, index asc).
 * Every thread returns the first index of the row's maximum (0 when no value is above -inf).
 * `warpBest` / `warpAt` hold blockDim.x / 32 entries; the call ends with a barrier.
 */
__device__ int32_t blockArgmax(const float* x, int64_t n, float* warpBest, int32_t* warpAt) {
  float best = -__int_as_float(0x7f800000);  // -inf
  int32_t at = kNone;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    if (x[i] > best) {
      best = x[i];
      at = int32_t(i);
    }
  for (int off = 16; off > 0; off >>= 1) better(__shfl_xor_sync(0xffffffffu, best, off), __shfl_xor_sync(0xffffffffu, at, off), best, at);
  if ((threadIdx.x & 31) == 0) {
    warpBest[threadIdx.x >> 5] = best;
    warpAt[threadIdx.x >> 5] = at;
  }
  __syncthreads();
  best = warpBest[0];
  at = warpAt[0];
  for (unsigned w = 1; w < blockDim.x / 32; ++w) better(warpBest[w], warpAt[w], best, at);
  __syncthreads();  // warpBest / warpAt may be reused at once
  return at == kNone ? 0 : at;
}

/** Launch: grid min(rows, 2^16) blocks of 256 threads, grid-stride over rows. */
__global__ void argmaxKernel(ArgmaxParams p) {
  __shared__ float warpBest[kThreads / 32];
  __shared__ int32_t warpAt[kThreads / 32];
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const int32_t at = blockArgmax(p.logits + r * p.vocab, p.vocab, warpBest, warpAt);
    if (threadIdx.x == 0) p.out[r] = at;
  }
}

// ------------------------------------------------------------------------------------------------
// sample / sampleRows
//
// Every set the CPU builds by sorting (the topK largest weights, the topP prefix, the N largest
// logits) is a prefix of one total order, (key desc, id asc), where the key is a 32-bit unsigned
// image of the value. A prefix is found without sorting: the largest key threshold whose prefix still
// measures (counts, or weighs) at least the target, 16 thresholds per pass over the row, then the
// same search over the ids tied at that key. Counts are exact, so topK and the top-N set are the
// CPU's; masses are f64 sums in a fixed order (per thread in stride order, then the warps in order),
// so they are deterministic but not the CPU's order (see cuda/sampling.cuh).
// ------------------------------------------------------------------------------------------------

/** A prefix of the order (key desc, id asc): the ids with key > key, or key == key and id <= id. */
struct Cut {
  uint32_t key = 0;
  int64_t id = 0;
  __device__ bool holds(uint32_t k, int64_t i) const { return k > key || (k == key && i <= id); }
};

/** The block's shared memory. */
struct SampleShared {
  double red[kSampleWarps * kFan];     // per-warp partial sums of blockSums
  double chunkSum[kSampleThreads];     // the draw: each thread's chunk mass, then the prefix before it
  int32_t chunkLast[kSampleThreads];   // the draw: each thread's last kept id of positive weight (-1: none)
  float warpBest[kSampleWarps];        // blockArgmax
  int32_t warpAt[kSampleWarps];
  uint32_t topKeys[kMaxTopLogprobs];   // the N largest logits: keys and ids, in no order
  int32_t topIds[kMaxTopLogprobs];
  double target;                       // the draw: u · total
  int32_t owner;                       // the draw: the thread whose chunk holds the target
  int32_t pick;
  int32_t count;                       // entries in topKeys / topIds
};

/** v[j] := the block's sum of v[j], the same bits in every thread. Ends with a barrier. */
__device__ void blockSums(double (&v)[kFan], double* red) {
  DSN_UNROLL
  for (int j = 0; j < kFan; ++j)
    for (int off = 16; off > 0; off >>= 1) v[j] += __shfl_xor_sync(0xffffffffu, v[j], off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    DSN_UNROLL
    for (int j = 0; j < kFan; ++j) red[warp * kFan + j] = v[j];
  }
  __syncthreads();
  DSN_UNROLL
  for (int j = 0; j < kFan; ++j) {
    double s = 0;
    for (int w = 0; w < kSampleWarps; ++w) s += red[w * kFan + j];
    v[j] = s;
  }
  __syncthreads();
}

/**
 * The largest k in [lo, hi] with offset-free measure M(k) = Σ measure(i) over ids with key(i) >= k at
 * least `target`, or false when not even k = lo qualifies. M falls as k rises (measures are >= 0 and
 * each threshold's sum adds the same terms in the same order, less some), so the search keeps an
 * interval whose lower end qualifies and splits it 16 ways a pass. All threads return the same.
 */
template <typename KeyFn, typename MeasureFn>
__device__ bool searchThreshold(int64_t n, uint32_t lo, uint32_t hi, double target, KeyFn key, MeasureFn measure, double* red,
                                uint32_t* found) {
  bool loQualifies = false;
  for (;;) {
    const uint64_t span = uint64_t(hi) - lo + 1;
    uint32_t t[kFan];
    DSN_UNROLL
    for (int j = 0; j < kFan; ++j)
      t[j] = lo + uint32_t(span >= uint64_t(kFan) ? span * uint64_t(j) / kFan : (uint64_t(j) < span ? uint64_t(j) : span - 1));
    double acc[kFan];
    DSN_UNROLL
    for (int j = 0; j < kFan; ++j) acc[j] = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const double m = measure(i);
      if (m == 0) continue;
      const uint32_t k = key(i);
      DSN_UNROLL
      for (int j = 0; j < kFan; ++j)
        if (k >= t[j]) acc[j] += m;
    }
    blockSums(acc, red);
    // The largest qualifying threshold becomes lo, the next one less 1 becomes hi (constant indices
    // only: the unrolled arrays stay in registers).
    bool any = false;
    uint32_t newLo = t[0], newHi = t[1] > t[0] ? t[1] - 1 : hi;  // as if j = 0 qualified: always progress
    DSN_UNROLL
    for (int j = 0; j < kFan; ++j)
      if (acc[j] >= target) {
        any = true;
        newLo = t[j];
        newHi = j + 1 < kFan && t[j + 1 < kFan ? j + 1 : j] > t[j] ? t[j + 1 < kFan ? j + 1 : j] - 1 : hi;
      }
    // Only on the first pass can lo itself fall short: later passes recompute its sum (the same terms
    // in the same order), which qualified before.
    if (!any && !loQualifies) return false;
    loQualifies = true;
    lo = newLo;
    hi = newHi;
    if (lo >= hi) {
      *found = lo;
      return true;
    }
  }
}

/**
 * The shortest prefix of (key desc, id asc) over ids [0, n) whose measure reaches `target`, or the
 * whole order (every id) when none does. `keyHi` bounds the keys. measure(i) is 0 for ids outside the
 * set being cut.
 */
template <typename KeyFn, typename MeasureFn>
__device__ Cut shortestPrefix(int64_t n, uint32_t keyHi, double target, KeyFn key, MeasureFn measure, double* red) {
  Cut all;  // key 0, id n - 1: every id
  all.id = n - 1;
  uint32_t keyT;
  if (!searchThreshold(n, 0, keyHi, target, key, measure, red, &keyT)) return all;
  // Among the ids tied at keyT, the fewest (lowest ids first) that reach the target with the ids
  // above keyT: ids above keyT get the tie key n + 1, tied id i gets n − i, the rest are left out.
  uint32_t tie;
  auto tieKey = [&](int64_t i) -> uint32_t {
    const uint32_t k = key(i);
    return k > keyT ? uint32_t(n + 1) : k == keyT ? uint32_t(n - i) : 0u;
  };
  auto tieMeasure = [&](int64_t i) -> double { return key(i) >= keyT ? measure(i) : 0.0; };
  Cut c;
  c.key = keyT;
  // The ids at or above keyT reach the target (that is how keyT was found), so tie key 1 qualifies.
  c.id = searchThreshold(n, 1, uint32_t(n), target, tieKey, tieMeasure, red, &tie) ? n - int64_t(tie) : n - 1;
  return c;
}

/** A key whose unsigned order is the logits' order as the CPU's top-N compares them: NaN as -inf, -0 as +0. */
__device__ __forceinline__ uint32_t logitKey(float f) {
  if (f != f) f = -__int_as_float(0x7f800000);
  uint32_t b = __float_as_uint(f);
  if (b == 0x80000000u) b = 0;
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

struct SampleArgs {
  SampleRowsParams p;       // p.params null: every row uses `uniform`, with its row index as the step
  RowSampling uniform;
  float* penalised;         // [rows, vocab] f32 scratch for the penalised copies of rows with a history (or null)
  float* weights;           // [rows, vocab] f32 scratch: the softmax weights
};

/**
 * One block per row (grid-stride): penalties on a copy, argmax, the weights e^(x/t − m) as the CPU
 * computes them (cuda/math.cuh's expRef is sc::exp), the topK / topP / minP cuts, the draw, and the
 * log-probabilities. Launch: min(rows, 2^16) blocks of kSampleThreads.
 */
__global__ void __launch_bounds__(kSampleThreads) sampleKernel(SampleArgs a) {
  __shared__ SampleShared sh;
  const SampleRowsParams& p = a.p;
  const int64_t V = p.vocab;
  const int tid = threadIdx.x;
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const float* x = p.logits + r * V;
    RowSampling s = a.uniform;
    if (p.params) s = p.params[r];
    else s.step = uint64_t(r);
    // Penalties on a copy, as the CPU: repetition on every listed id, frequency and presence on the
    // generated ones (count > 0). The ids of a row are distinct (checked by the op), so no two threads
    // write one entry.
    const float* row = x;
    const int32_t h0 = p.historyOffsets ? p.historyOffsets[r] : 0, h1 = p.historyOffsets ? p.historyOffsets[r + 1] : 0;
    if (h1 > h0) {
      float* copy = a.penalised + r * V;
      for (int64_t i = tid; i < V; i += blockDim.x) copy[i] = x[i];
      __syncthreads();
      for (int32_t k = h0 + tid; k < h1; k += blockDim.x) {
        const int32_t id = p.historyIds[k], count = p.historyCounts[k];
        float v = copy[id];
        if (s.repetitionPenalty != 1.0f) v = v > 0 ? v / s.repetitionPenalty : __fmul_rn(v, s.repetitionPenalty);
        if (count > 0) v = v - __fadd_rn(__fmul_rn(s.frequencyPenalty, float(count)), s.presencePenalty);
        copy[id] = v;
      }
      __syncthreads();
      row = copy;
    }
    const int32_t best = blockArgmax(row, V, sh.warpBest, sh.warpAt);
    int32_t pick = best;
    const float m = s.temperature == 0.0f ? 0.0f : row[best] / s.temperature;
    if (s.temperature != 0.0f && fabsf(m) <= 3.40282347e38f) {  // m finite: else the argmax is the draw
      float* w = a.weights + r * V;
      for (int64_t i = tid; i < V; i += blockDim.x) {
        const float e = expRef(row[i] / s.temperature - m);
        w[i] = e != e ? 0.0f : e;  // NaN logits weigh nothing
      }
      __syncthreads();
      // Weights are >= 0 and not NaN, so their bits order them (the largest is e^0 = 1; +inf bounds them).
      const uint32_t keyHi = 0x7f800000u;
      auto wKey = [&](int64_t i) { return __float_as_uint(w[i]); };
      Cut kept;  // every id
      kept.id = V - 1;
      if (s.topK > 0 && s.topK < V) kept = shortestPrefix(V, keyHi, double(s.topK), wKey, [](int64_t) { return 1.0; }, sh.red);
      if (s.topP < 1.0f) {
        auto keptW = [&](int64_t i) -> double { return kept.holds(wKey(i), i) ? double(w[i]) : 0.0; };
        // The kept mass: the search's own sum at threshold 0 (the same terms, the same order).
        double acc[kFan];
        DSN_UNROLL
        for (int j = 0; j < kFan; ++j) acc[j] = 0;
        for (int64_t i = tid; i < V; i += blockDim.x) acc[0] += keptW(i);
        blockSums(acc, sh.red);
        kept = shortestPrefix(V, keyHi, double(s.topP) * acc[0], wKey, keptW, sh.red);
      }
      // minP: the best weight is 1, so p_i / p_max is w_i; the argmax always stays.
      auto inDraw = [&](int64_t i) { return w[i] > 0.0f && kept.holds(wKey(i), i) && (w[i] >= s.minP || i == best); };
      // The draw: thread t owns ids [t·chunk, (t+1)·chunk); its chunk mass in id order, the prefix of
      // the chunks before it (thread 0, in order), then the thread whose chunk crosses u · total walks it.
      const int64_t chunk = (V + blockDim.x - 1) / blockDim.x;
      const int64_t c0 = tid * chunk < V ? tid * chunk : V, c1 = c0 + chunk < V ? c0 + chunk : V;
      double mass = 0;
      int32_t last = -1;
      for (int64_t i = c0; i < c1; ++i)
        if (inDraw(i)) {
          mass += w[i];
          last = int32_t(i);
        }
      sh.chunkSum[tid] = mass;
      sh.chunkLast[tid] = last;
      __syncthreads();
      if (tid == 0) {
        double before = 0;
        int32_t lastAll = -1;
        for (unsigned t = 0; t < blockDim.x; ++t) {
          const double chunkMass = sh.chunkSum[t];
          sh.chunkSum[t] = before;
          before += chunkMass;
          if (sh.chunkLast[t] >= 0) lastAll = sh.chunkLast[t];
        }
        const double target = sampleUniform(s.seed, s.step) * before;  // before: now the total
        // The first chunk whose end passes the target; none (u·total rounded up to the total): the
        // last id in the draw, as the CPU's walk ends on it.
        int32_t owner = -1;
        for (unsigned t = 0; t < blockDim.x && owner < 0; ++t)
          if ((t + 1 < blockDim.x ? sh.chunkSum[t + 1] : before) > target) owner = int32_t(t);
        sh.owner = owner;
        sh.target = target;
        sh.pick = lastAll >= 0 ? lastAll : best;
      }
      __syncthreads();
      if (tid == sh.owner) {
        // prefix + (the chunk's mass so far, summed as above): at the chunk's end this is the end
        // that passed the target, so some id of the chunk passes it.
        const double prefix = sh.chunkSum[tid], target = sh.target;
        double partial = 0;
        for (int64_t i = c0; i < c1; ++i)
          if (inDraw(i)) {
            partial += w[i];
            if (prefix + partial > target) {
              sh.pick = int32_t(i);
              break;
            }
          }
      }
      __syncthreads();
      pick = sh.pick;
      __syncthreads();
    }
    if (tid == 0) p.out[r] = pick;
    if (!p.logprobs) continue;
    // log softmax of the model's own logits, in f64: the max, then Σ e^(x − max) over non-NaN entries.
    const int64_t N = p.topLogprobs;
    const float mx = x[blockArgmax(x, V, sh.warpBest, sh.warpAt)];
    double acc[kFan];
    DSN_UNROLL
    for (int j = 0; j < kFan; ++j) acc[j] = 0;
    for (int64_t i = tid; i < V; i += blockDim.x)
      if (x[i] == x[i]) acc[0] += exp(double(x[i]) - double(mx));
    blockSums(acc, sh.red);
    const double lse = double(mx) + log(acc[0]);
    float* lp = p.logprobs + r * (1 + N);
    if (tid == 0) lp[0] = float(double(x[pick]) - lse);
    if (N == 0) continue;
    const int64_t n = N < V ? N : V;
    auto xKey = [&](int64_t i) { return logitKey(x[i]); };
    const Cut top = shortestPrefix(V, 0xffffffffu, double(n), xKey, [](int64_t) { return 1.0; }, sh.red);
    if (tid == 0) sh.count = 0;
    __syncthreads();
    for (int64_t i = tid; i < V; i += blockDim.x) {
      const uint32_t k = xKey(i);
      if (top.holds(k, i)) {
        const int32_t slot = atomicAdd(&sh.count, 1);
        if (slot < kMaxTopLogprobs) {
          sh.topKeys[slot] = k;
          sh.topIds[slot] = int32_t(i);
        }
      }
    }
    __syncthreads();
    // The cut holds exactly n ids (counts are exact); each one's rank is how many of them precede it.
    for (int64_t e = tid; e < n; e += blockDim.x) {
      const uint32_t k = sh.topKeys[e];
      const int32_t id = sh.topIds[e];
      int64_t rank = 0;
      for (int64_t f = 0; f < n; ++f) rank += sh.topKeys[f] > k || (sh.topKeys[f] == k && sh.topIds[f] < id);
      lp[1 + rank] = float(double(x[id]) - lse);
      p.topIds[r * N + rank] = id;
    }
    for (int64_t j = n + tid; j < N; j += blockDim.x) {
      lp[1 + j] = -__int_as_float(0x7f800000);
      p.topIds[r * N + j] = -1;
    }
    __syncthreads();  // sh is reused by the next row
  }
}

std::string launchSample(const SampleArgs& a, const CudaLaunch& l) {
  if (a.p.rows == 0) return "";
  sampleKernel<<<unsigned(a.p.rows < 65536 ? a.p.rows : 65536), kSampleThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(a);
  return launchError();
}

}  // namespace

std::string argmaxLaunch(const ArgmaxParams& p, const CudaLaunch& l) {
  if (p.rows == 0) return "";
  argmaxKernel<<<unsigned(p.rows < 65536 ? p.rows : 65536), kThreads, 0, static_cast<cudaStream_t>(l.stream)>>>(p);
  return launchError();
}

std::string sampleLaunch(const SampleParams& p, const CudaLaunch& l) {
  if (!p.workspace) return "sample: the launch needs a workspace of rows · vocab floats";
  SampleArgs a;
  a.p.logits = p.logits;
  a.p.rows = p.rows;
  a.p.vocab = p.vocab;
  a.p.out = p.out;
  a.uniform.temperature = p.temperature;
  a.uniform.topK = p.topK;
  a.uniform.topP = p.topP;
  a.uniform.seed = p.seed;
  a.penalised = nullptr;
  a.weights = p.workspace;
  return launchSample(a, l);
}

std::string sampleRowsLaunch(const SampleRowsParams& p, const CudaLaunch& l) {
  if (!p.workspace) return "sampleRows: the launch needs a workspace of rows · 2 · vocab floats";
  if (p.logprobs && (p.topLogprobs < 0 || p.topLogprobs > kMaxTopLogprobs))
    return "sampleRows: topLogprobs must be in [0, 1024]";
  SampleArgs a;
  a.p = p;
  a.penalised = p.workspace;
  a.weights = p.workspace + p.rows * p.vocab;
  return launchSample(a, l);
}

}  // namespace dsn::cuda
