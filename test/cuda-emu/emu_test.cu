// cuda_emu_test: the emulated device's own tests (driven by test/cuda-emu/emulator.test.ts).
// Warp collectives, barriers and atomics against their documented semantics; each cuda/ptx
// wrapper against the PTX ISA's tables, written out here again in table form (not with the
// wrappers' formulas); and planted bugs (a missing __syncthreads, a wrong fragment index, an
// off-by-one tail, an unset mbarrier transaction count), each of which must make its check fail
// while the correct kernel passes.
#include <cuda.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"
#include "ptx/barrier.cuh"
#include "ptx/cp_async.cuh"
#include "ptx/ldmatrix.cuh"
#include "ptx/mbarrier.cuh"
#include "ptx/mma.cuh"
#include "ptx/tma.cuh"
#include "ptx/wgmma.cuh"

using namespace dsn::ptx;

template <class T>
struct Dev {
  T* p = nullptr;
  size_t n;
  explicit Dev(size_t n_, const T* init = nullptr) : n(n_) {
    cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T));
    if (init) cudaMemcpy(p, init, n * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<T> get() const {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
  ~Dev() { cudaFree(p); }
};

/** Runs the launch already queued, returns the error text ("" when it succeeded); resets the device after a fault. */
static std::string finish() {
  cudaError_t e = cudaDeviceSynchronize();
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e == cudaSuccess) return "";
  std::string s = cudaGetErrorString(e);
  cudaDeviceReset();
  return s.empty() ? "error" : s;
}

// ------------------------------------------------------------------------------------------------
// Warp collectives, against the CUDA Programming Guide's definitions (segment form, not the PTX
// c/segmask form the emulator uses).
// ------------------------------------------------------------------------------------------------
__global__ void shflKernel(int* out, int width, int arg) {
  int lane = threadIdx.x;
  int v = 100 + lane;
  out[0 * 32 + lane] = __shfl_sync(0xffffffffu, v, arg, width);
  out[1 * 32 + lane] = __shfl_up_sync(0xffffffffu, v, unsigned(arg), width);
  out[2 * 32 + lane] = __shfl_down_sync(0xffffffffu, v, unsigned(arg), width);
  out[3 * 32 + lane] = __shfl_xor_sync(0xffffffffu, v, arg, width);
}

TEST(warp_shuffles_follow_the_programming_guide) {
  for (int width : {1, 2, 4, 8, 16, 32})
    for (int arg : {0, 1, 3, 5, 16, 31}) {
      Dev<int> out(128);
      shflKernel<<<1, 32>>>(out.p, width, arg);
      CHECK(finish().empty(), "launch failed");
      auto h = out.get();
      for (int lane = 0; lane < 32; ++lane) {
        int seg = lane / width * width, pos = lane % width;
        int idx = seg + (arg % width);
        int up = pos >= arg ? lane - arg : lane;
        int down = pos + arg < width ? lane + arg : lane;
        int x = lane ^ arg;
        int xr = x / width > lane / width ? lane : x;  // later segments: own value
        CHECK(h[lane] == 100 + idx, "idx width %d arg %d lane %d: %d", width, arg, lane, h[lane]);
        CHECK(h[32 + lane] == 100 + up, "up width %d arg %d lane %d: %d", width, arg, lane, h[32 + lane]);
        CHECK(h[64 + lane] == 100 + down, "down width %d arg %d lane %d: %d", width, arg, lane, h[64 + lane]);
        CHECK(h[96 + lane] == 100 + xr, "xor width %d arg %d lane %d: %d", width, arg, lane, h[96 + lane]);
      }
    }
}

__global__ void voteKernel(unsigned* out) {
  int lane = threadIdx.x;
  out[lane * 8 + 0] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  out[lane * 8 + 1] = __any_sync(0xffffffffu, lane == 17);
  out[lane * 8 + 2] = __all_sync(0xffffffffu, lane < 31);
  out[lane * 8 + 3] = __match_any_sync(0xffffffffu, lane / 4);
  out[lane * 8 + 4] = __reduce_add_sync(0xffffffffu, unsigned(lane));
  out[lane * 8 + 5] = __reduce_max_sync(0xffffffffu, unsigned(lane * 7 % 32));
  if (lane < 16) out[lane * 8 + 6] = __ballot_sync(0x0000ffffu, lane & 1);  // a partial mask
  else out[lane * 8 + 6] = __ballot_sync(0xffff0000u, lane & 1);
  int pred = 0;
  out[lane * 8 + 7] = __match_all_sync(0xffffffffu, 5, &pred) + unsigned(pred);
}

TEST(warp_votes_match_and_reduce) {
  Dev<unsigned> out(32 * 8);
  voteKernel<<<1, 32>>>(out.p);
  std::string e = finish();
  CHECK(e.empty(), "%s", e.c_str());
  auto h = out.get();
  unsigned ballot = 0;
  for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
  for (int l = 0; l < 32; ++l) {
    CHECK(h[l * 8 + 0] == ballot, "ballot lane %d: %08x", l, h[l * 8]);
    CHECK(h[l * 8 + 1] == 1, "any");
    CHECK(h[l * 8 + 2] == 0, "all");
    CHECK(h[l * 8 + 3] == 0xfu << (l / 4 * 4), "match_any lane %d: %08x", l, h[l * 8 + 3]);
    CHECK(h[l * 8 + 4] == 496, "reduce_add");
    CHECK(h[l * 8 + 5] == 31, "reduce_max %u", h[l * 8 + 5]);
    CHECK(h[l * 8 + 6] == (l < 16 ? 0xaaaau : 0xaaaa0000u), "partial ballot lane %d: %08x", l, h[l * 8 + 6]);
    CHECK(h[l * 8 + 7] == 0xffffffffu + 1u, "match_all");
  }
}

