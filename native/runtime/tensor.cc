#include "tensor.h"

#include <mutex>
#include <sstream>

#include "../ops/args.h"

namespace dsn {

std::string TensorImpl::shapeString() const {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

TensorRef newTensor(DType dtype, std::vector<int64_t> shape, const DeviceId& device) {
  auto t = std::make_shared<TensorImpl>();
  t->dtype = dtype;
  t->shape = std::move(shape);
  t->device = device;
  uint64_t n = 1;
  for (int64_t d : t->shape) {
    if (d < 0) throwRange("tensor dimensions must be >= 0 but received ", t->shapeString());
    if (d != 0 && n > (uint64_t(1) << 56) / uint64_t(d)) throwRange("tensor of shape ", t->shapeString(), " is too large");
    n *= uint64_t(d);
  }
  t->storage = backendFor(device).allocate(size_t(n) * dtypeSize(dtype));
  return t;
}

/** Throws a RangeError unless every byte of view `v` lies inside its storage: a view made by
 *  reshape or rows can never reach past the memory it shares. */
static void checkViewBytes(const TensorImpl& v, const char* op) {
  uint64_t n = 1;
  for (int64_t d : v.shape) {
    if (d < 0 || (d != 0 && n > (uint64_t(1) << 56) / uint64_t(d)))
      throwRange(op, ": a view of shape ", v.shapeString(), " is too large");
    n *= uint64_t(d);
  }
  uint64_t bytes = n * dtypeSize(v.dtype);
  uint64_t have = v.storage ? v.storage->bytes : 0;
  if (v.offset > have || bytes > have - v.offset)
    throwRange(op, ": a view of shape ", v.shapeString(), " at byte ", v.offset, " needs ", bytes, " bytes but its storage holds ",
               have, " bytes");
}

namespace {

/** How stream threads reach one environment's JavaScript thread: one thread-safe function, ref'd
 *  while promises are pending, and a flag the environment's cleanup hook clears under the lock, so
 *  no thread calls into the function once the environment is going away. */
struct Mailbox {
  std::mutex mu;
  bool alive = true;          // guarded by mu
  Napi::ThreadSafeFunction tsfn;
  size_t pending = 0;         // promises waiting; JavaScript thread only
};

/** Per-environment state, held as the environment's instance data. */
struct AddonData {
  Napi::FunctionReference tensorCtor;
  std::shared_ptr<Mailbox> mailbox;
};

AddonData& addonData(Napi::Env env) {
  auto* d = env.GetInstanceData<AddonData>();
  if (!d) throwError("deepseek-native: the addon was not initialised in this environment");
  return *d;
}

}  // namespace

void initEnvironment(Napi::Env env) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted when the environment is torn down
  auto mb = std::make_shared<Mailbox>();
  mb->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "deepseek-native", 0, 1);
  mb->tsfn.Unref(env);  // an idle addon does not keep the event loop alive
  data->mailbox = mb;
  // Registered after the thread-safe function, so it runs before Node tears that function down
  // (cleanup hooks run last-in, first-out).
  env.AddCleanupHook([mb] {
    std::lock_guard<std::mutex> lock(mb->mu);
    mb->alive = false;
  });
}

Napi::Function NativeTensor::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeTensor",
                                 {
                                     InstanceAccessor<&NativeTensor::Dtype>("dtype"),
                                     InstanceAccessor<&NativeTensor::Shape>("shape"),
                                     InstanceAccessor<&NativeTensor::Device>("device"),
                                     InstanceAccessor<&NativeTensor::ByteLength>("byteLength"),
                                     InstanceAccessor<&NativeTensor::Disposed>("disposed"),
                                     InstanceMethod<&NativeTensor::Dispose>("dispose"),
                                     InstanceMethod<&NativeTensor::Read>("read"),
                                     InstanceMethod<&NativeTensor::Write>("write"),
                                     InstanceMethod<&NativeTensor::Reshape>("reshape"),
                                     InstanceMethod<&NativeTensor::Rows>("rows"),
                                 });
  addonData(env).tensorCtor = Napi::Persistent(f);
  return f;
}

