// cuda-emu: the CUDA runtime API subset, on the host. Streams are host threads running their
// queue in order (the legacy default stream synchronises with the blocking streams, as CUDA's
// does); events mark a position in a stream; device memory is mmap'd so that every allocation
// ends at a guard page and a freed one is unmapped; errors are sticky per device, as on a GPU: after
// a kernel faults, every call returns the fault until cudaDeviceReset.
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cuda_emu.h"
#include "emu_internal.h"

struct CUstream_st {
  int device = 0;
  bool blocking = true;
  bool legacy = false;
  std::mutex mu;
  std::condition_variable cv;
  struct Task {
    std::function<void()> fn;
    std::vector<std::pair<CUstream_st*, uint64_t>> deps;
  };
  std::deque<Task> queue;
  // While capturing (cudaStreamBeginCapture .. EndCapture): the work queued, in order, instead of run.
  std::unique_ptr<std::vector<std::function<void()>>> capture;
  bool captureInvalidated = false;  // something that cannot be captured was asked for
  uint64_t enqueued = 0;
  std::atomic<uint64_t> completed{0};
  bool stop = false;
  std::thread thread;
};

struct CUgraph_st {
  std::vector<std::function<void()>> nodes;
};
struct CUgraphExec_st {
  // Shared with the launches still queued, so neither a launch nor cudaGraphExecDestroy copies them.
  std::shared_ptr<const std::vector<std::function<void()>>> nodes;
};

struct CUevent_st {
  unsigned flags = 0;
  struct Record {
    CUstream_st* stream = nullptr;
    uint64_t seq = 0;
    double ms = 0;
  };
  std::shared_ptr<Record> rec;
};