__global__ void divergentShfl(int* out) {
  int v = threadIdx.x;
  if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);  // half the mask never arrives here
  else v = __ballot_sync(0xffffffffu, 1);
  out[threadIdx.x] = v;
}

TEST(divergent_warp_collective_is_reported) {
  Dev<int> out(32);
  divergentShfl<<<1, 32>>>(out.p);
  std::string e = finish();
  CHECK(e.find("divergentShfl") != std::string::npos && e.find("divergent warp collective") != std::string::npos, "got '%s'", e.c_str());
}

// ------------------------------------------------------------------------------------------------
// Barriers, shared memory, atomics
// ------------------------------------------------------------------------------------------------
template <bool kBarrier>
__global__ void blockSum(const float* x, float* out) {
  __shared__ float partial[8];
  float v = x[blockIdx.x * 256 + threadIdx.x];
  for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  if (kBarrier) __syncthreads();  // the plant: without it thread 0 reads partials not yet written
  if (threadIdx.x == 0) {
    float s = 0;
    for (int i = 0; i < 8; ++i) s += partial[i];
    out[blockIdx.x] = s;
  }
}

static bool blockSumCorrect(bool withBarrier) {
  const int blocks = 16;
  std::vector<float> x(blocks * 256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7);
  Dev<float> dx(x.size(), x.data()), out(blocks);
  if (withBarrier) blockSum<true><<<blocks, 256>>>(dx.p, out.p);
  else blockSum<false><<<blocks, 256>>>(dx.p, out.p);
  if (!finish().empty()) return false;
  auto h = out.get();
  for (int b = 0; b < blocks; ++b) {
    float want = 0;
    for (int i = 0; i < 256; ++i) want += x[b * 256 + i];
    if (h[b] != want) return false;
  }
  return true;
}

TEST(planted_missing_syncthreads_gives_a_wrong_result) {
  CHECK(blockSumCorrect(true), "the correct kernel must pass");
  CHECK(!blockSumCorrect(false), "a block sum without __syncthreads must not pass");
}

__global__ void syncCount(int* out) {
  int c = __syncthreads_count(threadIdx.x % 5 == 0);
  int a = __syncthreads_and(threadIdx.x < 1000);
  int o = __syncthreads_or(threadIdx.x == 77);
  out[threadIdx.x] = c * 100 + a * 10 + o;
}

TEST(syncthreads_count_and_or) {
  Dev<int> out(200);
  syncCount<<<1, 200>>>(out.p);
  CHECK(finish().empty(), "launch failed");
  for (int v : out.get()) CHECK(v == 40 * 100 + 10 + 1, "got %d", v);
}

__global__ void barrierDivergence(int* out) {
  if (threadIdx.x < 32) __syncthreads();  // the other warps never arrive
  out[threadIdx.x] = 1;
}

TEST(barrier_divergence_is_a_reported_deadlock) {
  Dev<int> out(128);
  barrierDivergence<<<1, 128>>>(out.p);
  std::string e = finish();
  CHECK(e.find("barrierDivergence") != std::string::npos && e.find("deadlock") != std::string::npos && e.find("__syncthreads") != std::string::npos,
        "got '%s'", e.c_str());
}

__global__ void namedBarriers(int* out) {
  __shared__ int stage[128];
  // warps 0-1 produce, warps 2-3 consume, through named barrier 1 (128 threads)
  if (threadIdx.x < 64) {
    stage[threadIdx.x] = int(threadIdx.x) * 3;
    bar_arrive(1, 128);
  } else {
    bar_sync(1, 128);
    out[threadIdx.x - 64] = stage[threadIdx.x - 64];
  }
}

TEST(named_barrier_producer_consumer) {
  Dev<int> out(64);
  namedBarriers<<<1, 128>>>(out.p);
  CHECK(finish().empty(), "launch failed");
  auto h = out.get();
  for (int i = 0; i < 64; ++i) CHECK(h[i] == i * 3, "i %d: %d", i, h[i]);
}

__global__ void atomics(int* counter, float* fsum, unsigned* mx) {
  atomicAdd(counter, 1);
  atomicAdd(fsum, 0.5f);
  atomicMax(mx, unsigned(blockIdx.x * 1000 + threadIdx.x));
}

TEST(atomics_from_many_blocks) {
  int zero = 0;
  float fz = 0;
  unsigned uz = 0;
  Dev<int> c(1, &zero);
  Dev<float> f(1, &fz);
  Dev<unsigned> m(1, &uz);
  atomics<<<8, 256>>>(c.p, f.p, m.p);
  CHECK(finish().empty(), "launch failed");
  CHECK(c.get()[0] == 2048, "counter %d", c.get()[0]);
  CHECK(f.get()[0] == 1024.f, "sum %g", f.get()[0]);
  CHECK(m.get()[0] == 7255u, "max %u", m.get()[0]);
}

template <int kExtra>
__global__ void tailKernel(const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n + kExtra) y[i] = 2 * x[i];  // the plant: kExtra = 1 runs one element past the end
}

TEST(planted_off_by_one_tail_is_an_illegal_address) {
  const int n = 1024;  // 4 KiB: the allocation ends exactly at its guard page
  std::vector<float> x(n, 1.f);
  Dev<float> dx(n, x.data()), dy(n);
  tailKernel<0><<<(n + 255) / 256 + 1, 256>>>(dx.p, dy.p, n);
  CHECK(finish().empty(), "the correct kernel must pass");
  for (float v : dy.get()) CHECK(v == 2.f, "y %g", v);
  tailKernel<1><<<(n + 255) / 256 + 1, 256>>>(dx.p, dy.p, n);
  std::string e = finish();
  CHECK(e.find("illegal memory access") != std::string::npos && e.find("tailKernel<1>") != std::string::npos && e.find("past the end") != std::string::npos,
        "got '%s'", e.c_str());
}