NativeTensor::NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {
  // Constructed from native code only (Wrap); a bare `new NativeTensor()` from JS is an empty,
  // disposed tensor.
  if (info.Length() == 1 && info[0].IsExternal()) {
    auto* ref = info[0].As<Napi::External<TensorRef>>().Data();
    t_ = *ref;
  }
}

Napi::Object NativeTensor::Wrap(Napi::Env env, TensorRef t) {
  TensorRef copy = std::move(t);
  return addonData(env).tensorCtor.New({Napi::External<TensorRef>::New(env, &copy)});
}

bool NativeTensor::IsTensor(const Napi::Value& v) {
  if (!v.IsObject()) return false;
  auto* d = v.Env().GetInstanceData<AddonData>();
  return d && !d->tensorCtor.IsEmpty() && v.As<Napi::Object>().InstanceOf(d->tensorCtor.Value());
}

TensorImpl* NativeTensor::FromValue(const Napi::Value& v, const char* op, const char* arg) {
  if (!IsTensor(v)) return nullptr;
  NativeTensor* nt = NativeTensor::Unwrap(v.As<Napi::Object>());
  if (!nt->t_) throwError(op, ": ", arg, " is a disposed tensor and cannot be used");
  return nt->t_.get();
}

TensorImpl& NativeTensor::live(const char* what) {
  if (!t_) throwError("Tensor.", what, ": the tensor was disposed and cannot be used");
  return *t_;
}

Napi::Value NativeTensor::Dtype(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(live("dtype").dtype)); });
}

Napi::Value NativeTensor::Shape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto& t = live("shape");
    Napi::Array a = Napi::Array::New(info.Env(), t.shape.size());
    for (size_t i = 0; i < t.shape.size(); ++i) a[i] = Napi::Number::New(info.Env(), double(t.shape[i]));
    return a;
  });
}

Napi::Value NativeTensor::Device(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), live("device").device.name()); });
}

Napi::Value NativeTensor::ByteLength(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), double(live("byteLength").nbytes())); });
}

Napi::Value NativeTensor::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !t_); }

Napi::Value NativeTensor::Dispose(const Napi::CallbackInfo& info) {
  t_.reset();  // storage returns to the pool once queued ops holding it have run
  return info.Env().Undefined();
}

