// Test hooks, not part of the public ops list (DSN_INTERNAL_OP):
//   debugRaise(x, message)          a CPU task that throws: stream errors reach the next sync point
//   debugRaiseDevice(x, what, value, bound)  a kernel that finds bad data: it sets the stream's
//                                   error word (CUDA) or throws the same text (CPU)
//   debugFill(x, byte)              fills x in stream order (to test that reads are ordered)
//   debugDelay(device, ms)          holds the device's stream for ms milliseconds
//   debugIllegalAddress(device)     a CUDA kernel writing through a null pointer (sticky error)
//   debugFailHostAllocations(n)     the next n reads fail to allocate their host buffer
//   debugCudaArchCheck(archs, capability) -> "" or why a device cannot run such a build
#include <chrono>
#include <cstring>
#include <thread>

#include "../params/debug.h"
#include "../runtime/cuda_arch.h"
#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/debug.cuh"
#endif

namespace dsn {

namespace {

void fillCpu(const DebugFillParams& p, ThreadPool&) { std::memset(p.dst, p.value, p.bytes); }
void delayCpu(const DebugDelayParams& p, ThreadPool&) { std::this_thread::sleep_for(std::chrono::milliseconds(p.ms)); }
void raiseCpu(const DebugRaiseDeviceParams& p, ThreadPool&) {
  // The CPU kernels' form of a device error: the same text, thrown on the stream worker (which
  // prefixes the op name).
  std::string text = deviceErrorText("debugRaiseDevice", p.what, p.value, p.bound);
  throwRange(text.substr(std::strlen("debugRaiseDevice: ")));
}
void illegalCpu(const DebugFillParams&, ThreadPool&) { throwError("a CPU has no illegal address to write to"); }

const Kernels<DebugFillParams> kFill{"debugFill", fillCpu, DSN_CUDA_KERNEL(cuda::debugFillLaunch)};
const Kernels<DebugDelayParams> kDelay{"debugDelay", delayCpu, DSN_CUDA_KERNEL(cuda::debugDelayLaunch)};
const Kernels<DebugRaiseDeviceParams> kRaise{"debugRaiseDevice", raiseCpu, DSN_CUDA_KERNEL(cuda::debugRaiseDeviceLaunch)};
const Kernels<DebugFillParams> kIllegal{"debugIllegalAddress", illegalCpu, DSN_CUDA_KERNEL(cuda::debugIllegalAddressLaunch)};

}  // namespace

/** debugRaise(x, message): after the ops queued before it, raise `message` on x's stream. */
static Napi::Value DebugRaise(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "debugRaise");
    TensorRef x = a.tensor(0, "x");
    std::string message = a.string(1, "message");
    if (x->device.type != DeviceType::CPU) throwType("debugRaise: x must be on the cpu");
    enqueueCpu("debugRaise", {x}, [message](ThreadPool&) { throwRange(message); });
    return info.Env().Undefined();
  });
}

static Napi::Value DebugRaiseDevice(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "debugRaiseDevice");
    TensorRef x = a.tensor(0, "x");
    DebugRaiseDeviceParams p;
    p.what = uint32_t(a.integer(1, "what", 0, 1000));
    p.value = a.integer(2, "value", -(int64_t(1) << 53), int64_t(1) << 53);
    p.bound = a.integer(3, "bound", 0, int64_t(1) << 53);
    launch(kRaise, x->device, p, {x});
    return info.Env().Undefined();
  });
}

static Napi::Value DebugFill(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "debugFill");
    TensorRef x = a.tensor(0, "x");
    a.expectWritable(*x, "x");
    DebugFillParams p;
    p.dst = x->data();
    p.bytes = x->nbytes();
    p.value = uint8_t(a.integer(1, "value", 0, 255));
    launch(kFill, x->device, p, {x});
    return info.Env().Undefined();
  });
}

static Napi::Value DebugDelay(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "debugDelay");
    DeviceId device = parseDevice(a.string(0, "device"));
    backendFor(device);
    DebugDelayParams p;
    p.ms = uint32_t(a.integer(1, "ms", 0, 10000));
    launch(kDelay, device, p, {});
    return info.Env().Undefined();
  });
}

static Napi::Value DebugIllegalAddress(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "debugIllegalAddress");
    DeviceId device = parseDevice(a.string(0, "device"));
    backendFor(device);
    launch(kIllegal, device, DebugFillParams{}, {});
    return info.Env().Undefined();
  });
}

static Napi::Value DebugFailHostAllocations(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "debugFailHostAllocations");
    failHostAllocations(int(a.integer(0, "n", 0, 1000)));
    return info.Env().Undefined();
  });
}

static Napi::Value DebugCudaArchCheck(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "debugCudaArchCheck");
    std::string archs = a.string(0, "archs");
    std::string cc = a.string(1, "capability");
    if (cc.size() != 3 || cc[1] != '.' || cc[0] < '0' || cc[0] > '9' || cc[2] < '0' || cc[2] > '9')
      throwType("debugCudaArchCheck: capability must look like '9.0'");
    return Napi::String::New(info.Env(), cudaArchMismatch(archs, cc[0] - '0', cc[2] - '0'));
  });
}

DSN_INTERNAL_OP("debugRaise", DebugRaise);
DSN_INTERNAL_OP("debugRaiseDevice", DebugRaiseDevice);
DSN_INTERNAL_OP("debugFill", DebugFill);
DSN_INTERNAL_OP("debugDelay", DebugDelay);
DSN_INTERNAL_OP("debugIllegalAddress", DebugIllegalAddress);
DSN_INTERNAL_OP("debugFailHostAllocations", DebugFailHostAllocations);
DSN_INTERNAL_OP("debugCudaArchCheck", DebugCudaArchCheck);

}  // namespace dsn
