// The one seam between ops and backends. An op in native/ops/ validates its arguments, fills its
// params (native/params/<family>.h) and calls launch() once:
//
//   static const Kernels<RmsNormParams> kRmsNorm{"rmsNorm", cpu::rmsNorm, DSN_CUDA_KERNEL(cuda::rmsNormLaunch)};
//   DSN_KERNELS(kRmsNorm);                       // the addon's opDevices() lists it
//   ...
//   launch(kRmsNorm, x->device, p, {x, w, out});
//
// launch() owns: the CPU enqueue (holding the storages until the kernel has run), the CUDA device
// (made current) and stream, the check for errors left by earlier work (reported as theirs), the
// launch's own error named after the op, and the error for a device the op has no kernel for.
// Kernels that find bad data while running set the stream's error word (native/params/launch.h;
// CPU kernels throw), which the next sync point raises naming the op.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "../params/launch.h"
#include "../runtime/tensor.h"

namespace dsn {

/** Queues `fn(pool)` on the CPU stream (or records it in the graph being captured); the storages of
 *  `keep` stay alive until it has run (recorded: while the graph lives). */
template <typename Fn>
void enqueueCpu(const char* op, const std::vector<TensorRef>& keep, Fn fn) {
  std::vector<std::shared_ptr<Storage>> storages;
  storages.reserve(keep.size());
  for (const TensorRef& t : keep)
    if (t) storages.push_back(t->storage);
  CpuBackend::get().enqueue(op, [fn]() mutable { fn(CpuBackend::get().pool()); }, std::move(storages));
}

#ifdef DSN_WITH_CUDA
#define DSN_CUDA_KERNEL(fn) (fn)
#else
#define DSN_CUDA_KERNEL(fn) nullptr
#endif

/** An op's kernels: the CPU body (always) and the CUDA launcher (nullptr where there is none yet). */
template <typename Params>
struct Kernels {
  const char* op;
  void (*cpu)(const Params&, ThreadPool&);
  std::string (*cuda)(const Params&, const CudaLaunch&);
};

/** Registers an op's devices for opDevices() (one line per Kernels, at file scope). */
struct KernelRegistration {
  KernelRegistration(const char* op, bool cuda);
};
#define DSN_KERNELS_CAT2(a, b) a##b
#define DSN_KERNELS_CAT(a, b) DSN_KERNELS_CAT2(a, b)
#define DSN_KERNELS(k) static ::dsn::KernelRegistration DSN_KERNELS_CAT(dsn_kernels_, __LINE__)((k).op, (k).cuda != nullptr)
/** Registers an op that runs on the CPU only and does not go through launch() yet. */
#define DSN_CPU_ONLY(op) static ::dsn::KernelRegistration DSN_KERNELS_CAT(dsn_kernels_, __LINE__)(op, false)

/** Each registered op and the devices it runs on ("cpu", "cuda"), sorted by op. */
std::vector<std::pair<std::string, std::vector<std::string>>> opDevices();

/** A small stable number per op name, for the device error word. */
uint32_t opId(const char* op);
std::string opName(uint32_t id);
/** "<op>: <what> <value> is out of range [0, <bound>)", the text of a device error word (and of
 *  the CPU kernels' matching errors). */
std::string deviceErrorText(const char* op, uint32_t what, int64_t value, int64_t bound);

/** Throws "<op> has no CUDA kernel yet (<arg> is on cuda:N)" when `device` is a CUDA device and the
 *  op has none; ops call it before allocating outputs. */
template <typename Params>
void expectKernelFor(const Kernels<Params>& k, const DeviceId& device, const char* arg = "x") {
  if (device.type == DeviceType::CUDA && !k.cuda) throwType(k.op, " has no CUDA kernel yet (", arg, " is on ", device.name(), ")");
}

#ifdef DSN_WITH_CUDA
/** The launch context of `op` on a CUDA device (device made current; throws on an earlier error). */
CudaLaunch cudaBeginLaunch(const DeviceId& device, const char* op);
/** Records `op` as the last op queued; throws "<op>: CUDA error on cuda:N: <error>" when it failed. */
void cudaEndLaunch(const DeviceId& device, const char* op, const std::string& error);
#endif

/** Runs an op's kernel on `device`: queued on the CPU stream holding `keep`, or launched on the
 *  CUDA device's stream (stream order keeps CUDA storages valid; nothing needs holding). */
template <typename Params>
void launch(const Kernels<Params>& k, const DeviceId& device, const Params& p, std::vector<TensorRef> keep) {
  if (device.type == DeviceType::CPU) {
    auto fn = k.cpu;
    enqueueCpu(k.op, std::move(keep), [fn, p](ThreadPool& pool) { fn(p, pool); });
    return;
  }
  expectKernelFor(k, device);
#ifdef DSN_WITH_CUDA
  CudaLaunch l = cudaBeginLaunch(device, k.op);
  cudaEndLaunch(device, k.op, k.cuda(p, l));
#endif
}

}  // namespace dsn