__global__ void smemOverrun(int n) {
  extern __shared__ float dyn[];
  dyn[threadIdx.x * 64 + n] = 1.f;
}

TEST(dynamic_shared_memory_overrun_is_reported) {
  smemOverrun<<<1, 64, 4096>>>(0);  // 64 threads x 256 bytes: 16 KiB written into 4 KiB
  std::string e = finish();
  CHECK(e.find("shared memory access out of bounds") != std::string::npos && e.find("smemOverrun") != std::string::npos, "got '%s'", e.c_str());
  smemOverrun<<<1, 16, 4096>>>(0);
  CHECK(finish().empty(), "an in-bounds kernel must pass");
  smemOverrun<<<1, 16, 64 * 1024>>>(0);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue, "64 KiB of dynamic shared memory needs cudaFuncSetAttribute");
  CHECK(cudaFuncSetAttribute(smemOverrun, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess, "set attribute");
  smemOverrun<<<1, 16, 64 * 1024>>>(0);
  CHECK(finish().empty(), "after cudaFuncSetAttribute the launch runs");
}

// ------------------------------------------------------------------------------------------------
// Streams and events
// ------------------------------------------------------------------------------------------------
static void hostFn(void* p) { *static_cast<int*>(p) += 1; }

TEST(streams_events_and_host_functions_are_ordered) {
  cudaStream_t s;
  cudaStreamCreate(&s);
  float* pinned;
  cudaMallocHost(reinterpret_cast<void**>(&pinned), 4096 * 4);
  for (int i = 0; i < 4096; ++i) pinned[i] = float(i);
  Dev<float> a(4096), b(4096);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  int calls = 0;
  cudaEventRecord(e0, s);
  cudaMemcpyAsync(a.p, pinned, 4096 * 4, cudaMemcpyHostToDevice, s);
  tailKernel<0><<<16, 256, 0, s>>>(a.p, b.p, 4096);
  cudaMemsetAsync(a.p, 0, 4096 * 4, s);
  cudaMemcpyAsync(pinned, b.p, 4096 * 4, cudaMemcpyDeviceToHost, s);
  cudaLaunchHostFunc(s, hostFn, &calls);
  cudaEventRecord(e1, s);
  CHECK(cudaEventSynchronize(e1) == cudaSuccess, "event sync");
  CHECK(cudaEventQuery(e1) == cudaSuccess, "query");
  float ms = -1;
  CHECK(cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess && ms >= 0, "elapsed %g", ms);
  CHECK(calls == 1, "host function ran %d times", calls);
  for (int i = 0; i < 4096; ++i) CHECK(pinned[i] == 2.f * i, "i %d: %g", i, pinned[i]);
  for (float v : a.get()) CHECK(v == 0.f, "memset");
  CHECK(cudaMemcpy(pinned, a.p, 8192 * 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue, "a copy past the allocation is refused");
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidValue)).find("past the end") != std::string::npos, "the error says why");
  cudaGetLastError();
  cudaFreeHost(pinned);
  cudaStreamDestroy(s);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}

TEST(sticky_error_blocks_later_work_until_reset) {
  Dev<float> x(1024), y(1024);
  tailKernel<1><<<5, 256>>>(x.p, y.p, 1024);
  int calls = 0;
  cudaLaunchHostFunc(nullptr, hostFn, &calls);
  CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress, "sync reports the fault");
  void* p = nullptr;
  CHECK(cudaMalloc(&p, 16) == cudaErrorIllegalAddress, "the error is sticky");
  CHECK(calls == 0, "a host function behind the fault does not run");
  cudaDeviceReset();
  CHECK(cudaMalloc(&p, 16) == cudaSuccess, "reset clears it");
  cudaFree(p);
}

TEST(device_properties_say_emulated_sm90) {
  cudaDeviceProp p;
  CHECK(cudaGetDeviceProperties(&p, 0) == cudaSuccess, "props");
  CHECK(p.major == 9 && p.minor == 0, "cc %d.%d", p.major, p.minor);
  CHECK(std::string(p.name).find("emulated") != std::string::npos, "name %s", p.name);
  int v = 0;
  cudaDriverGetVersion(&v);
  CHECK(v >= 13000, "driver %d", v);
}

// ------------------------------------------------------------------------------------------------
// mma.sync against the PTX ISA fragment tables. The tables, as printed in the ISA for
// m16n8k16 (.bf16) and m16n8k32 (.e4m3): each row lists, per fragment element, the (row, col)
// of the element as a function of groupID g = lane >> 2 and tig = lane % 4.
// ------------------------------------------------------------------------------------------------
struct RC {
  int r, c;
};
// m16n8k16 .bf16 A: a0,a1: (g, 2tig+{0,1}); a2,a3: (g+8, 2tig+{0,1}); a4,a5: (g, 2tig+8+{0,1}); a6,a7: (g+8, 2tig+8+{0,1})
static RC tableA16(int lane, int i) {
  const int g = lane >> 2, t = lane % 4;
  static const int rowAdd[8] = {0, 0, 8, 8, 0, 0, 8, 8};
  static const int colAdd[8] = {0, 1, 0, 1, 8, 9, 8, 9};
  return {g + rowAdd[i], 2 * t + colAdd[i]};
}
// m16n8k16 .bf16 B: b0,b1: (2tig+{0,1}, g); b2,b3: (2tig+8+{0,1}, g)
static RC tableB16(int lane, int i) {
  static const int rowAdd[4] = {0, 1, 8, 9};
  return {2 * (lane % 4) + rowAdd[i], lane >> 2};
}
// m16n8k32 .e4m3 A: a0..a3: (g, 4tig+{0..3}); a4..a7: (g+8, 4tig+{0..3}); a8..a11: (g, 4tig+16+{0..3}); a12..a15: (g+8, 4tig+16+{0..3})
static RC tableA32(int lane, int i) {
  const int g = lane >> 2, t = lane % 4;
  static const int rowAdd[4] = {0, 8, 0, 8};
  static const int colAdd[4] = {0, 0, 16, 16};
  return {g + rowAdd[i / 4], 4 * t + colAdd[i / 4] + i % 4};
}
// m16n8k32 .e4m3 B: b0..b3: (4tig+{0..3}, g); b4..b7: (4tig+16+{0..3}, g)
static RC tableB32(int lane, int i) { return {4 * (lane % 4) + (i < 4 ? 0 : 16) + i % 4, lane >> 2}; }
// C/D (f32): c0,c1: (g, 2tig+{0,1}); c2,c3: (g+8, 2tig+{0,1})
static RC tableC(int lane, int i) { return {(lane >> 2) + (i < 2 ? 0 : 8), 2 * (lane % 4) + i % 2}; }