namespace cuda_emu {
namespace {

using Clock = std::chrono::steady_clock;
const Clock::time_point g_t0 = Clock::now();

constexpr int kMaxDevices = 8;
constexpr size_t kPage = 4096;
constexpr size_t kPoisonLimit = size_t(64) << 20;

struct Alloc {
  size_t size = 0;
  int kind = 0;  // 0 device, 1 pinned host (cudaMallocHost), 2 registered host
  int device = 0;
  char* map = nullptr;
  size_t mapBytes = 0;
};

struct Device {
  std::mutex mu;
  cudaError_t sticky = cudaSuccess;
  std::string stickyMessage;
  size_t used = 0;
  CUstream_st* legacy = nullptr;
  std::map<const void*, int> maxDynSmem;
};

std::mutex g_mu;                      // streams list, allocations, devices
std::condition_variable g_doneCv;     // any stream task completed
std::mutex g_doneMu;
std::vector<CUstream_st*> g_streams;  // every stream ever created (never freed: events may refer to them)
std::map<uintptr_t, Alloc> g_allocs;
Device g_devices[kMaxDevices];

thread_local int tlsDevice = 0;
thread_local cudaError_t tlsLastError = cudaSuccess;
thread_local std::string tlsLastMessage;
thread_local std::string tlsErrorString;

int deviceCount() {
  static const int n = [] {
    const char* e = getenv("DSN_EMU_DEVICE_COUNT");
    int v = e ? atoi(e) : 1;
    return v < 0 ? 0 : (v > kMaxDevices ? kMaxDevices : v);
  }();
  return n;
}

size_t deviceMemory() {
  static const size_t v = [] {
    const char* e = getenv("DSN_EMU_MEMORY_MB");
    long mb = e ? atol(e) : 4096;
    return size_t(mb > 0 ? mb : 4096) << 20;
  }();
  return v;
}

cudaError_t fail(cudaError_t e, const std::string& message = "") {
  tlsLastError = e;
  tlsLastMessage = message;
  return e;
}

cudaError_t sticky(int device) {
  std::lock_guard<std::mutex> l(g_devices[device].mu);
  return g_devices[device].sticky;
}

void setSticky(int device, cudaError_t e, const std::string& message) {
  std::lock_guard<std::mutex> l(g_devices[device].mu);
  if (g_devices[device].sticky == cudaSuccess) {
    g_devices[device].sticky = e;
    g_devices[device].stickyMessage = message;
  }
}

void streamLoop(CUstream_st* s) {
  for (;;) {
    CUstream_st::Task task;
    {
      std::unique_lock<std::mutex> l(s->mu);
      s->cv.wait(l, [&] { return s->stop || !s->queue.empty(); });
      if (s->queue.empty()) return;
      task = std::move(s->queue.front());
      s->queue.pop_front();
    }
    if (!task.deps.empty()) {
      std::unique_lock<std::mutex> l(g_doneMu);
      g_doneCv.wait(l, [&] {
        for (auto& [d, seq] : task.deps)
          if (d->completed.load() < seq) return false;
        return true;
      });
    }
    if (task.fn) task.fn();
    {
      std::lock_guard<std::mutex> l(g_doneMu);
      s->completed.fetch_add(1);
    }
    g_doneCv.notify_all();
  }
}

CUstream_st* newStream(int device, bool blocking, bool legacy) {
  auto* s = new CUstream_st();
  s->device = device;
  s->blocking = blocking;
  s->legacy = legacy;
  s->thread = std::thread(streamLoop, s);
  g_streams.push_back(s);  // under g_mu
  return s;
}

/** The stream object for a handle (the legacy default stream of the current device for 0). */
CUstream_st* resolve(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) {
    std::lock_guard<std::mutex> l(g_mu);
    Device& d = g_devices[tlsDevice];
    if (!d.legacy) d.legacy = newStream(tlsDevice, true, true);
    return d.legacy;
  }
  return s;
}

/** Queues fn on s after the work the stream semantics order it after; returns its sequence number. */
uint64_t enqueue(CUstream_st* s, std::function<void()> fn) {
  std::vector<std::pair<CUstream_st*, uint64_t>> deps;
  std::lock_guard<std::mutex> g(g_mu);
  {
    std::lock_guard<std::mutex> l(s->mu);
    if (s->capture) {  // recorded, not run: a graph launch replays it
      s->capture->push_back(std::move(fn));
      return 0;
    }
  }
  if (s->legacy) {
    for (CUstream_st* o : g_streams)
      if (o != s && o->blocking && o->device == s->device && !o->stop) {
        std::lock_guard<std::mutex> l(o->mu);
        if (o->enqueued) deps.push_back({o, o->enqueued});
      }
  } else if (s->blocking) {
    CUstream_st* lg = g_devices[s->device].legacy;
    if (lg) {
      std::lock_guard<std::mutex> l(lg->mu);
      if (lg->enqueued) deps.push_back({lg, lg->enqueued});
    }
  }
  uint64_t seq;
  {
    std::lock_guard<std::mutex> l(s->mu);
    seq = ++s->enqueued;
    s->queue.push_back({std::move(fn), std::move(deps)});
  }
  s->cv.notify_one();
  return seq;
}

/** True while s is capturing; then the capture is invalidated by `what`, which cannot be captured. */
bool refuseWhileCapturing(CUstream_st* s, const std::string& what) {
  std::lock_guard<std::mutex> l(s->mu);
  if (!s->capture) return false;
  s->captureInvalidated = true;
  fail(cudaErrorStreamCaptureUnsupported, what + " on a stream that is capturing a graph (the capture is invalidated)");
  return true;
}

void waitFor(CUstream_st* s, uint64_t seq) {
  std::unique_lock<std::mutex> l(g_doneMu);
  g_doneCv.wait(l, [&] { return s->completed.load() >= seq; });
}

void waitStream(CUstream_st* s) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> l(s->mu);
    seq = s->enqueued;
  }
  waitFor(s, seq);
}

void waitDevice(int device) {
  std::vector<CUstream_st*> all;
  {
    std::lock_guard<std::mutex> l(g_mu);
    for (CUstream_st* s : g_streams)
      if (s->device == device) all.push_back(s);
  }
  for (CUstream_st* s : all) waitStream(s);
}

/** The allocation holding p (nullptr if none); caller holds g_mu. */
const Alloc* findLocked(const void* p, uintptr_t* base) {
  auto it = g_allocs.upper_bound(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.begin()) return nullptr;
  --it;
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (a >= it->first + (it->second.size ? it->second.size : 1)) return nullptr;
  if (base) *base = it->first;
  return &it->second;
}

struct Range {
  bool device = false, pinned = false;
  bool inside = true;  // [p, p + n) inside its allocation
  int dev = 0;
};

Range classify(const void* p, size_t n) {
  std::lock_guard<std::mutex> l(g_mu);
  uintptr_t base = 0;
  const Alloc* a = findLocked(p, &base);
  Range r;
  if (!a) return r;
  r.device = a->kind == 0;
  r.pinned = a->kind != 0;
  r.dev = a->device;
  r.inside = reinterpret_cast<uintptr_t>(p) + n <= base + a->size;
  return r;
}