namespace {

/** Converts raw device bytes of `dtype` to f32 in place of the output vector. */
std::vector<uint8_t> toF32Bytes(DType dtype, const std::vector<uint8_t>& in) {
  size_t n = in.size() / dtypeSize(dtype);
  std::vector<uint8_t> out(n * 4);
  float* o = reinterpret_cast<float*>(out.data());
  switch (dtype) {
    case DType::f32: std::memcpy(o, in.data(), n * 4); break;
    case DType::bf16: for (size_t i = 0; i < n; ++i) o[i] = bf16ToF32(reinterpret_cast<const uint16_t*>(in.data())[i]); break;
    case DType::f16: for (size_t i = 0; i < n; ++i) o[i] = f16ToF32(reinterpret_cast<const uint16_t*>(in.data())[i]); break;
    case DType::f8e4m3: for (size_t i = 0; i < n; ++i) o[i] = f8e4m3ToF32(in[i]); break;
    case DType::i32: for (size_t i = 0; i < n; ++i) o[i] = float(reinterpret_cast<const int32_t*>(in.data())[i]); break;
    case DType::i64: for (size_t i = 0; i < n; ++i) o[i] = float(reinterpret_cast<const int64_t*>(in.data())[i]); break;
    case DType::u8: for (size_t i = 0; i < n; ++i) o[i] = float(in[i]); break;
  }
  return out;
}

struct ReadState {
  Napi::Promise::Deferred deferred;
  std::vector<uint8_t> bytes;
  bool failed = false;
  StreamError error;
  explicit ReadState(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

void settle(Napi::Env env, ReadState* st) {
  if (st->failed) {
    Napi::Error e = st->error.kind == ErrorKind::Type    ? Napi::TypeError::New(env, st->error.message)
                    : st->error.kind == ErrorKind::Range ? Napi::RangeError::New(env, st->error.message)
                                                         : Napi::Error::New(env, st->error.message);
    st->deferred.Reject(e.Value());
  } else {
    if (st->bytes.empty()) {  // an external buffer of 0 bytes would come back detached
      st->deferred.Resolve(Napi::ArrayBuffer::New(env, 0));
      return;
    }
    auto* heap = new std::vector<uint8_t>(std::move(st->bytes));
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, heap->data(), heap->size(), [](Napi::Env, void*, std::vector<uint8_t>* v) { delete v; }, heap);
    st->deferred.Resolve(ab);
  }
}

}  // namespace

/** Promise that resolves (on the JS thread) once `start` has called the callback it receives. The
 *  callback may run on any thread; when the environment has exited by then, the result is dropped. */
Napi::Value deferredOnWorker(Napi::Env env, const std::function<void(std::function<void(std::vector<uint8_t>&&, const StreamError*)>)>& start) {
  std::shared_ptr<Mailbox> mb = addonData(env).mailbox;
  auto* st = new ReadState(env);
  Napi::Promise promise = st->deferred.Promise();
  if (mb->pending++ == 0) mb->tsfn.Ref(env);  // keep the loop alive while a promise is pending
  // Settles the promise from any thread, through the environment's mailbox; when the environment has
  // exited by then (a terminated worker), the result is dropped.
  auto finish = [st, mb](std::vector<uint8_t>&& bytes, const StreamError* err) {
    if (err) {
      st->failed = true;
      st->error = *err;
    } else {
      st->bytes = std::move(bytes);
    }
    std::lock_guard<std::mutex> lock(mb->mu);
    napi_status s = mb->alive ? mb->tsfn.NonBlockingCall([st, mb](Napi::Env env, Napi::Function) {
      std::unique_ptr<ReadState> own(st);
      try {
        if (--mb->pending == 0) mb->tsfn.Unref(env);
        settle(env, st);
      } catch (...) {
        // The environment is stopping (a worker being terminated runs no more JavaScript, so
        // resolving fails): nobody can observe this promise any more.
      }
    }) : napi_closing;
    if (s != napi_ok) delete st;  // the environment is gone: nobody waits for this promise
  };
  try {
    start(finish);
  } catch (const Error& e) {  // nothing was queued: settle now, so no promise is left pending
    StreamError err{e.kind, e.what()};
    finish({}, &err);
  } catch (const std::bad_alloc&) {
    StreamError err{ErrorKind::Range, "out of host memory"};
    finish({}, &err);
  }
  return promise;
}

Napi::Value NativeTensor::Read(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    live("read");
    TensorRef t = t_;
    bool asF32 = info.Length() > 0 && info[0].ToBoolean();
    return deferredOnWorker(info.Env(), [t, asF32](std::function<void(std::vector<uint8_t>&&, const StreamError*)> done) {
      t->backend().readToHost(t->storage, t->data(), t->nbytes(),
                              [t, asF32, done](std::vector<uint8_t>&& bytes, const StreamError* err) {
                                if (err) return done({}, err);
                                if (asF32 && t->dtype != DType::f32) {
                                  std::vector<uint8_t> f32;
                                  try {
                                    if (takeHostAllocationFailure()) throw std::bad_alloc();
                                    f32 = toF32Bytes(t->dtype, bytes);
                                  } catch (const std::bad_alloc&) {
                                    StreamError e{ErrorKind::Range, cat("read: out of host memory: cannot allocate ", bytes.size() / dtypeSize(t->dtype) * 4,
                                                                        " bytes for the f32 result")};
                                    return done({}, &e);
                                  }
                                  return done(std::move(f32), nullptr);
                                }
                                done(std::move(bytes), nullptr);
                              });
    });
  });
}