struct MmaIn {
  uint32_t a[32][4], b[32][2];
  float c[32][4];
};

template <bool kFp8>
__global__ void mmaKernel(const MmaIn* in, float* d) {
  int lane = threadIdx.x;
  uint32_t a[4], b[2];
  float c[4], out[4];
  for (int i = 0; i < 4; ++i) a[i] = in->a[lane][i], c[i] = in->c[lane][i];
  for (int i = 0; i < 2; ++i) b[i] = in->b[lane][i];
  if (kFp8) mma_m16n8k32_e4m3(out, a, b, c);
  else mma_m16n8k16_bf16(out, a, b, c);
  for (int i = 0; i < 4; ++i) d[lane * 4 + i] = out[i];
}

/** Packs A, B, C by the tables, runs the mma, compares with a plain matmul; swapAB plants a wrong
 *  fragment index (registers a[1] and a[2] exchanged, a classic slip). */
template <bool kFp8>
static bool mmaMatchesMatmul(bool plantWrongIndex, std::string* why) {
  const int K = kFp8 ? 32 : 16;
  std::vector<float> A(16 * K), B(K * 8), C(16 * 8);
  for (int i = 0; i < 16 * K; ++i) A[i] = float((i * 7) % 9 - 4) * (kFp8 ? 1.f : 0.5f);
  for (int i = 0; i < K * 8; ++i) B[i] = float((i * 5) % 7 - 3);
  for (int i = 0; i < 128; ++i) C[i] = float(i % 11) - 5.f;
  MmaIn in;
  memset(&in, 0, sizeof in);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < (kFp8 ? 16 : 8); ++i) {
      RC rc = kFp8 ? tableA32(lane, i) : tableA16(lane, i);
      uint32_t bits = kFp8 ? __nv_fp8_e4m3(A[rc.r * K + rc.c]).__x : __float2bfloat16(A[rc.r * K + rc.c]).__x;
      int per = kFp8 ? 4 : 2;
      in.a[lane][i / per] |= bits << ((kFp8 ? 8 : 16) * (i % per));
    }
    for (int i = 0; i < (kFp8 ? 8 : 4); ++i) {
      RC rc = kFp8 ? tableB32(lane, i) : tableB16(lane, i);
      uint32_t bits = kFp8 ? __nv_fp8_e4m3(B[rc.r * 8 + rc.c]).__x : __float2bfloat16(B[rc.r * 8 + rc.c]).__x;
      int per = kFp8 ? 4 : 2;
      in.b[lane][i / per] |= bits << ((kFp8 ? 8 : 16) * (i % per));
    }
    for (int i = 0; i < 4; ++i) {
      RC rc = tableC(lane, i);
      in.c[lane][i] = C[rc.r * 8 + rc.c];
    }
    if (plantWrongIndex) std::swap(in.a[lane][1], in.a[lane][2]);
  }
  Dev<MmaIn> din(1, &in);
  Dev<float> d(128);
  mmaKernel<kFp8><<<1, 32>>>(din.p, d.p);
  std::string e = finish();
  if (!e.empty()) {
    *why = e;
    return false;
  }
  auto h = d.get();
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      RC rc = tableC(lane, i);
      double want = C[rc.r * 8 + rc.c];
      for (int k = 0; k < K; ++k) want += double(A[rc.r * K + k]) * B[k * 8 + rc.c];
      if (h[lane * 4 + i] != float(want)) {
        char b[160];
        snprintf(b, sizeof b, "D[%d][%d] = %g, want %g", rc.r, rc.c, h[lane * 4 + i], want);
        *why = b;
        return false;
      }
    }
  return true;
}

TEST(mma_m16n8k16_bf16_matches_the_isa_tables) {
  std::string why;
  CHECK(mmaMatchesMatmul<false>(false, &why), "%s", why.c_str());
}

TEST(mma_m16n8k32_e4m3_matches_the_isa_tables) {
  std::string why;
  CHECK(mmaMatchesMatmul<true>(false, &why), "%s", why.c_str());
}

TEST(planted_wrong_fragment_index_fails) {
  std::string why;
  CHECK(!mmaMatchesMatmul<false>(true, &why), "exchanging a[1] and a[2] must give a wrong product (bf16)");
  CHECK(!mmaMatchesMatmul<true>(true, &why), "exchanging a[1] and a[2] must give a wrong product (e4m3)");
}