std::string hex(const void* p) {
  char b[32];
  snprintf(b, sizeof b, "%p", p);
  return b;
}

cudaError_t launchError(const std::string& m, cudaError_t e = cudaErrorInvalidValue) { return fail(e, m); }

}  // namespace

std::string describeGlobal(const void* p) {
  std::lock_guard<std::mutex> l(g_mu);
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it != g_allocs.begin()) {
    --it;
    const Alloc& al = it->second;
    if (a >= it->first && a < it->first + al.size) return "inside the allocation at " + hex(reinterpret_cast<void*>(it->first)) + " (a protection fault)";
    if (al.kind == 0 && a >= it->first + al.size && a < it->first + al.size + kPage + 256)
      return std::to_string(a - it->first - al.size) + " bytes past the end of the " + std::to_string(al.size) + "-byte allocation at " +
             hex(reinterpret_cast<void*>(it->first));
  }
  return "outside every live allocation (freed memory, or a wild pointer)";
}

bool isGlobal(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> l(g_mu);
  uintptr_t base = 0;
  const Alloc* a = findLocked(p, &base);
  return a && a->kind == 0 && reinterpret_cast<uintptr_t>(p) + bytes <= base + a->size;
}

cudaError_t funcSetAttribute(const void* fn, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > 232448) return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: max dynamic shared memory " + std::to_string(value) + " exceeds 227 KiB");
    std::lock_guard<std::mutex> l(g_mu);
    g_devices[tlsDevice].maxDynSmem[fn] = value;
  }
  return cudaSuccess;
}

cudaError_t submitLaunch(const LaunchSpec& spec, void (*invoke)(void*), std::shared_ptr<void> data) {
  if (cudaError_t e = sticky(tlsDevice)) return fail(e);
  const dim3 b = spec.block, g = spec.grid;
  uint64_t threads = uint64_t(b.x) * b.y * b.z;
  std::string name = spec.name;
  if (threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64)
    return launchError("kernel " + name + ": block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," + std::to_string(b.z) + ") is not a valid block shape", cudaErrorInvalidConfiguration);
  if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
    return launchError("kernel " + name + ": grid (" + std::to_string(g.x) + "," + std::to_string(g.y) + "," + std::to_string(g.z) + ") is not a valid grid", cudaErrorInvalidConfiguration);
  size_t limit = 48 * 1024;
  {
    std::lock_guard<std::mutex> l(g_mu);
    auto it = g_devices[tlsDevice].maxDynSmem.find(spec.fn);
    if (it != g_devices[tlsDevice].maxDynSmem.end()) limit = size_t(it->second);
  }
  if (spec.smem > limit)
    return launchError("kernel " + name + ": " + std::to_string(spec.smem) + " bytes of dynamic shared memory exceed the kernel's limit of " + std::to_string(limit) +
                       (limit == 48 * 1024 ? " (raise it with cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize))" : ""));
  CUstream_st* s = resolve(spec.stream);
  if (s->device != tlsDevice)
    return launchError("kernel " + name + ": launched on a stream of device " + std::to_string(s->device) + " while device " + std::to_string(tlsDevice) + " is current",
                       cudaErrorInvalidResourceHandle);
  auto L = std::make_shared<Launch>();
  L->name = name;
  L->grid = g;
  L->block = b;
  L->smem = spec.smem;
  L->invoke = invoke;
  L->data = std::move(data);
  int dev = tlsDevice;
  enqueue(s, [L, dev] {
    if (sticky(dev)) return;
    runLaunch(*L);
    if (L->code != cudaSuccess) setSticky(dev, L->code, L->message);
  });
  return cudaSuccess;
}

}  // namespace cuda_emu

using namespace cuda_emu;

