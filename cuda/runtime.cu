#include <cuda_runtime.h>

#include "launch_check.cuh"
#include "runtime.cuh"

#ifndef DSN_CUDA_ARCHS
#define DSN_CUDA_ARCHS "sm_90a"
#endif

namespace dsn::cuda {

std::string errorText(cudaError_t e) {
  if (e == cudaSuccess) return "";
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

static std::string versionString(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

int driverVersion() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) v = 0;
  return v;
}

int runtimeVersion() {
  int v = 0;
  if (cudaRuntimeGetVersion(&v) != cudaSuccess) v = 0;
  return v;
}

int deviceCount(std::string* why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it so later calls do not report it
    std::string text = errorText(e);
    int driver = driverVersion(), runtime = runtimeVersion();
    if (e == cudaErrorInsufficientDriver)
      text += driver ? " (the driver supports CUDA " + versionString(driver) + "; this build needs CUDA " + versionString(runtime) +
                           (runtime >= 13000 ? ", driver R580 or newer)" : ")")
                     : " (no NVIDIA driver is installed)";
    if (why) *why = text;
    return 0;
  }
  if (why) *why = n ? "" : "no CUDA device found";
  return n;
}

std::string deviceProperties(int device, DeviceProps* out) {
  cudaDeviceProp prop;
  cudaError_t e = cudaGetDeviceProperties(&prop, device);
  if (e != cudaSuccess) return errorText(e);
  out->name = prop.name;
  out->totalBytes = prop.totalGlobalMem;
  out->major = prop.major;
  out->minor = prop.minor;
  out->multiprocessors = prop.multiProcessorCount;
  return "";
}

const char* compiledArchitectures() { return DSN_CUDA_ARCHS; }

std::string useDevice(int device) {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current == device) return "";
  return errorText(cudaSetDevice(device));
}

std::string takeError() { return errorText(cudaGetLastError()); }

std::string allocate(int device, size_t bytes, void** out) {
  *out = nullptr;
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  cudaError_t e = cudaMalloc(out, bytes);
  if (e != cudaSuccess) {
    *out = nullptr;
    // An out-of-memory error is not sticky; clear it so the next launch is not blamed for it. A
    // sticky error (an earlier kernel's illegal address) stays and is reported as what it is.
    if (e == cudaErrorMemoryAllocation) cudaGetLastError();
  }
  return errorText(e);
}

std::string release(int device, void* p) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaFree(p));
}

std::string allocateHost(size_t bytes, void** out) {
  *out = nullptr;
  cudaError_t e = cudaMallocHost(out, bytes);
  if (e != cudaSuccess) {
    *out = nullptr;
    if (e == cudaErrorMemoryAllocation) cudaGetLastError();
  }
  return errorText(e);
}

std::string releaseHost(void* p) { return errorText(cudaFreeHost(p)); }

std::string createStream(int device, void** stream) {
  *stream = nullptr;
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  cudaStream_t s = nullptr;
  cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  *stream = s;
  return errorText(e);
}

std::string copyHostToDeviceAsync(int device, void* stream, void* dst, const void* pinnedSrc, size_t bytes) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaMemcpyAsync(dst, pinnedSrc, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)));
}

std::string copyDeviceToHostAsync(int device, void* stream, void* pinnedDst, const void* src, size_t bytes) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaMemcpyAsync(pinnedDst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream)));
}

std::string memsetAsync(int device, void* stream, void* dst, int value, size_t bytes) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaMemsetAsync(dst, value, bytes, static_cast<cudaStream_t>(stream)));
}

std::string hostCallback(int device, void* stream, void (*fn)(void*), void* arg) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaLaunchHostFunc(static_cast<cudaStream_t>(stream), fn, arg));
}

std::string createEvent(int device, void** event) {
  *event = nullptr;
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  cudaEvent_t ev = nullptr;
  cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
  *event = ev;
  return errorText(e);
}

std::string recordEvent(int device, void* event, void* stream) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream)));
}

std::string waitEvent(int device, void* event) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaEventSynchronize(static_cast<cudaEvent_t>(event)));
}

void destroyEvent(int device, void* event) {
  if (!event) return;
  useDevice(device);
  cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

std::string synchronize(int device, void* stream) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}

std::string beginCapture(int device, void* stream) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaStreamBeginCapture(static_cast<cudaStream_t>(stream), cudaStreamCaptureModeRelaxed));
}

std::string endCapture(int device, void* stream, void** exec) {
  *exec = nullptr;
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &graph);
  if (e == cudaSuccess) {
    cudaGraphExec_t x = nullptr;
    e = cudaGraphInstantiate(&x, graph, 0);
    if (e == cudaSuccess) *exec = x;
  }
  if (graph) cudaGraphDestroy(graph);
  std::string text = errorText(e);
  if (e != cudaSuccess) cudaGetLastError();  // a failed capture is not sticky: later work may run
  return text;
}

std::string launchGraph(int device, void* exec, void* stream) {
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  return errorText(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), static_cast<cudaStream_t>(stream)));
}

void destroyGraph(int device, void* exec) {
  if (!exec) return;
  useDevice(device);
  cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}

std::string copyBandwidth(int device, size_t bytes, double* gbPerSecond) {
  *gbPerSecond = 0;
  std::string err = useDevice(device);
  if (!err.empty()) return err;
  cudaError_t e = cudaSuccess;
  void *a = nullptr, *b = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  cudaStream_t s = nullptr;
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (e == cudaSuccess) e = cudaMalloc(&a, bytes);
  if (e == cudaSuccess) e = cudaMalloc(&b, bytes);
  if (e == cudaSuccess) e = cudaEventCreate(&start);
  if (e == cudaSuccess) e = cudaEventCreate(&stop);
  if (e == cudaSuccess) e = cudaMemsetAsync(a, 1, bytes, s);
  for (int rep = 0; rep < 5 && e == cudaSuccess; ++rep) {
    e = cudaEventRecord(start, s);
    if (e == cudaSuccess) e = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s);
    if (e == cudaSuccess) e = cudaEventRecord(stop, s);
    if (e == cudaSuccess) e = cudaEventSynchronize(stop);
    float ms = 0;
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, start, stop);
    if (e == cudaSuccess && ms > 0) {
      double gbs = 2.0 * double(bytes) / (double(ms) * 1e-3) / 1e9;
      if (gbs > *gbPerSecond) *gbPerSecond = gbs;
    }
  }
  if (e == cudaErrorMemoryAllocation) cudaGetLastError();
  if (s) cudaStreamSynchronize(s);
  if (start) cudaEventDestroy(start);
  if (stop) cudaEventDestroy(stop);
  if (a) cudaFree(a);
  if (b) cudaFree(b);
  if (s) cudaStreamDestroy(s);
  return errorText(e);
}

}  // namespace dsn::cuda
