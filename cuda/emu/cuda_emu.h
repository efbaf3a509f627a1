// cuda-emu: an emulated CUDA device for host C++ (g++). Every cuda/*.cu file compiles against this
// header (through the stand-ins in cuda/emu/include/) after cuda/emu/rewrite.cjs has turned
// `kernel<<<grid, block, smem, stream>>>(args)` into a call of cuda_emu::launch and `__shared__`
// declarations into per-block allocations.
//
// The device model (cuda/emu/device.cc): a launch runs on its stream's host thread; the blocks of
// the grid run one after another, in a seeded-random order; each CUDA thread of a block is a fiber
// with its own 64 KiB stack. A fiber runs until it reaches a synchronisation point (a barrier, a
// warp collective, an mbarrier wait) or exits; then the next fiber runs, in a fresh random order
// each round, so code that relies on an order the GPU does not promise (a missing barrier) sees
// the writes of other threads late, or not at all. Errors a GPU would report (an access outside an
// allocation or outside shared memory, a barrier some threads never reach, an mbarrier wait that
// can never complete, a warp collective whose lanes diverge) end the launch with a sticky error
// whose message names the kernel, the block and the thread; nothing hangs and nothing aborts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <algorithm>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emu_vector.h"
#include "emu_fp.h"

#define __CUDA_EMU__ 1
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __grid_constant__
#define CUDART_VERSION 13000
#define __CUDART_API_VERSION 13000

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return {x, y, z}; }
};

// ---------------------------------------------------------------------------------------------
// Runtime API types (values as in the CUDA 13 headers)
// ---------------------------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidSymbol = 13,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorNoKernelImageForDevice = 209,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalState = 401,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchTimeout = 702,
  cudaErrorAssert = 710,
  cudaErrorIllegalInstruction = 715,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotPermitted = 800,
  cudaErrorNotSupported = 801,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorUnknown = 999,
};
typedef cudaError_t CUresult_emu;

struct CUstream_st;
struct CUevent_st;
typedef CUstream_st* cudaStream_t;
typedef CUevent_st* cudaEvent_t;
struct CUgraph_st;
struct CUgraphExec_st;
typedef CUgraph_st* cudaGraph_t;
typedef CUgraphExec_st* cudaGraphExec_t;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00
#define cudaHostAllocPortable 0x01
#define cudaHostAllocMapped 0x02
#define cudaHostRegisterDefault 0x00

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};
enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
  cudaDevAttrL2CacheSize = 38,
};
typedef void (*cudaHostFn_t)(void* userData);

/** The fields of cudaDeviceProp the project reads (a subset of CUDA's struct, same names). */
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  size_t sharedMemPerMultiprocessor;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major;
  int minor;
  int multiProcessorCount;
  int l2CacheSize;
  int maxThreadsPerMultiProcessor;
  int memoryBusWidth;
  int clockRate;
  int pciBusID;
  int pciDeviceID;
  int integrated;
  int unifiedAddressing;
};

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaDeviceReset();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes);

cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int flags);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaHostRegister(void* p, size_t bytes, unsigned int flags);
cudaError_t cudaHostUnregister(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = 0);

cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags = 0);
cudaError_t cudaLaunchHostFunc(cudaStream_t s, cudaHostFn_t fn, void* userData);
// Stream capture and graphs (emulated in relaxed mode, the mode the addon uses: work queued on a
// capturing stream is recorded in order instead of run; a launched graph replays it in that order).
// Anything that would wait on a capturing stream (a synchronous copy, a synchronize, an event)
// fails with cudaErrorStreamCaptureUnsupported and invalidates the capture, as on a GPU.
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop);

namespace cuda_emu {
cudaError_t funcSetAttribute(const void* fn, cudaFuncAttribute attr, int value);
}
template <class T>
cudaError_t cudaFuncSetAttribute(T* fn, cudaFuncAttribute attr, int value) {
  return cuda_emu::funcSetAttribute(reinterpret_cast<const void*>(fn), attr, value);
}