// ------------------------------------------------------------------------------------------------
// Devices and errors
// ------------------------------------------------------------------------------------------------
cudaError_t cudaGetDeviceCount(int* count) {
  *count = deviceCount();
  return *count ? cudaSuccess : fail(cudaErrorNoDevice);
}
cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= deviceCount()) return fail(cudaErrorInvalidDevice);
  tlsDevice = device;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = tlsDevice;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device < 0 || device >= deviceCount()) return fail(cudaErrorInvalidDevice);
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "cuda-emu: emulated sm_90 device (CPU fibers)");
  p->totalGlobalMem = deviceMemory();
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 232448;
  p->sharedMemPerMultiprocessor = 233472;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024;
  p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = 65535;
  p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->l2CacheSize = 50 << 20;
  p->maxThreadsPerMultiProcessor = 2048;
  p->memoryBusWidth = 5120;
  p->clockRate = 1980000;
  p->unifiedAddressing = 1;
  p->pciDeviceID = device;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int device) {
  cudaDeviceProp p;
  if (cudaError_t e = cudaGetDeviceProperties(&p, device)) return e;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = int(p.sharedMemPerBlock); break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = int(p.sharedMemPerBlockOptin); break;
    case cudaDevAttrL2CacheSize: *v = p.l2CacheSize; break;
    default: return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  waitDevice(tlsDevice);
  if (cudaError_t e = sticky(tlsDevice)) return fail(e);
  return cudaSuccess;
}
cudaError_t cudaDeviceReset() {
  waitDevice(tlsDevice);
  Device& d = g_devices[tlsDevice];
  std::lock_guard<std::mutex> l(d.mu);
  d.sticky = cudaSuccess;
  d.stickyMessage.clear();
  tlsLastError = cudaSuccess;
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  cudaError_t s = sticky(tlsDevice);
  if (s) return s;
  cudaError_t e = tlsLastError;
  tlsLastError = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  cudaError_t s = sticky(tlsDevice);
  return s ? s : tlsLastError;
}
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define N(x) case x: return #x;
    N(cudaSuccess) N(cudaErrorInvalidValue) N(cudaErrorMemoryAllocation) N(cudaErrorInitializationError) N(cudaErrorInvalidConfiguration)
    N(cudaErrorInvalidSymbol) N(cudaErrorInvalidMemcpyDirection) N(cudaErrorInsufficientDriver) N(cudaErrorInvalidDeviceFunction) N(cudaErrorNoDevice)
    N(cudaErrorInvalidDevice) N(cudaErrorInvalidResourceHandle) N(cudaErrorNotReady) N(cudaErrorIllegalAddress) N(cudaErrorLaunchOutOfResources)
    N(cudaErrorLaunchTimeout) N(cudaErrorAssert) N(cudaErrorIllegalInstruction) N(cudaErrorMisalignedAddress) N(cudaErrorLaunchFailure)
    N(cudaErrorNotPermitted) N(cudaErrorNotSupported) N(cudaErrorIllegalState) N(cudaErrorStreamCaptureUnsupported)
    N(cudaErrorStreamCaptureInvalidated) N(cudaErrorUnknown)
#undef N
  }
  return "cudaErrorUnknown";
}
static const char* baseErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchTimeout: return "the launch timed out and was terminated";
    case cudaErrorIllegalInstruction: return "an illegal instruction was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return "unknown error";
  }
}
/** CUDA's text for the code; for the device's sticky error or this thread's last error, the
 *  emulator's detail (kernel, block, thread, what) follows in brackets. */
const char* cudaGetErrorString(cudaError_t e) {
  std::string detail;
  {
    Device& d = g_devices[tlsDevice];
    std::lock_guard<std::mutex> l(d.mu);
    if (d.sticky == e && !d.stickyMessage.empty()) detail = d.stickyMessage;
  }
  if (detail.empty() && e == tlsLastError) detail = tlsLastMessage;
  if (detail.empty() && e != cudaSuccess && tlsLastMessage.size() && e != cudaSuccess) detail = "";
  tlsErrorString = baseErrorString(e);
  if (!detail.empty()) tlsErrorString += " [cuda-emu: " + detail + "]";
  return tlsErrorString.c_str();
}
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes) {
  std::lock_guard<std::mutex> l(g_devices[tlsDevice].mu);
  *totalBytes = deviceMemory();
  *freeBytes = deviceMemory() - g_devices[tlsDevice].used;
  return cudaSuccess;
}

