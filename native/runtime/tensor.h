// The native Tensor: dtype, shape, device and a reference-counted Storage. Tensors are contiguous
// (row-major); a view (reshape, a range of rows) shares its parent's storage at a byte offset.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "device.h"
#include "dtype.h"

namespace dsn {

struct TensorImpl {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  DeviceId device;
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // bytes into storage

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const { return size_t(numel()) * dtypeSize(dtype); }
  int rank() const { return int(shape.size()); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  void* data() const { return static_cast<char*>(storage->data) + offset; }
  template <typename T>
  T* ptr() const { return static_cast<T*>(data()); }
  std::string shapeString() const;
  Backend& backend() const { return *storage->backend; }
};

using TensorRef = std::shared_ptr<TensorImpl>;

/** The bytes of a TypedArray, DataView, ArrayBuffer or Buffer; false for any other value. */
bool hostBytesOf(const Napi::Value& v, const uint8_t** data, size_t* bytes);

/** Allocates a new contiguous tensor on `device`. */
TensorRef newTensor(DType dtype, std::vector<int64_t> shape, const DeviceId& device);

/** Sets up the addon's state for one JavaScript environment (the main thread and each worker thread
 *  that loads the addon has its own): the NativeTensor constructor and the channel by which work
 *  finished on a stream thread settles this environment's promises. Registers a cleanup hook so that
 *  work finishing after the environment exited (a worker terminated with ops queued) is dropped,
 *  never delivered into a dead environment. */
void initEnvironment(Napi::Env env);

/** The JavaScript class wrapping a TensorRef. After dispose() every use throws. */
class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, TensorRef t);
  /** The tensor behind a JS value, or nullptr when the value is not a NativeTensor. Throws when
   *  it is one but was disposed. */
  static TensorImpl* FromValue(const Napi::Value& v, const char* op, const char* arg);
  static bool IsTensor(const Napi::Value& v);
  explicit NativeTensor(const Napi::CallbackInfo& info);
  TensorRef ref() const { return t_; }

 private:
  TensorImpl& live(const char* what);
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value ByteLength(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  Napi::Value Rows(const Napi::CallbackInfo& info);
  TensorRef t_;
  std::vector<int64_t> shapeCache_;
};

}  // namespace dsn