// ---------------------------------------------------------------------------------------------
// Device model interface (implemented in device.cc)
// ---------------------------------------------------------------------------------------------
namespace cuda_emu {

/** What a CUDA thread sees of itself; `threadIdx` etc. read the running fiber's copy. */
struct ThreadCtx {
  uint3 tid, bid;  // threadIdx, blockIdx
  dim3 bdim, gdim;  // blockDim, gridDim
  int linear;  // linear thread index in the block
  int lane, warp;
};
extern thread_local ThreadCtx* tlsCtx __attribute__((tls_model("initial-exec")));

/** Ends the current CUDA thread and the whole launch with an error (a trap): the launch fails
 *  with `code` and a message naming the kernel, block, thread and `what`. */
[[noreturn]] void kernelFault(cudaError_t code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
/** Name of the running kernel ("" outside a launch). */
const char* kernelName();

// Barriers: id 0..15; count 0 = every thread of the block.
void barrierSync(int id, unsigned count, const char* what);
void barrierArrive(int id, unsigned count);
int barrierSyncReduce(int pred, int op /*0 count, 1 and, 2 or*/);

/** One lane's part in a warp collective. The last lane to arrive (all lanes of `mask` present,
 *  all at the same collective) runs `resolve` over the 32 slots (unused lanes: nullptr). */
struct WarpSlot {
  uint64_t in = 0, out = 0;
  int arg = 0, width = 32;
  const void* p0 = nullptr;
  void* p1 = nullptr;
  const void* p2 = nullptr;
  const void* p3 = nullptr;
};
typedef void (*WarpResolve)(WarpSlot* const* slots, uint32_t mask);
void warpCollective(const char* what, WarpResolve resolve, uint32_t mask, WarpSlot* slot);
/** The same for the 128 threads of a warpgroup (wgmma): every one of them must take part. */
void warpgroupCollective(const char* what, WarpResolve resolve, WarpSlot* slot);
uint32_t activeMask();

// Shared memory of the running block.
void* staticShared(const void* tag, size_t bytes, size_t align);
void* dynamicShared();
size_t dynamicSharedBytes();
/** True when [p, p + bytes) lies in the running block's shared memory. */
bool isShared(const void* p, size_t bytes);
/** The start of the running block's shared-memory window (page-aligned): the shared-state-space
 *  address 0 that 14-bit descriptor fields (wgmma) count from. */
char* sharedWindow();
/** True when [p, p + bytes) lies inside one live cudaMalloc allocation. */
bool isGlobal(const void* p, size_t bytes);

// Asynchronous copies of the running block, delivered when the block's fibers next all wait.
struct AsyncCopy;
/** Queues `fn(arg)`, run by the async proxy after the current round of fibers. */
void asyncProxy(void (*fn)(void*), std::shared_ptr<void> arg);

// cp.async (per thread): queued at issue, landed at wait_group.
void cpAsyncQueue(void* dst, const void* src, int bytes, int srcBytes);
void cpAsyncCommit();
void cpAsyncWait(int pendingGroups);

// mbarrier (shared-memory 64-bit object; the state lives in a side table of the block).
void mbarInit(uint64_t* bar, unsigned count);
void mbarInval(uint64_t* bar);
uint64_t mbarArrive(uint64_t* bar, unsigned count, int64_t expectTx);
void mbarExpectTx(uint64_t* bar, int64_t tx);
void mbarCompleteTx(uint64_t* bar, int64_t tx);
bool mbarTestWait(uint64_t* bar, uint32_t parity);
/** Blocks the thread until the phase of `parity` has completed; a wait that can never complete
 *  ends the launch with an error. Returns true. */
bool mbarWait(uint64_t* bar, uint32_t parity);

struct LaunchSpec {
  dim3 grid, block;
  size_t smem = 0;
  cudaStream_t stream = nullptr;
  const char* name = "";
  const void* fn = nullptr;
};
cudaError_t submitLaunch(const LaunchSpec& spec, void (*invoke)(void*), std::shared_ptr<void> data);

template <class... P>
struct Launcher {
  void (*fn)(P...);
  LaunchSpec spec;
  template <class... A>
  cudaError_t operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    using Args = std::tuple<std::decay_t<P>...>;
    struct Data {
      void (*fn)(P...);
      Args args;
    };
    auto data = std::make_shared<Data>(Data{fn, Args(std::forward<A>(a)...)});
    return submitLaunch(spec, [](void* d) {
      auto* x = static_cast<Data*>(d);
      std::apply(x->fn, x->args);  // each CUDA thread gets its own copy of the parameters
    }, data);
  }
};

template <class... P>
Launcher<P...> launch(void (*fn)(P...), const char* name, dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) {
  LaunchSpec s;
  s.grid = grid;
  s.block = block;
  s.smem = smem;
  s.stream = stream;
  s.name = name;
  s.fn = reinterpret_cast<const void*>(fn);
  return Launcher<P...>{fn, s};
}

template <class T>
T& sharedVar(const void* tag, size_t align) {
  return *static_cast<T*>(staticShared(tag, sizeof(T), align < alignof(T) ? alignof(T) : align));
}

template <class T>
inline uint64_t toBits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp collectives take values of up to 8 bytes");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}
template <class T>
inline T fromBits(uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}
void resolveShfl(WarpSlot* const* s, uint32_t mask);  // arg: mode << 8 | ...; see device.cc
void resolveVote(WarpSlot* const* s, uint32_t mask);
void resolveMatch(WarpSlot* const* s, uint32_t mask);
void resolveSyncwarp(WarpSlot* const* s, uint32_t mask);
void resolveReduce(WarpSlot* const* s, uint32_t mask);

template <class T>
inline T shfl(const char* what, int mode, uint32_t mask, T v, int b, int width) {
  WarpSlot s;
  s.in = toBits(v);
  s.arg = b;
  s.width = (mode << 16) | width;
  warpCollective(what, resolveShfl, mask, &s);
  return fromBits<T>(s.out);
}

}  // namespace cuda_emu

