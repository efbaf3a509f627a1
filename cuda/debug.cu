// CUDA bodies of the debug ops (native/params/debug.h): a fill and a delay in stream order, a kernel
// that raises the stream's error word, and one that writes through a null pointer (a sticky error,
// for a test run in a child process).
#include <cuda_runtime.h>

#include <chrono>
#include <thread>

#include "debug.cuh"
#include "device_error.cuh"
#include "launch_check.cuh"

namespace dsn::cuda {
namespace {

__global__ void debugRaiseKernel(DebugRaiseDeviceParams p, DeviceErrorWord* w, uint32_t op) {
  if (threadIdx.x == 5) raiseDeviceError(w, op, DeviceErrorWhat(p.what), p.value, p.bound);
}

__global__ void debugIllegalAddressKernel(int* p) { p[threadIdx.x] = 1; }

void delayHost(void* arg) {
  std::this_thread::sleep_for(std::chrono::milliseconds(reinterpret_cast<uintptr_t>(arg)));
}

}  // namespace

std::string debugFillLaunch(const DebugFillParams& p, const CudaLaunch& l) {
  if (!p.bytes) return "";
  return errorText(cudaMemsetAsync(p.dst, p.value, p.bytes, static_cast<cudaStream_t>(l.stream)));
}

std::string debugDelayLaunch(const DebugDelayParams& p, const CudaLaunch& l) {
  return errorText(cudaLaunchHostFunc(static_cast<cudaStream_t>(l.stream), delayHost, reinterpret_cast<void*>(uintptr_t(p.ms))));
}

std::string debugRaiseDeviceLaunch(const DebugRaiseDeviceParams& p, const CudaLaunch& l) {
  debugRaiseKernel<<<2, 32, 0, static_cast<cudaStream_t>(l.stream)>>>(p, l.error, l.op);
  return launchError();
}

std::string debugIllegalAddressLaunch(const DebugFillParams&, const CudaLaunch& l) {
  debugIllegalAddressKernel<<<1, 32, 0, static_cast<cudaStream_t>(l.stream)>>>(nullptr);
  return launchError();
}

}  // namespace dsn::cuda
