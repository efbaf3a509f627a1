// The addon's one surface: the NativeTensor class, tensor creation, devices and their allocators,
// stream synchronisation, build information, roofline probes, and every op under `ops`.
#include <napi.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "cpu/probe.h"
#include "cpu/simd.h"
#include "ops/args.h"
#include "runtime/tensor.h"

namespace dsn {

Napi::Value deferredOnWorker(Napi::Env env, const std::function<void(std::function<void(std::vector<uint8_t>&&, const StreamError*)>)>& start);

#ifdef DSN_WITH_CUDA
std::string cudaArchitectures();
std::string cudaCopyBandwidth(int index, size_t bytes, double* gbPerSecond);
std::string cudaVersionString(int version);
std::map<std::string, uint64_t> cudaLaunchCounts(const DeviceId& device, bool reset);
void cudaBeginGraph(const DeviceId& device);
int cudaEndGraph(const DeviceId& device);
void cudaLaunchGraph(const DeviceId& device, int id);
void cudaDestroyGraph(const DeviceId& device, int id);
#endif

namespace {

DeviceId deviceArg(const OpArgs& a, int i) { return parseDevice(a.string(i, "device")); }

/** createTensor(dtype, shape, device, bytes?) -> NativeTensor; zero-filled without bytes. */
Napi::Value CreateTensor(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "tensor");
    DType dtype = a.dtype(0, "dtype");
    if (!info[1].IsArray()) throwType("tensor: expected an array of dimensions for shape");
    Napi::Array arr = info[1].As<Napi::Array>();
    std::vector<int64_t> shape(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr[i];
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0) || d != double(int64_t(d)) || d > double(int64_t(1) << 53))
        throwType("tensor: dimension ", i, " of shape must be a non-negative integer");
      shape[i] = int64_t(d);
    }
    DeviceId dev = deviceArg(a, 2);
    TensorRef t = newTensor(dtype, shape, dev);
    size_t n = t->nbytes();
    if (a.has(3)) {
      const uint8_t* src = nullptr;
      size_t len = 0;
      if (!hostBytesOf(info[3], &src, &len)) throwType("tensor: data must be a TypedArray, a DataView or an ArrayBuffer");
      if (len != n)
        throwRange("tensor: data has ", len, " bytes but a ", dtypeName(dtype), " tensor of shape ", t->shapeString(),
                   " needs ", n, " bytes");
      if (n) t->backend().copyFromHost(t->data(), src, n);
    } else if (n && dev.type == DeviceType::CPU) {
      // Zero-fill on the CPU stream (in parallel), not on the JavaScript thread: ops queued after
      // this one see zeros, and zeros([64e6]) returns at once.
      std::shared_ptr<Storage> keep = t->storage;
      uint8_t* dst = static_cast<uint8_t*>(t->data());
      CpuBackend::get().enqueue("zeros", [keep, dst, n] {
        constexpr size_t kChunk = size_t(1) << 20;
        int64_t chunks = int64_t((n + kChunk - 1) / kChunk);
        CpuBackend::get().pool().parallelFor(chunks, [&](int64_t c0, int64_t c1) {
          size_t b = size_t(c0) * kChunk, e = std::min(n, size_t(c1) * kChunk);
          std::memset(dst + b, 0, e - b);
        }, 1);
      });
    } else if (n) {
      t->backend().fill(t->storage, t->data(), 0, n);  // in stream order; no host buffer
    }
    return NativeTensor::Wrap(info.Env(), t);
  });
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = Napi::Array::New(env);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("name", "cpu");
  cpu.Set("kind", "cpu");
  cpu.Set("description", CpuBackend::get().description());
  cpu.Set("memoryBytes", double(CpuBackend::get().totalMemoryBytes()));
  cpu.Set("threads", CpuBackend::get().pool().threads());
  cpu.Set("simd", cpu::simdName(cpu::simdLevel()));
  list[uint32_t(0)] = cpu;
#ifdef DSN_WITH_CUDA
  const CudaStatus status = cudaStatus();
  uint32_t k = 1;
  for (const CudaDeviceInfo& d : cudaDevices()) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", d.name);
    o.Set("kind", "cuda");
    o.Set("description", d.description);
    o.Set("memoryBytes", double(d.memoryBytes));
    o.Set("computeCapability", d.capability);
    o.Set("multiprocessors", d.multiprocessors);
    o.Set("driverVersion", cudaVersionString(status.driverVersion));
    o.Set("runtimeVersion", cudaVersionString(status.runtimeVersion));
    o.Set("supported", d.unsupported.empty());
    if (!d.unsupported.empty()) o.Set("unsupported", d.unsupported);
    list[k++] = o;
  }
#endif
  return list;
}

Napi::Value MemoryStatsFn(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "memoryStats");
    MemoryStats s = backendFor(deviceArg(a, 0)).allocator().stats();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("inUseBytes", double(s.inUseBytes));
    o.Set("cachedBytes", double(s.cachedBytes));
    o.Set("peakBytes", double(s.peakBytes));
    return o;
  });
}

