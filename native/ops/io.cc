// The N-API surface of safetensors loading (native/io/safetensors.h). Internal functions used by
// lib/model/safetensors.ts, not part of the public ops list:
//   safetensorsOpen(path) -> { handle, fileBytes, dataBytes, header: Buffer (a copy of the JSON) }
//   safetensorsTensor(handle, name, dtype, shape, begin, end, device) -> NativeTensor
//   safetensorsClose(handle)
// A tensor on the CPU points into the mapping (no copy) and keeps it alive; on a CUDA device its bytes
// are copied into fresh device memory. Every range is re-checked here before any byte is touched.
#include <cstdint>

#include "../io/safetensors.h"
#include "args.h"

namespace dsn {

namespace {

/** What a JavaScript handle holds; `map` is null once closed. */
struct SafetensorsHandle {
  std::shared_ptr<io::SafetensorsMap> map;
};

// Marks externals made here so that no other External can be taken for one of ours.
const napi_type_tag kHandleTag = {0x6473'6e5f'7361'6665ULL, 0x7465'6e73'6f72'7331ULL};

SafetensorsHandle& handleArg(const OpArgs& a, const Napi::CallbackInfo& info, int i) {
  Napi::Value v = info.Length() > size_t(i) ? info[i] : info.Env().Undefined();
  if (!v.IsExternal() || !v.As<Napi::External<SafetensorsHandle>>().CheckTypeTag(&kHandleTag))
    throwType(a.op(), ": expected a safetensors handle for handle");
  return *v.As<Napi::External<SafetensorsHandle>>().Data();
}

/** safetensorsOpen(path) -> { handle, fileBytes, dataBytes, header } */
Napi::Value SafetensorsOpen(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "safetensorsOpen");
    std::string path = a.string(0, "path");
    auto map = std::make_shared<io::SafetensorsMap>(io::openSafetensors(path));
    Napi::Env env = info.Env();
    auto ext = Napi::External<SafetensorsHandle>::New(env, new SafetensorsHandle{map},
                                                      [](Napi::Env, SafetensorsHandle* h) { delete h; });
    ext.TypeTag(&kHandleTag);
    Napi::Object o = Napi::Object::New(env);
    o.Set("handle", ext);
    o.Set("fileBytes", Napi::Number::New(env, double(map->file->size())));
    o.Set("dataBytes", Napi::Number::New(env, double(map->dataBytes)));
    o.Set("header", Napi::Buffer<uint8_t>::Copy(env, map->header(), size_t(map->headerBytes)));
    return o;
  });
}

/** safetensorsTensor(handle, name, dtype, shape, begin, end, device) -> NativeTensor */
Napi::Value SafetensorsTensor(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "safetensorsTensor");
    SafetensorsHandle& h = handleArg(a, info, 0);
    io::TensorRange r;
    r.name = a.string(1, "name");
    if (!h.map) throwError("safetensorsTensor: tensor '", r.name, "': the file was closed");
    r.dtype = a.dtype(2, "dtype");
    if (!info[3].IsArray()) throwType("safetensorsTensor: expected an array of dimensions for shape");
    Napi::Array arr = info[3].As<Napi::Array>();
    r.shape.resize(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value v = arr[i];
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0) || d != double(int64_t(d)) || d > double(int64_t(1) << 53))
        throwType("safetensorsTensor: dimension ", i, " of shape must be a non-negative integer");
      r.shape[i] = int64_t(d);
    }
    r.begin = uint64_t(a.integer(4, "begin", 0, int64_t(1) << 53));
    r.end = uint64_t(a.integer(5, "end", 0, int64_t(1) << 53));
    DeviceId device = parseDevice(a.string(6, "device"));
    backendFor(device);  // throws when the device does not exist here

    const io::SafetensorsMap& map = *h.map;
    const uint8_t* src = io::tensorBytes(map, r);  // the range check; throws naming file and tensor
    size_t bytes = size_t(r.end - r.begin);
    size_t align = dtypeSize(r.dtype);
    TensorRef t;
    if (device.type == DeviceType::CPU && reinterpret_cast<uintptr_t>(src) % align == 0) {
      // Borrow the mapping: the storage keeps it alive and is never handed to the allocator.
      t = std::make_shared<TensorImpl>();
      t->dtype = r.dtype;
      t->shape = r.shape;
      t->device = device;
      auto s = std::make_shared<Storage>();
      s->backend = &CpuBackend::get();
      s->data = const_cast<uint8_t*>(src);
      s->bytes = bytes;
      s->owner = h.map;
      s->readOnly = true;  // PROT_READ: an op writing here would fault
      t->storage = std::move(s);
    } else {
      // A CUDA device, or a CPU tensor whose offset is not a multiple of its element size: copy.
      t = newTensor(r.dtype, r.shape, device);
      if (bytes) t->backend().copyFromHost(t->data(), src, bytes);
    }
    return NativeTensor::Wrap(info.Env(), t);
  });
}

/** safetensorsFaulted(handle) -> whether a read of the file's mapping faulted because the file
 *  shrank on disk (native/io/mapguard.h). */
Napi::Value SafetensorsFaulted(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "safetensorsFaulted");
    SafetensorsHandle& h = handleArg(a, info, 0);
    return Napi::Boolean::New(info.Env(), h.map && h.map->file->faulted());
  });
}

/** safetensorsClose(handle): drops the handle's mapping; tensors made from it keep it alive. */
Napi::Value SafetensorsClose(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "safetensorsClose");
    handleArg(a, info, 0).map.reset();
    return info.Env().Undefined();
  });
}

}  // namespace

DSN_INTERNAL_OP("safetensorsOpen", SafetensorsOpen);
DSN_INTERNAL_OP("safetensorsTensor", SafetensorsTensor);
DSN_INTERNAL_OP("safetensorsClose", SafetensorsClose);
DSN_INTERNAL_OP("safetensorsFaulted", SafetensorsFaulted);

}  // namespace dsn