#define threadIdx (::cuda_emu::tlsCtx->tid)
#define blockIdx (::cuda_emu::tlsCtx->bid)
#define blockDim (::cuda_emu::tlsCtx->bdim)
#define gridDim (::cuda_emu::tlsCtx->gdim)
constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------
// Device intrinsics
// ---------------------------------------------------------------------------------------------
inline void __syncthreads() { cuda_emu::barrierSync(0, 0, "__syncthreads"); }
inline int __syncthreads_count(int p) { return cuda_emu::barrierSyncReduce(p, 0); }
inline int __syncthreads_and(int p) { return cuda_emu::barrierSyncReduce(p, 1); }
inline int __syncthreads_or(int p) { return cuda_emu::barrierSyncReduce(p, 2); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  cuda_emu::WarpSlot s;
  cuda_emu::warpCollective("__syncwarp", cuda_emu::resolveSyncwarp, mask, &s);
}
template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) { return cuda_emu::shfl("__shfl_sync", 3, mask, v, src, width); }
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) { return cuda_emu::shfl("__shfl_up_sync", 0, mask, v, int(d), width); }
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) { return cuda_emu::shfl("__shfl_down_sync", 1, mask, v, int(d), width); }
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) { return cuda_emu::shfl("__shfl_xor_sync", 2, mask, v, m, width); }
inline unsigned __ballot_sync(unsigned mask, int pred) {
  cuda_emu::WarpSlot s;
  s.in = pred != 0;
  s.arg = 0;
  cuda_emu::warpCollective("__ballot_sync", cuda_emu::resolveVote, mask, &s);
  return unsigned(s.out);
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) {
  cuda_emu::WarpSlot s;
  s.in = pred != 0;
  s.arg = 1;
  cuda_emu::warpCollective("__all_sync", cuda_emu::resolveVote, mask, &s);
  return int(s.out);
}
template <class T> inline unsigned __match_any_sync(unsigned mask, T v) {
  cuda_emu::WarpSlot s;
  s.in = cuda_emu::toBits(v);
  s.arg = 0;
  cuda_emu::warpCollective("__match_any_sync", cuda_emu::resolveMatch, mask, &s);
  return unsigned(s.out);
}
template <class T> inline unsigned __match_all_sync(unsigned mask, T v, int* pred) {
  cuda_emu::WarpSlot s;
  s.in = cuda_emu::toBits(v);
  s.arg = 1;
  cuda_emu::warpCollective("__match_all_sync", cuda_emu::resolveMatch, mask, &s);
  *pred = s.out != 0;
  return unsigned(s.out);
}
#define DSN_EMU_REDUCE(name, op)                                                        \
  inline unsigned name(unsigned mask, unsigned v) {                                     \
    cuda_emu::WarpSlot s;                                                               \
    s.in = v;                                                                           \
    s.arg = op;                                                                         \
    cuda_emu::warpCollective(#name, cuda_emu::resolveReduce, mask, &s);                 \
    return unsigned(s.out);                                                             \
  }
DSN_EMU_REDUCE(__reduce_add_sync, 0)
DSN_EMU_REDUCE(__reduce_min_sync, 1)
DSN_EMU_REDUCE(__reduce_max_sync, 2)
DSN_EMU_REDUCE(__reduce_and_sync, 3)
DSN_EMU_REDUCE(__reduce_or_sync, 4)
DSN_EMU_REDUCE(__reduce_xor_sync, 5)
#undef DSN_EMU_REDUCE
inline unsigned __activemask() { return cuda_emu::activeMask(); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] inline void __trap() { cuda_emu::kernelFault(cudaErrorLaunchFailure, "__trap()"); }
inline void __nanosleep(unsigned) {}
long long clock64();

// Atomics: real host atomics (several streams may run kernels at once).
template <class T> inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
template <class F> inline F atomicAddFloat(F* p, F v) {
  F old, next;
  __atomic_load(p, &old, __ATOMIC_SEQ_CST);
  do next = old + v;
  while (!__atomic_compare_exchange(p, &old, &next, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
  return old;
}
inline float atomicAdd(float* p, float v) { return atomicAddFloat(p, v); }
inline double atomicAdd(double* p, double v) { return atomicAddFloat(p, v); }
template <class T> inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
template <class T> inline T atomicExch(T* p, T v) { T old; __atomic_exchange(p, &v, &old, __ATOMIC_SEQ_CST); return old; }
template <class T> inline T atomicCAS(T* p, T cmp, T v) {
  __atomic_compare_exchange(p, &cmp, &v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return cmp;
}
template <class T> inline T atomicMax(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
  return old;
}
template <class T> inline T atomicMin(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (old > v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
  return old;
}
template <class T> inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
template <class T> inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
template <class T> inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicInc(unsigned* p, unsigned lim) {
  unsigned old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (!__atomic_compare_exchange_n(p, &old, old >= lim ? 0u : old + 1, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
  return old;
}

// Math and bit intrinsics.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __powf(float a, float b) { return std::pow(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : (x == x ? x : 0.f)); }
inline float exp2f(float x) { return std::exp2(x); }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  uint64_t v = (uint64_t(y) << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) r |= unsigned((v >> (((s >> (4 * i)) & 7) * 8)) & 0xff) << (8 * i);
  return r;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
