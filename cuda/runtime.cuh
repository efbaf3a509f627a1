// The CUDA runtime surface the addon uses: devices, memory, streams, events and copies. Plain C++
// (no CUDA headers), so native/ compiles without nvcc. Every call that can fail returns "" on
// success or the CUDA error as "<cudaErrorName>: <description>"; nothing here aborts.
//
// Each call that takes a device makes it current first (useDevice): that is the one place the
// current device is set, so work for cuda:1 never runs with cuda:0 current.
#pragma once
#include <cstddef>
#include <string>

namespace dsn::cuda {

struct DeviceProps {
  std::string name;       // "NVIDIA H200"
  size_t totalBytes = 0;  // global memory
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
};

/** Number of visible CUDA devices; 0 with the reason in *why (no driver, a driver too old for
 *  this build's CUDA, no GPU). */
int deviceCount(std::string* why);
/** The driver's CUDA version as 13000 for 13.0; 0 when there is no driver. */
int driverVersion();
/** The CUDA runtime version this build links (13000 for 13.0). */
int runtimeVersion();
std::string deviceProperties(int device, DeviceProps* out);
/** Architectures this build has code for, comma-separated ("sm_90a"). */
const char* compiledArchitectures();

/** Makes `device` current on the calling thread. */
std::string useDevice(int device);
/** Takes the error an earlier call or kernel left (cudaGetLastError); "" when there is none. */
std::string takeError();

std::string allocate(int device, size_t bytes, void** out);
std::string release(int device, void* p);
/** Page-locked host memory (visible to every device), for staging copies. */
std::string allocateHost(size_t bytes, void** out);
std::string releaseHost(void* p);

/** A stream that does not wait on the legacy default stream. */
std::string createStream(int device, void** stream);
std::string copyHostToDeviceAsync(int device, void* stream, void* dst, const void* pinnedSrc, size_t bytes);
std::string copyDeviceToHostAsync(int device, void* stream, void* pinnedDst, const void* src, size_t bytes);
std::string memsetAsync(int device, void* stream, void* dst, int value, size_t bytes);
/** Runs fn(arg) on a CUDA thread once the work queued on `stream` so far has run. fn must not call CUDA. */
std::string hostCallback(int device, void* stream, void (*fn)(void*), void* arg);

std::string createEvent(int device, void** event);
std::string recordEvent(int device, void* event, void* stream);
/** Blocks the calling thread (never the JavaScript thread) until the event has completed. */
std::string waitEvent(int device, void* event);
void destroyEvent(int device, void* event);
/** Waits for all work queued on `stream`; returns the first asynchronous error, if any. */
std::string synchronize(int device, void* stream);

/** Starts capturing the work queued on `stream` into a graph instead of running it. Relaxed mode:
 *  memory may still be allocated while capturing (the caching allocator grows on a first step). */
std::string beginCapture(int device, void* stream);
/** Ends the capture begun on `stream` and instantiates it; *exec is the executable graph, or
 *  nullptr when the capture failed (the stream has left capture mode either way). */
std::string endCapture(int device, void* stream, void** exec);
/** Queues one replay of an executable graph on `stream`. */
std::string launchGraph(int device, void* exec, void* stream);
void destroyGraph(int device, void* exec);

/** Device-to-device copy bandwidth in GB/s (bytes read + written), best of a few copies of `bytes`. */
std::string copyBandwidth(int device, size_t bytes, double* gbPerSecond);

}  // namespace dsn::cuda