// ------------------------------------------------------------------------------------------------
// Memory
// ------------------------------------------------------------------------------------------------
cudaError_t cudaMalloc(void** out, size_t bytes) {
  *out = nullptr;
  if (cudaError_t e = sticky(tlsDevice)) return fail(e);
  if (bytes == 0) return cudaSuccess;
  Device& d = g_devices[tlsDevice];
  {
    std::lock_guard<std::mutex> l(d.mu);
    if (bytes > deviceMemory() - d.used) return fail(cudaErrorMemoryAllocation, "cudaMalloc of " + std::to_string(bytes) + " bytes: the emulated device has " + std::to_string(deviceMemory() - d.used) + " bytes free (DSN_EMU_MEMORY_MB)");
    d.used += bytes;
  }
  // The allocation ends at a guard page (rounded to 256 bytes, CUDA's alignment), so a kernel
  // that runs past it faults and is reported.
  size_t rounded = (bytes + 255) & ~size_t(255);
  size_t body = (rounded + kPage - 1) & ~(kPage - 1);
  size_t mapBytes = body + kPage;
  char* m = static_cast<char*>(mmap(nullptr, mapBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (m == MAP_FAILED) {
    std::lock_guard<std::mutex> l(d.mu);
    d.used -= bytes;
    return fail(cudaErrorMemoryAllocation);
  }
  mprotect(m + body, kPage, PROT_NONE);
  char* p = m + body - rounded;
  if (bytes <= kPoisonLimit) memset(p, 0xff, bytes);  // fresh device memory is not zero on a GPU either
  Alloc a;
  a.size = bytes;
  a.kind = 0;
  a.device = tlsDevice;
  a.map = m;
  a.mapBytes = mapBytes;
  {
    std::lock_guard<std::mutex> l(g_mu);
    g_allocs[reinterpret_cast<uintptr_t>(p)] = a;
  }
  *out = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  waitDevice(tlsDevice);  // cudaFree synchronises with the device
  Alloc a;
  {
    std::lock_guard<std::mutex> l(g_mu);
    auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it == g_allocs.end() || it->second.kind != 0) return fail(cudaErrorInvalidValue, "cudaFree(" + hex(p) + "): not a pointer returned by cudaMalloc");
    a = it->second;
    g_allocs.erase(it);
  }
  munmap(a.map, a.mapBytes);  // later uses of the pointer fault and are reported
  std::lock_guard<std::mutex> l(g_devices[a.device].mu);
  g_devices[a.device].used -= a.size;
  if (cudaError_t e = g_devices[a.device].sticky) return fail(e);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** out, size_t bytes, unsigned int) {
  *out = nullptr;
  void* p = nullptr;
  if (posix_memalign(&p, kPage, bytes ? bytes : 1) != 0) return fail(cudaErrorMemoryAllocation);
  Alloc a;
  a.size = bytes;
  a.kind = 1;
  std::lock_guard<std::mutex> l(g_mu);
  g_allocs[reinterpret_cast<uintptr_t>(p)] = a;
  *out = p;
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** out, size_t bytes) { return cudaHostAlloc(out, bytes, 0); }
cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> l(g_mu);
    auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it == g_allocs.end() || it->second.kind != 1) return fail(cudaErrorInvalidValue, "cudaFreeHost(" + hex(p) + "): not a pointer returned by cudaMallocHost");
    g_allocs.erase(it);
  }
  free(p);
  return cudaSuccess;
}
cudaError_t cudaHostRegister(void* p, size_t bytes, unsigned int) {
  std::lock_guard<std::mutex> l(g_mu);
  Alloc a;
  a.size = bytes;
  a.kind = 2;
  g_allocs[reinterpret_cast<uintptr_t>(p)] = a;
  return cudaSuccess;
}
cudaError_t cudaHostUnregister(void* p) {
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end() || it->second.kind != 2) return fail(cudaErrorInvalidValue);
  g_allocs.erase(it);
  return cudaSuccess;
}