bool hostBytesOf(const Napi::Value& v, const uint8_t** data, size_t* bytes) {
  if (v.IsArrayBuffer()) {
    auto ab = v.As<Napi::ArrayBuffer>();
    *data = static_cast<const uint8_t*>(ab.Data());
    *bytes = ab.ByteLength();
  } else if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    *data = static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    *bytes = dv.ByteLength();
  } else if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    *data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    *bytes = ta.ByteLength();
  } else {
    return false;  // a Buffer is a Uint8Array: taken above
  }
  return true;
}

/** write(bytes): overwrites the tensor's bytes with host bytes, in stream order (ops queued before
 *  read the old values, ops queued after the new ones). The bytes are copied before it returns. */
Napi::Value NativeTensor::Write(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    TensorImpl& t = live("write");
    const uint8_t* src = nullptr;
    size_t len = 0;
    if (info.Length() < 1 || !hostBytesOf(info[0], &src, &len)) throwType("Tensor.write: data must be a TypedArray, a DataView or an ArrayBuffer");
    if (len != t.nbytes())
      throwRange("Tensor.write: data has ", len, " bytes but this ", dtypeName(t.dtype), " tensor of shape ", t.shapeString(), " holds ", t.nbytes(), " bytes");
    if (t.storage->readOnly) throwType("Tensor.write: the tensor is read-only memory (mapped from a checkpoint file)");
    if (len) t.backend().writeFromHost(t.storage, t.data(), src, len);
    return info.Env().Undefined();
  });
}

Napi::Value NativeTensor::Reshape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto& t = live("reshape");
    if (info.Length() < 1 || !info[0].IsArray()) throwType("Tensor.reshape: expected an array of dimensions");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<int64_t> shape(a.Length());
    int infer = -1;
    uint64_t known = 1;  // product of the given dimensions, capped: > 2^56 elements is an error
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value v = a[i];
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -2;
      if (d == -1 && infer < 0) {
        infer = int(i);
        shape[i] = 1;
        continue;
      }
      if (!(d >= 0) || d != double(int64_t(d)))
        throwType("Tensor.reshape: dimension ", i, " must be a non-negative integer (or one -1)");
      if (d > double(int64_t(1) << 56))
        throwRange("Tensor.reshape: dimension ", i, " (", d < 1.8e19 ? std::to_string(uint64_t(d)) : std::to_string(d), ") is too large");
      shape[i] = int64_t(d);
      if (shape[i] != 0 && known > (uint64_t(1) << 56) / uint64_t(shape[i]))
        throwRange("Tensor.reshape: a shape of more than 2^56 elements cannot be a view of a tensor of shape ", t.shapeString());
      known *= uint64_t(shape[i]);
    }
    if (infer >= 0) {
      if (known == 0 || uint64_t(t.numel()) % known != 0)
        throwRange("Tensor.reshape: cannot infer dimension ", infer, " for ", t.numel(), " elements");
      shape[infer] = int64_t(uint64_t(t.numel()) / known);
      known *= uint64_t(shape[infer]);
    }
    if (known != uint64_t(t.numel()))
      throwRange("Tensor.reshape: a tensor of shape ", t.shapeString(), " (", t.numel(), " elements) cannot take a shape of ",
                 known, " elements");
    auto v = std::make_shared<TensorImpl>(t);
    v->shape = shape;
    checkViewBytes(*v, "Tensor.reshape");
    return Wrap(info.Env(), v);
  });
}

Napi::Value NativeTensor::Rows(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto& t = live("rows");
    if (t.rank() < 1) throwRange("Tensor.rows: a scalar has no rows");
    OpArgs args(info, "Tensor.rows");
    int64_t start = args.integer(0, "start", 0, t.shape[0]);
    int64_t count = args.integer(1, "count", 0, t.shape[0] - start);
    auto v = std::make_shared<TensorImpl>(t);
    v->shape[0] = count;
    v->offset = t.offset + size_t(start) * (t.nbytes() / size_t(t.shape[0] ? t.shape[0] : 1));
    checkViewBytes(*v, "Tensor.rows");
    return Wrap(info.Env(), v);
  });
}

}  // namespace dsn