// ------------------------------------------------------------------------------------------------
// ldmatrix against the ISA: lane l holds, for matrix m, (row l/4, cols 2(l%4), 2(l%4)+1); .trans
// holds (rows 2(l%4), 2(l%4)+1, col l/4).
// ------------------------------------------------------------------------------------------------
template <int kNum, bool kTrans>
__global__ void ldmatrixKernel(uint32_t* out) {
  __shared__ __align__(16) uint16_t tile[4 * 64];
  for (int i = threadIdx.x; i < 4 * 64; i += 32) tile[i] = uint16_t(i);  // element (m, r, c) = m*64 + r*8 + c
  __syncwarp();
  const int m = threadIdx.x / 8, r = threadIdx.x % 8;
  uint32_t d[kNum];
  ldmatrix<kNum, kTrans>(d, &tile[(m % kNum) * 64 + r * 8]);
  for (int i = 0; i < kNum; ++i) out[threadIdx.x * 4 + i] = d[i];
}

template <int kNum, bool kTrans>
static void checkLdmatrix() {
  Dev<uint32_t> out(128);
  ldmatrixKernel<kNum, kTrans><<<1, 32>>>(out.p);
  CHECK(finish().empty(), "launch failed");
  auto h = out.get();
  for (int l = 0; l < 32; ++l)
    for (int m = 0; m < kNum; ++m) {
      int r0 = kTrans ? 2 * (l % 4) : l / 4, c0 = kTrans ? l / 4 : 2 * (l % 4);
      int r1 = kTrans ? r0 + 1 : r0, c1 = kTrans ? c0 : c0 + 1;
      uint32_t want = uint32_t(m * 64 + r0 * 8 + c0) | (uint32_t(m * 64 + r1 * 8 + c1) << 16);
      CHECK(h[l * 4 + m] == want, "x%d%s lane %d matrix %d: %08x want %08x", kNum, kTrans ? ".trans" : "", l, m, h[l * 4 + m], want);
    }
}

TEST(ldmatrix_matches_the_isa) {
  checkLdmatrix<1, false>();
  checkLdmatrix<2, false>();
  checkLdmatrix<4, false>();
  checkLdmatrix<1, true>();
  checkLdmatrix<2, true>();
  checkLdmatrix<4, true>();
}

// ------------------------------------------------------------------------------------------------
// cp.async
// ------------------------------------------------------------------------------------------------
template <bool kWait>
__global__ void cpAsyncKernel(const float* x, float* out) {
  __shared__ __align__(16) float buf[2][128];
  for (int stage = 0; stage < 2; ++stage) {
    cp_async_ca<16>(&buf[stage][threadIdx.x * 4], x + stage * 128 + threadIdx.x * 4);
    cp_async_commit_group();
  }
  if (kWait) cp_async_wait_group<1>();  // stage 0 complete, stage 1 may still be in flight
  __syncthreads();
  for (int i = 0; i < 4; ++i) out[threadIdx.x * 4 + i] = buf[0][threadIdx.x * 4 + i];
  cp_async_wait_group<0>();
  __syncthreads();
  for (int i = 0; i < 4; ++i) out[128 + threadIdx.x * 4 + i] = buf[1][threadIdx.x * 4 + i];
}

TEST(cp_async_lands_at_wait_group) {
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = float(i);
  Dev<float> dx(256, x.data()), out(256);
  cpAsyncKernel<true><<<1, 32>>>(dx.p, out.p);
  CHECK(finish().empty(), "launch failed");
  auto h = out.get();
  for (int i = 0; i < 256; ++i) CHECK(h[i] == float(i), "i %d: %g", i, h[i]);
  cpAsyncKernel<false><<<1, 32>>>(dx.p, out.p);
  CHECK(finish().empty(), "launch failed");
  h = out.get();
  CHECK(std::isnan(h[0]), "reading before wait_group sees poison, got %g", h[0]);
}

// ------------------------------------------------------------------------------------------------
// mbarrier phases and transaction counts
// ------------------------------------------------------------------------------------------------
__global__ void mbarPhases(int* out) {
  __shared__ __align__(8) uint64_t full;
  __shared__ __align__(8) uint64_t empty;
  __shared__ int data[32];
  if (threadIdx.x == 0) {
    mbarrier_init(&full, 32);   // warp 1 fills the buffer
    mbarrier_init(&empty, 32);  // warp 0 releases it
    fence_mbarrier_init();
  }
  __syncthreads();
  for (int phase = 0; phase < 3; ++phase) {
    if (threadIdx.x >= 32) {
      if (phase > 0) mbarrier_wait_parity(&empty, uint32_t(phase - 1) & 1);
      data[threadIdx.x - 32] = phase * 100 + int(threadIdx.x);
      mbarrier_arrive(&full);
    } else {
      mbarrier_wait_parity(&full, uint32_t(phase) & 1);
      out[phase * 32 + threadIdx.x] = data[threadIdx.x];
      mbarrier_arrive(&empty);
    }
  }
}

TEST(mbarrier_phases_alternate_parity) {
  Dev<int> out(96);
  mbarPhases<<<1, 64>>>(out.p);
  std::string e = finish();
  CHECK(e.empty(), "%s", e.c_str());
  auto h = out.get();
  for (int p = 0; p < 3; ++p)
    for (int i = 0; i < 32; ++i) CHECK(h[p * 32 + i] == p * 100 + 32 + i, "phase %d i %d: %d", p, i, h[p * 32 + i]);
}

__global__ void mbarNeverCompletes() {
  __shared__ __align__(8) uint64_t bar;
  if (threadIdx.x == 0) mbarrier_init(&bar, 2);
  __syncthreads();
  if (threadIdx.x == 0) mbarrier_arrive(&bar);  // only one of two arrivals
  mbarrier_wait_parity(&bar, 0);
}

