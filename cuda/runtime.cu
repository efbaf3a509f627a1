#include <cuda_runtime.h>

#include "runtime.cuh"

namespace dsn::cuda {

static std::string status(cudaError_t e) {
  if (e == cudaSuccess) return "";
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

int deviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

std::string deviceProperties(int device, std::string* name, size_t* totalBytes, std::string* capability) {
  cudaDeviceProp prop;
  cudaError_t e = cudaGetDeviceProperties(&prop, device);
  if (e != cudaSuccess) return status(e);
  *name = prop.name;
  *totalBytes = prop.totalGlobalMem;
  *capability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  return "";
}

const char* compiledArchitectures() { return "sm_90a"; }

std::string allocate(int device, size_t bytes, void** out) {
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMalloc(out, bytes);
  if (e != cudaSuccess) {
    *out = nullptr;
    cudaGetLastError();
  }
  return status(e);
}

std::string release(int device, void* p) {
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaFree(p);
  return status(e);
}

std::string createStream(int device, void** stream) {
  cudaError_t e = cudaSetDevice(device);
  cudaStream_t s = nullptr;
  if (e == cudaSuccess) e = cudaStreamCreate(&s);  // blocking: ordered with synchronous copies
  *stream = s;
  return status(e);
}

std::string copyHostToDevice(int device, void* dst, const void* src, size_t bytes) {
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
  return status(e);
}

std::string copyDeviceToHost(int device, void* stream, void* dst, const void* src, size_t bytes) {
  cudaError_t e = cudaSetDevice(device);
  auto s = static_cast<cudaStream_t>(stream);
  if (e == cudaSuccess) e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  return status(e);
}

std::string synchronize(int device, void* stream) {
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
  return status(e);
}

}  // namespace dsn::cuda

namespace dsn::cuda {

std::string copyBandwidth(int device, size_t bytes, double* gbPerSecond) {
  *gbPerSecond = 0;
  cudaError_t e = cudaSetDevice(device);
  void *a = nullptr, *b = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  if (e == cudaSuccess) e = cudaMalloc(&a, bytes);
  if (e == cudaSuccess) e = cudaMalloc(&b, bytes);
  if (e == cudaSuccess) e = cudaEventCreate(&start);
  if (e == cudaSuccess) e = cudaEventCreate(&stop);
  if (e == cudaSuccess) e = cudaMemset(a, 1, bytes);
  for (int rep = 0; rep < 5 && e == cudaSuccess; ++rep) {
    cudaEventRecord(start);
    e = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(stop);
    if (e == cudaSuccess) e = cudaEventSynchronize(stop);
    float ms = 0;
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, start, stop);
    if (e == cudaSuccess && ms > 0) {
      double gbs = 2.0 * double(bytes) / (double(ms) * 1e-3) / 1e9;
      if (gbs > *gbPerSecond) *gbPerSecond = gbs;
    }
  }
  if (start) cudaEventDestroy(start);
  if (stop) cudaEventDestroy(stop);
  if (a) cudaFree(a);
  if (b) cudaFree(b);
  return status(e);
}

}  // namespace dsn::cuda