namespace {
const char* kindName(cudaMemcpyKind k) {
  switch (k) {
    case cudaMemcpyHostToHost: return "HostToHost";
    case cudaMemcpyHostToDevice: return "HostToDevice";
    case cudaMemcpyDeviceToHost: return "DeviceToHost";
    case cudaMemcpyDeviceToDevice: return "DeviceToDevice";
    default: return "Default";
  }
}

cudaError_t memcpyImpl(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t stream, bool sync) {
  if (cudaError_t e = sticky(tlsDevice)) return fail(e);
  if (n == 0) return cudaSuccess;
  Range d = classify(dst, n), s = classify(src, n);
  if (kind == cudaMemcpyDefault) kind = cudaMemcpyKind((s.device ? 2 : 0) + (d.device ? 1 : 0));
  bool wantSrcDev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  bool wantDstDev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if (int(kind) < 0 || int(kind) > 4) return fail(cudaErrorInvalidMemcpyDirection);
  if (wantSrcDev != s.device || wantDstDev != d.device)
    return fail(cudaErrorInvalidValue, std::string("cudaMemcpy") + (sync ? "" : "Async") + " " + kindName(kind) + ": source " + hex(src) + " is " +
                                           (s.device ? "device" : "host") + " memory, destination " + hex(dst) + " is " + (d.device ? "device" : "host") + " memory");
  if ((s.device && !s.inside) || (d.device && !d.inside))
    return fail(cudaErrorInvalidValue, "cudaMemcpy of " + std::to_string(n) + " bytes runs past the end of the " + (s.device && !s.inside ? "source" : "destination") + " allocation");
  CUstream_st* st = resolve(stream);
  int dev = tlsDevice;
  if ((sync || (!wantDstDev && !d.pinned)) && refuseWhileCapturing(st, std::string("a synchronous cudaMemcpy ") + kindName(kind))) return cudaErrorStreamCaptureUnsupported;
  std::shared_ptr<std::vector<char>> staged;
  if (!wantSrcDev && !s.pinned) {  // pageable source: staged now, so the caller may reuse it at once
    staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src), static_cast<const char*>(src) + n);
    src = staged->data();
  }
  uint64_t seq = enqueue(st, [dst, src, n, staged, dev] {
    if (sticky(dev)) return;
    memcpy(dst, src, n);
  });
  // Synchronous for cudaMemcpy, and for copies into pageable host memory (as CUDA's are).
  if (sync || (!wantDstDev && !d.pinned)) {
    waitFor(st, seq);
    if (cudaError_t e = sticky(dev)) return fail(e);
  }
  return cudaSuccess;
}

cudaError_t memsetImpl(void* p, int value, size_t n, cudaStream_t stream, bool sync) {
  if (cudaError_t e = sticky(tlsDevice)) return fail(e);
  if (n == 0) return cudaSuccess;
  Range r = classify(p, n);
  if (!r.device || !r.inside) return fail(cudaErrorInvalidValue, "cudaMemset of " + std::to_string(n) + " bytes at " + hex(p) + ": not inside a device allocation");
  CUstream_st* st = resolve(stream);
  int dev = tlsDevice;
  if (sync && refuseWhileCapturing(st, "a synchronous cudaMemset")) return cudaErrorStreamCaptureUnsupported;
  uint64_t seq = enqueue(st, [p, value, n, dev] {
    if (!sticky(dev)) memset(p, value, n);
  });
  if (sync) waitFor(st, seq);
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) { return memcpyImpl(dst, src, n, kind, nullptr, true); }
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t s) { return memcpyImpl(dst, src, n, kind, s, false); }
cudaError_t cudaMemset(void* p, int v, size_t n) { return memsetImpl(p, v, n, nullptr, true); }
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t s) { return memsetImpl(p, v, n, s, false); }