TEST(mbarrier_wait_that_cannot_complete_is_reported) {
  mbarNeverCompletes<<<1, 32>>>();
  std::string e = finish();
  CHECK(e.find("mbarNeverCompletes") != std::string::npos && e.find("deadlock") != std::string::npos && e.find("mbarrier") != std::string::npos,
        "got '%s'", e.c_str());
}

// ------------------------------------------------------------------------------------------------
// TMA: 2D tiles with each swizzle, out-of-bounds fill; the planted unset transaction count.
// Swizzle per the PTX ISA's tables, stated per 128-byte row of the swizzle atom: the 16-byte
// chunk j of row r is stored at chunk j ^ (r % 8) for 128B (1024-byte atom), j ^ (r % 4) for
// 64B (512 bytes), j ^ (r % 2) for 32B (256 bytes).
// ------------------------------------------------------------------------------------------------
static uint32_t tableSwizzle(uint32_t off, int mode) {
  // modes: 0 none, 1 32B (1 bit), 2 64B (2 bits), 3 128B (3 bits)
  uint32_t row = off / 128, chunk = (off / 16) % 8, inChunk = off % 16;
  uint32_t rowInAtom = row % (1u << mode);
  uint32_t mask = (1u << mode) - 1;
  if (mode == 0) return off;
  return row * 128 + ((chunk ^ (rowInAtom & mask)) * 16) + inChunk;
}

template <bool kExpectTx>
__global__ void tmaKernel(const __grid_constant__ CUtensorMap map, int c0, int c1, uint16_t* out, int boxElems) {
  extern __shared__ __align__(1024) uint8_t smem[];
  __shared__ __align__(8) uint64_t full;
  if (threadIdx.x == 0) {
    mbarrier_init(&full, 1);
    fence_mbarrier_init();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    if (kExpectTx) mbarrier_arrive_expect_tx(&full, uint32_t(boxElems * 2));
    else mbarrier_arrive(&full);  // the plant: no transaction count
    tma_load_2d(smem, &map, &full, c0, c1);
  }
  mbarrier_wait_parity(&full, 0);
  const uint16_t* s = reinterpret_cast<const uint16_t*>(smem);
  for (int i = threadIdx.x; i < boxElems; i += blockDim.x) out[i] = s[i];
}

struct TmaCase {
  int swizzle, boxCols;
};

static bool tmaCase(int swizzleMode, int boxCols, bool expectTx, std::string* why) {
  const int rows = 40, cols = 72, boxRows = 16;
  std::vector<uint16_t> g(rows * cols);
  for (int i = 0; i < rows * cols; ++i) g[i] = uint16_t(i + 1);
  Dev<uint16_t> dg(g.size(), g.data()), out(boxRows * boxCols);
  CUtensorMap map;
  cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  cuuint64_t strides[1] = {cuuint64_t(cols) * 2};
  cuuint32_t box[2] = {cuuint32_t(boxCols), cuuint32_t(boxRows)};
  cuuint32_t es[2] = {1, 1};
  CUresult r = cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, dg.p, dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                      CUtensorMapSwizzle(swizzleMode), CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    *why = "encode failed";
    return false;
  }
  const int c0 = 40, c1 = 30;  // the box runs past both edges: zero fill
  if (expectTx) tmaKernel<true><<<1, 128, 2048 * 4>>>(map, c0, c1, out.p, boxRows * boxCols);
  else tmaKernel<false><<<1, 128, 2048 * 4>>>(map, c0, c1, out.p, boxRows * boxCols);
  std::string e = finish();
  if (!e.empty()) {
    *why = e;
    return false;
  }
  auto h = out.get();
  const uint32_t rowBytes = uint32_t(boxCols) * 2;
  for (int rr = 0; rr < boxRows; ++rr)
    for (int cc = 0; cc < boxCols; ++cc) {
      int gr = c1 + rr, gc = c0 + cc;
      uint16_t want = (gr < rows && gc < cols) ? g[gr * cols + gc] : 0;
      // where the element sits in smem: dense row-major offset, then the ISA's swizzle (rows of
      // the swizzle atom are 128 bytes: a box row narrower than that shares an atom row)
      uint32_t off = tableSwizzle(uint32_t(rr) * rowBytes + uint32_t(cc) * 2, swizzleMode);
      if (h[off / 2] != want) {
        char b[200];
        snprintf(b, sizeof b, "swizzle %d box %d: element (%d,%d) at smem offset %u holds %u, want %u", swizzleMode, boxCols, rr, cc, off, h[off / 2], want);
        *why = b;
        return false;
      }
    }
  return true;
}

TEST(tma_2d_loads_follow_the_swizzle_tables) {
  const TmaCase cases[] = {{0, 24}, {1, 16}, {2, 32}, {3, 64}, {3, 32}};
  for (auto c : cases) {
    std::string why;
    CHECK(tmaCase(c.swizzle, c.boxCols, true, &why), "%s", why.c_str());
  }
}

TEST(planted_unset_mbarrier_tx_count_fails) {
  std::string why;
  CHECK(tmaCase(3, 64, true, &why), "the correct kernel must pass: %s", why.c_str());
  CHECK(!tmaCase(3, 64, false, &why), "an arrive without expect_tx must fail");
  CHECK(why.find("tx-count") != std::string::npos || why.find("holds") != std::string::npos, "why: %s", why.c_str());
}

TEST(tensor_map_encoding_validates_like_the_driver) {
  Dev<uint16_t> dg(64 * 64);
  CUtensorMap map;
  cuuint64_t dims[2] = {64, 64};
  cuuint64_t strides[1] = {128};
  cuuint32_t box128[2] = {128, 8}, box64[2] = {64, 8};
  cuuint32_t es[2] = {1, 1};
  CHECK(cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, dg.p, dims, strides, box128, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_ERROR_INVALID_VALUE,
        "a 256-byte inner box exceeds the 128B swizzle span");
  cuuint64_t bad[1] = {120};
  CHECK(cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, dg.p, dims, bad, box64, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_ERROR_INVALID_VALUE,
        "strides must be multiples of 16");
  cuuint64_t big[2] = {64, 65};
  CHECK(cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, dg.p, big, strides, box64, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_ERROR_INVALID_VALUE,
        "a tensor larger than its allocation is refused");
}

