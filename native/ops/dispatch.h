// How an op reaches a device once its arguments are checked: CPU work is queued on the CPU stream
// (holding the tensors it touches until it has run); CUDA work is launched on the device's stream.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "../runtime/tensor.h"

namespace dsn {

/** Queues `fn(pool)` on the CPU stream; `keep` holds the storages alive until it has run. */
template <typename Fn>
void enqueueCpu(const char* op, std::vector<TensorRef> keep, Fn fn) {
  CpuBackend::get().enqueue(op, [keep = std::move(keep), fn]() mutable { fn(CpuBackend::get().pool()); });
}

#ifdef DSN_WITH_CUDA
/** The cudaStream_t (as void*) of a CUDA device. */
void* cudaStreamFor(const DeviceId& device);
/** Throws "<op>: CUDA error: <message>" when a launcher reported an error. */
inline void checkLaunch(const char* op, const std::string& error) {
  if (!error.empty()) throwError(op, ": CUDA error: ", error);
}
#endif

}  // namespace dsn