Napi::Value ReleaseCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "releaseCache");
    Backend& b = backendFor(deviceArg(a, 0));
    b.allocator().emptyCache();
    b.allocator().resetPeak();
    return info.Env().Undefined();
  });
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "synchronize");
    Backend* b = &backendFor(deviceArg(a, 0));
    return deferredOnWorker(info.Env(), [b](std::function<void(std::vector<uint8_t>&&, const StreamError*)> done) {
      b->synchronize([done](const StreamError* err) { done({}, err); });
    });
  });
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array backends = Napi::Array::New(env);
  backends[uint32_t(0)] = Napi::String::New(env, "cpu");
#ifdef DSN_WITH_CUDA
  backends[uint32_t(1)] = Napi::String::New(env, "cuda");
  o.Set("cudaArchitectures", cudaArchitectures());
#ifdef DSN_CUDA_EMU
  o.Set("cudaEmulated", true);  // cuda/emu: kernels run on CPU fibers
#endif
  const CudaStatus status = cudaStatus();
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("driverVersion", cudaVersionString(status.driverVersion));
  cuda.Set("runtimeVersion", cudaVersionString(status.runtimeVersion));
  cuda.Set("deviceCount", status.deviceCount);
  cuda.Set("status", status.why.empty() ? std::string("ok") : status.why);
  o.Set("cuda", cuda);
#else
  o.Set("cudaArchitectures", "");
#endif
  o.Set("backends", backends);
  o.Set("simd", cpu::simdName(cpu::simdLevel()));
  // The x86 features the CPU kernels look for, of those this CPU has (simd.h's CpuFeatures).
  const cpu::CpuFeatures& f = cpu::cpuFeatures();
  const std::pair<const char*, bool> features[] = {{"avx2", f.avx2},         {"fma", f.fma},         {"f16c", f.f16c},
                                                   {"avx512f", f.avx512f},   {"avx512bw", f.avx512bw}, {"avx512vl", f.avx512vl},
                                                   {"avx512dq", f.avx512dq}, {"avx512bf16", f.avx512bf16}, {"avx512vbmi", f.avx512vbmi}};
  Napi::Array has = Napi::Array::New(env);
  uint32_t count = 0;
  for (const auto& [name, present] : features)
    if (present) has[count++] = name;
  o.Set("cpuFeatures", has);
  o.Set("threads", CpuBackend::get().pool().threads());
  return o;
}

/** probe('readBandwidth' | 'fmaPeak', bytes?) -> Promise<ArrayBuffer holding one f64> */
Napi::Value Probe(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "probe");
    std::string what = a.string(0, "kind");
    if (what != "readBandwidth" && what != "fmaPeak" && what != "cudaCopyBandwidth")
      throwType("probe: kind must be 'readBandwidth', 'fmaPeak' or 'cudaCopyBandwidth' but received '", what, "'");
    size_t bytes = a.has(1) ? size_t(a.integer(1, "bytes", 1 << 20, int64_t(1) << 36)) : size_t(512) << 20;
    if (what == "cudaCopyBandwidth") {
#ifdef DSN_WITH_CUDA
      DeviceId dev = a.has(2) ? deviceArg(a, 2) : DeviceId{DeviceType::CUDA, 0};
      backendFor(dev);  // throws when the device is missing
      return deferredOnWorker(info.Env(), [dev, bytes](std::function<void(std::vector<uint8_t>&&, const StreamError*)> done) {
        CpuBackend::get().enqueue("probe", [dev, bytes, done] {
          double v = 0;
          std::string err = cudaCopyBandwidth(dev.index, bytes, &v);
          if (!err.empty()) {
            StreamError se{ErrorKind::Error, "cudaCopyBandwidth: " + err};
            return done({}, &se);
          }
          std::vector<uint8_t> out(8);
          std::memcpy(out.data(), &v, 8);
          done(std::move(out), nullptr);
        });
      });
#else
      throwRange("probe: cudaCopyBandwidth needs the CUDA build");
#endif
    }
    return deferredOnWorker(info.Env(), [what, bytes](std::function<void(std::vector<uint8_t>&&, const StreamError*)> done) {
      CpuBackend::get().enqueue("probe", [what, bytes, done] {
        auto& pool = CpuBackend::get().pool();
        double v = what == "fmaPeak" ? cpu::probeFmaPeak(pool) : cpu::probeReadBandwidth(pool, bytes, 5);
        std::vector<uint8_t> out(8);
        std::memcpy(out.data(), &v, 8);
        done(std::move(out), nullptr);
      });
    });
  });
}

/** setSimdCap(level) -> the path now in use. For tests; call only while the CPU stream is idle. */
Napi::Value SetSimdCap(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "setSimdCap");
    std::string s = a.string(0, "level");
    cpu::Simd cap = s == "scalar" ? cpu::Simd::Scalar : s == "avx2" ? cpu::Simd::Avx2 : s == "avx512" ? cpu::Simd::Avx512 : cpu::Simd(-1);
    if (int(cap) < 0) throwType("setSimdCap: level must be 'scalar', 'avx2' or 'avx512' but received '", s, "'");
    return Napi::String::New(info.Env(), cpu::simdName(cpu::setSimdCap(cap)));
  });
}