// ------------------------------------------------------------------------------------------------
// wgmma.mma_async m64nNk32 e4m3 against the PTX ISA: the host lays A [64, 32] and B [N, 32] out in
// a shared-memory image by the ISA's K-major layout (written here as tables: 8-row atoms, core
// matrices of 16 bytes without swizzle, 128/64/32-byte atom rows XOR-swizzled by tableSwizzle),
// packs the descriptors' bit fields by hand, and reads D back through the ISA's fragment table:
// warp w, lane l, register i hold D[16w + l/4 (+8 for i = 2, 3 mod 4)][8 (i/4) + 2 (l%4) + i%2].
// ------------------------------------------------------------------------------------------------
struct WgmmaCase {
  int n;            // 64 or 128
  int layout;       // descriptor field: 0 none, 1 128B, 2 64B, 3 32B
  int kOffset;      // byte offset of the 32-byte K slice inside an atom row (swizzled layouts)
  bool accumulate;  // scale-d: D = A·Bᵀ + C, else A·Bᵀ
};

constexpr int kWgmmaImageBytes = 32768;  // A at 0, B at 16384

__global__ void wgmmaKernel(const uint8_t* image, const float* c, float* out, int n, uint64_t descAFields, uint64_t descBFields, int accumulate,
                            uint64_t* descSeen) {
  extern __shared__ __align__(1024) uint8_t smemRaw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smemRaw) + 1023) & ~uintptr_t(1023));
  for (int i = threadIdx.x; i < kWgmmaImageBytes; i += 128) smem[i] = image[i];
  fence_proxy_async_shared();
  __syncthreads();
  // The start-address field is the shared address >> 4; the rest was packed by the host.
  const uint32_t base = uint32_t(reinterpret_cast<char*>(smem) - cuda_emu::sharedWindow());
  const uint64_t descA = descAFields + ((base >> 4) & 0x3fff), descB = descBFields + (((base + 16384) >> 4) & 0x3fff);
  if (threadIdx.x == 0) {  // what the wrapper's encoder makes of the same operand
    descSeen[0] = descA;
    descSeen[1] = wgmma_desc(smem + (descAFields & 0x3fff) * 16, uint32_t((descAFields >> 16) & 0x3fff) * 16, uint32_t((descAFields >> 32) & 0x3fff) * 16,
                             WgmmaSwizzle(descAFields >> 62));
  }
  float d64[32], d128[64];
  float* d = n == 64 ? d64 : d128;
  for (int i = 0; i < n / 2; ++i) d[i] = c[threadIdx.x * (n / 2) + i];
  wgmma_fence();
  if (n == 64) wgmma_m64k32_e4m3<64>(d64, descA, descB, accumulate != 0);
  else wgmma_m64k32_e4m3<128>(d128, descA, descB, accumulate != 0);
  wgmma_commit_group();
  wgmma_wait_group<0>();
  for (int i = 0; i < n / 2; ++i) out[threadIdx.x * (n / 2) + i] = d[i];
}

/** Where the ISA puts byte k of row r of a K-major operand: none: core matrices (8 rows x 16 B,
 *  rows 16 B apart), K-adjacent ones `lbo` apart, M/N-adjacent ones `sbo` apart; swizzled: atom
 *  rows of `rowBytes`, 8-row atoms `sbo` apart, then the chunk XOR of the absolute address. */
static uint32_t tableOperandOffset(int layout, int r, int k, uint32_t lbo, uint32_t sbo, int kOffset) {
  if (layout == 0) return uint32_t(r / 8) * sbo + uint32_t(k / 16) * lbo + uint32_t(r % 8) * 16 + uint32_t(k % 16);
  const int tmaMode = layout == 1 ? 3 : layout == 2 ? 2 : 1;  // the same patterns as TMA's 128B, 64B, 32B
  const uint32_t rowBytes = layout == 1 ? 128 : layout == 2 ? 64 : 32;
  return tableSwizzle(uint32_t(r / 8) * sbo + uint32_t(r % 8) * rowBytes + uint32_t(kOffset + k), tmaMode);
}

static uint32_t lcg(uint32_t& s) { return s = s * 1664525u + 1013904223u; }