// ------------------------------------------------------------------------------------------------
// Streams and events
// ------------------------------------------------------------------------------------------------
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* out, unsigned int flags) {
  if (cudaError_t e = sticky(tlsDevice)) return fail(e);
  std::lock_guard<std::mutex> l(g_mu);
  *out = newStream(tlsDevice, !(flags & cudaStreamNonBlocking), false);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* out) { return cudaStreamCreateWithFlags(out, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s || s == cudaStreamLegacy || s == cudaStreamPerThread) return fail(cudaErrorInvalidResourceHandle);
  waitStream(s);
  {
    std::lock_guard<std::mutex> l(s->mu);
    s->stop = true;
  }
  s->cv.notify_one();
  s->thread.join();  // the object stays: events recorded on it still refer to it
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (refuseWhileCapturing(s, "cudaStreamSynchronize")) return cudaErrorStreamCaptureUnsupported;
  waitStream(s);
  if (cudaError_t e = sticky(s->device)) return fail(e);
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  CUstream_st* s = resolve(stream);
  if (cudaError_t e = sticky(s->device)) return fail(e);
  std::lock_guard<std::mutex> l(s->mu);
  return s->completed.load() >= s->enqueued ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t e, unsigned int) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  CUstream_st* s = resolve(stream);
  if (refuseWhileCapturing(s, "cudaStreamWaitEvent")) return cudaErrorStreamCaptureUnsupported;
  auto rec = e->rec;
  if (!rec) return cudaSuccess;  // never recorded: nothing to wait for
  enqueue(s, [rec] { waitFor(rec->stream, rec->seq); });
  return cudaSuccess;
}
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* data) {
  if (cudaError_t e = sticky(tlsDevice)) return fail(e);
  CUstream_st* s = resolve(stream);
  int dev = s->device;
  // As on a GPU, a host function queued behind a kernel that faulted does not run.
  enqueue(s, [fn, data, dev] {
    if (!sticky(dev)) fn(data);
  });
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (cudaError_t e = sticky(tlsDevice)) return fail(e);
  if (!stream || stream == cudaStreamLegacy || stream == cudaStreamPerThread)
    return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture: the legacy default stream cannot capture");
  if (mode != cudaStreamCaptureModeRelaxed) return fail(cudaErrorNotSupported, "cudaStreamBeginCapture: the emulator captures in relaxed mode only");
  std::lock_guard<std::mutex> l(stream->mu);
  if (stream->capture) return fail(cudaErrorIllegalState, "cudaStreamBeginCapture: the stream is already capturing");
  stream->capture = std::make_unique<std::vector<std::function<void()>>>();
  stream->captureInvalidated = false;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  *graph = nullptr;
  if (!stream || stream == cudaStreamLegacy || stream == cudaStreamPerThread) return fail(cudaErrorIllegalState, "cudaStreamEndCapture: the stream is not capturing");
  std::unique_ptr<std::vector<std::function<void()>>> nodes;
  bool invalidated;
  {
    std::lock_guard<std::mutex> l(stream->mu);
    if (!stream->capture) return fail(cudaErrorIllegalState, "cudaStreamEndCapture: the stream is not capturing");
    nodes = std::move(stream->capture);
    invalidated = stream->captureInvalidated;
  }
  if (invalidated) return fail(cudaErrorStreamCaptureInvalidated, "cudaStreamEndCapture: the capture was invalidated by an operation that cannot be captured");
  *graph = new CUgraph_st{std::move(*nodes)};
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = nullptr;
  if (!graph) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: no graph");
  *exec = new CUgraphExec_st{std::make_shared<const std::vector<std::function<void()>>>(graph->nodes)};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return fail(cudaErrorInvalidResourceHandle, "cudaGraphLaunch: no executable graph");
  if (cudaError_t e = sticky(tlsDevice)) return fail(e);
  // The nodes run in capture order, as one item of the stream; each skips itself after a fault.
  enqueue(resolve(stream), [nodes = exec->nodes] {
    for (auto& fn : *nodes) fn();
  });
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;  // a launch already queued shares the nodes and keeps them
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* out, unsigned int flags) {
  *out = new CUevent_st();
  (*out)->flags = flags;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* out) { return cudaEventCreateWithFlags(out, cudaEventDefault); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  delete e;  // a pending record keeps its own state alive
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  if (cudaError_t err = sticky(tlsDevice)) return fail(err);
  CUstream_st* s = resolve(stream);
  if (refuseWhileCapturing(s, "cudaEventRecord")) return cudaErrorStreamCaptureUnsupported;
  auto rec = std::make_shared<CUevent_st::Record>();
  rec->stream = s;
  rec->seq = enqueue(s, [rec] { rec->ms = std::chrono::duration<double, std::milli>(Clock::now() - g_t0).count(); });
  e->rec = rec;
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  auto rec = e->rec;
  if (!rec) return cudaSuccess;
  if (cudaError_t err = sticky(rec->stream->device)) return fail(err);
  return rec->stream->completed.load() >= rec->seq ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) return fail(cudaErrorInvalidResourceHandle);
  auto rec = e->rec;
  if (!rec) return cudaSuccess;
  waitFor(rec->stream, rec->seq);
  if (cudaError_t err = sticky(rec->stream->device)) return fail(err);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a || !b) return fail(cudaErrorInvalidResourceHandle);
  if ((a->flags | b->flags) & cudaEventDisableTiming) return fail(cudaErrorInvalidResourceHandle);
  auto ra = a->rec, rb = b->rec;
  if (!ra || !rb) return fail(cudaErrorInvalidResourceHandle);
  if (ra->stream->completed.load() < ra->seq || rb->stream->completed.load() < rb->seq) return fail(cudaErrorNotReady);
  *ms = float(rb->ms - ra->ms);
  return cudaSuccess;
}