/**
 * profile(reset?, device = 'cpu') -> { op: { runs, ms?, queued? } }: on the CPU, the runs of each op,
 * the time the stream spent in it and how many times it was queued on its own (an op inside a graph
 * runs without being queued; "graph" counts the launches, its ms the time between their ops); on a CUDA device, how many times each op was launched on its stream
 * (kernel time is not measured there). reset starts the counts again after reading them.
 */
Napi::Value Profile(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "profile");
    const bool reset = a.has(0) && info[0].ToBoolean();
    const DeviceId device = a.has(1) ? deviceArg(a, 1) : DeviceId{DeviceType::CPU, 0};
    backendFor(device);  // a device that does not exist here is a RangeError
    Napi::Object o = Napi::Object::New(info.Env());
    if (device.type == DeviceType::CPU) {
      for (auto& kv : CpuBackend::get().worker().profile(reset)) {
        Napi::Object e = Napi::Object::New(info.Env());
        e.Set("runs", double(kv.second.runs));
        e.Set("ms", double(kv.second.ns) / 1e6);
        e.Set("queued", double(kv.second.queued));
        o.Set(kv.first, e);
      }
      return o;
    }
#ifdef DSN_WITH_CUDA
    for (auto& kv : cudaLaunchCounts(device, reset)) {
      Napi::Object e = Napi::Object::New(info.Env());
      e.Set("runs", double(kv.second));
      o.Set(kv.first, e);
    }
#endif
    return o;
  });
}

/** The device named by argument 0 of a graph call (a RangeError when it does not exist here). */
DeviceId graphDevice(const OpArgs& a) {
  const DeviceId device = deviceArg(a, 0);
  backendFor(device);
  return device;
}

/**
 * graphBegin(device): the ops this thread queues on the device from now on are captured, not run,
 * until graphEnd(device) -> id. graphLaunch(device, id) replays them; graphDispose(device, id) frees
 * the graph and the memory its ops allocated. While capturing, host copies, reads and synchronize
 * throw. On a CUDA device a CUDA graph; on the CPU the recorded closures, run by one stream task.
 */
Napi::Value GraphBegin(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "graphBegin");
    const DeviceId device = graphDevice(a);
    if (device.type == DeviceType::CPU) CpuBackend::get().beginCapture();
#ifdef DSN_WITH_CUDA
    else cudaBeginGraph(device);
#endif
    return info.Env().Undefined();
  });
}

Napi::Value GraphEnd(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "graphEnd");
    const DeviceId device = graphDevice(a);
    int id = 0;
    if (device.type == DeviceType::CPU) id = CpuBackend::get().endCapture();
#ifdef DSN_WITH_CUDA
    else id = cudaEndGraph(device);
#endif
    return Napi::Number::New(info.Env(), id);
  });
}

Napi::Value GraphLaunch(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "graphLaunch");
    const DeviceId device = graphDevice(a);
    const int id = int(a.integer(1, "id", 1, INT32_MAX));
    if (device.type == DeviceType::CPU) CpuBackend::get().launchGraph(id);
#ifdef DSN_WITH_CUDA
    else cudaLaunchGraph(device, id);
#endif
    return info.Env().Undefined();
  });
}

Napi::Value GraphDispose(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "graphDispose");
    const DeviceId device = graphDevice(a);
    const int id = int(a.integer(1, "id", 1, INT32_MAX));
    if (device.type == DeviceType::CPU) CpuBackend::get().destroyGraph(id);
#ifdef DSN_WITH_CUDA
    else cudaDestroyGraph(device, id);
#endif
    return info.Env().Undefined();
  });
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  initEnvironment(env);  // per-environment state: the addon loads in the main thread and in workers
  exports.Set("NativeTensor", NativeTensor::Init(env));
  exports.Set("createTensor", Napi::Function::New(env, CreateTensor, "createTensor"));
  exports.Set("devices", Napi::Function::New(env, Devices, "devices"));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStatsFn, "memoryStats"));
  exports.Set("releaseCache", Napi::Function::New(env, ReleaseCache, "releaseCache"));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize, "synchronize"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("setSimdCap", Napi::Function::New(env, SetSimdCap, "setSimdCap"));
  exports.Set("profile", Napi::Function::New(env, Profile, "profile"));
  exports.Set("graphBegin", Napi::Function::New(env, GraphBegin, "graphBegin"));
  exports.Set("graphEnd", Napi::Function::New(env, GraphEnd, "graphEnd"));
  exports.Set("graphLaunch", Napi::Function::New(env, GraphLaunch, "graphLaunch"));
  exports.Set("graphDispose", Napi::Function::New(env, GraphDispose, "graphDispose"));
  registerOps(env, exports);
  return exports;
}

}  // namespace dsn

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return dsn::Init(env, exports); }
NODE_API_MODULE(deepseek_native, InitAddon)