static bool wgmmaCase(WgmmaCase wc, int plantLayout, std::string* why) {
  const int N = wc.n;
  uint32_t seed = 12345u + uint32_t(N * 7 + wc.layout * 3 + wc.kOffset + (wc.accumulate ? 1 : 0));
  // Random finite e4m3 codes (exponent field 0..14), and f32 accumulators.
  std::vector<uint8_t> A(64 * 32), B(size_t(N) * 32);
  for (auto& v : A) v = uint8_t((lcg(seed) >> 8) % 0x78u) | uint8_t((lcg(seed) >> 20) & 0x80u);
  for (auto& v : B) v = uint8_t((lcg(seed) >> 8) % 0x78u) | uint8_t((lcg(seed) >> 20) & 0x80u);
  std::vector<float> C(size_t(64) * N);
  for (auto& v : C) v = float(int(lcg(seed) >> 16) % 2001 - 1000) / 64.0f;
  // Layout parameters: without swizzle, the K-adjacent core matrices sit after all row groups (LBO),
  // row groups 128 bytes apart (SBO); swizzled, 8-row atoms of 8 x rowBytes stored back to back.
  const uint32_t rowBytes = wc.layout == 1 ? 128 : wc.layout == 2 ? 64 : wc.layout == 3 ? 32 : 16;
  const uint32_t sbo = wc.layout == 0 ? 128 : 8 * rowBytes;
  const uint32_t lboA = wc.layout == 0 ? 64 / 8 * 128 : 16, lboB = wc.layout == 0 ? uint32_t(N / 8 * 128) : 16;
  std::vector<uint8_t> image(kWgmmaImageBytes, 0);
  for (int r = 0; r < 64; ++r)
    for (int k = 0; k < 32; ++k) image[tableOperandOffset(wc.layout, r, k, lboA, sbo, wc.kOffset)] = A[r * 32 + k];
  for (int r = 0; r < N; ++r)
    for (int k = 0; k < 32; ++k) image[16384 + tableOperandOffset(wc.layout, r, k, lboB, sbo, wc.kOffset)] = B[r * 32 + k];
  // Descriptor fields by hand (start address added in the kernel): LBO bits 16-29, SBO 32-45,
  // layout 62-63; the K slice starts kOffset bytes into the atom row.
  const int layoutField = plantLayout >= 0 ? plantLayout : wc.layout;
  const uint64_t fieldsA = (uint64_t(wc.kOffset >> 4)) | (uint64_t(lboA >> 4) << 16) | (uint64_t(sbo >> 4) << 32) | (uint64_t(layoutField) << 62);
  const uint64_t fieldsB = (uint64_t(wc.kOffset >> 4)) | (uint64_t(lboB >> 4) << 16) | (uint64_t(sbo >> 4) << 32) | (uint64_t(layoutField) << 62);
  // C in fragment order, by the ISA's table.
  auto rowOf = [](int t, int i) { return (t / 32) * 16 + (t % 32) / 4 + ((i % 4) >= 2 ? 8 : 0); };
  auto colOf = [](int t, int i) { return (i / 4) * 8 + (t % 32 % 4) * 2 + i % 2; };
  std::vector<float> cFrag(size_t(128) * (N / 2));
  for (int t = 0; t < 128; ++t)
    for (int i = 0; i < N / 2; ++i) cFrag[t * (N / 2) + i] = C[rowOf(t, i) * N + colOf(t, i)];
  Dev<uint8_t> dImage(image.size(), image.data());
  Dev<float> dC(cFrag.size(), cFrag.data()), dOut(cFrag.size());
  Dev<uint64_t> dDesc(2);
  wgmmaKernel<<<1, 128, kWgmmaImageBytes + 1024>>>(dImage.p, dC.p, dOut.p, N, fieldsA, fieldsB, wc.accumulate ? 1 : 0, dDesc.p);
  std::string e = finish();
  if (!e.empty()) {
    *why = e;
    return false;
  }
  auto h = dOut.get();
  for (int t = 0; t < 128; ++t)
    for (int i = 0; i < N / 2; ++i) {
      const int r = rowOf(t, i), col = colOf(t, i);
      double want = wc.accumulate ? double(C[r * N + col]) : 0.0;
      for (int k = 0; k < 32; ++k) want += double(cuda_emu::fp::fromE4m3(A[r * 32 + k])) * double(cuda_emu::fp::fromE4m3(B[col * 32 + k]));
      if (h[t * (N / 2) + i] != float(want)) {
        char b[200];
        snprintf(b, sizeof b, "n%d layout %d kOffset %d: thread %d d[%d] = D[%d][%d] = %g, want %g", N, wc.layout, wc.kOffset, t, i, r, col, h[t * (N / 2) + i], want);
        *why = b;
        return false;
      }
    }
  // The wrapper's descriptor encoder packs the same bits as the hand-packed fields.
  auto seen = dDesc.get();
  if (seen[0] != seen[1]) {
    char b[160];
    snprintf(b, sizeof b, "wgmma_desc packs %016llx, the ISA's fields give %016llx", (unsigned long long)seen[1], (unsigned long long)seen[0]);
    *why = b;
    return false;
  }
  return true;
}

TEST(wgmma_m64nNk32_e4m3_matches_the_isa_tables) {
  const WgmmaCase cases[] = {{64, 0, 0, true}, {128, 0, 0, false}, {64, 1, 0, false}, {128, 1, 32, true}, {128, 1, 96, true},
                             {64, 2, 32, true}, {128, 3, 0, true}};
  for (auto c : cases) {
    std::string why;
    CHECK(wgmmaCase(c, -1, &why), "%s", why.c_str());
  }
}

TEST(planted_wrong_wgmma_swizzle_fails) {
  std::string why;
  CHECK(wgmmaCase({128, 1, 32, true}, -1, &why), "the correct descriptor must pass: %s", why.c_str());
  CHECK(!wgmmaCase({128, 1, 32, true}, 0, &why), "a 128B-swizzled operand read as unswizzled must give a wrong product");
  CHECK(!wgmmaCase({64, 0, 0, true}, 1, &why), "an unswizzled operand read as 128B-swizzled must give a wrong product");
}

int main(int argc, char** argv) {
  int failed = 0, ran = 0;
  for (auto& c : emuCases()) {
    bool wanted = argc < 2;
    for (int i = 1; i < argc; ++i) wanted |= std::string(argv[i]) == c.name;
    if (!wanted) continue;
    ++ran;
    emuFailures().clear();
    c.fn();
    if (emuFailures().empty()) {
      printf("ok %s\n", c.name);
    } else {
      ++failed;
      printf("FAIL %s\n", c.name);
      for (size_t i = 0; i < emuFailures().size() && i < 8; ++i) printf("  %s\n", emuFailures()[i].c_str());
    }
    fflush(stdout);
  }
  printf("%d passed, %d failed\n", ran - failed, failed);
  return failed ? 1 : 0;
}
