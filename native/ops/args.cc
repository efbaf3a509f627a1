#include "args.h"

#include "dispatch.h"
#include "../params/quant.h"

#include <cmath>
#include <map>

namespace dsn {

static std::string dtypeList(std::initializer_list<DType> allowed);

static std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return cat(v.As<Napi::Number>().DoubleValue(), " of type number");
  if (v.IsString()) return cat("'", v.As<Napi::String>().Utf8Value(), "' of type string");
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (NativeTensor::IsTensor(v)) return "a Tensor";
  if (v.IsArray()) return "an array";
  if (v.IsObject()) return "an object";
  return "a value of another type";
}

TensorRef OpArgs::tensor(int i, const char* name) const {
  Napi::Value v = info_.Length() > size_t(i) ? info_[i] : info_.Env().Undefined();
  TensorImpl* t = NativeTensor::FromValue(v, op_, name);
  if (!t) throwType(op_, ": expected a Tensor for ", name, " but received ", describe(v));
  return NativeTensor::Unwrap(v.As<Napi::Object>())->ref();
}

TensorRef OpArgs::optTensor(int i, const char* name) const {
  if (!has(i)) return nullptr;
  return tensor(i, name);
}

double OpArgs::number(int i, const char* name) const {
  Napi::Value v = info_.Length() > size_t(i) ? info_[i] : info_.Env().Undefined();
  if (!v.IsNumber()) throwType(op_, ": expected a number for ", name, " but received ", describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throwRange(op_, ": expected a finite number for ", name, " but received ", d);
  return d;
}

int64_t OpArgs::integer(int i, const char* name, int64_t lo, int64_t hi) const {
  Napi::Value v = info_.Length() > size_t(i) ? info_[i] : info_.Env().Undefined();
  if (!v.IsNumber()) throwType(op_, ": expected an integer for ", name, " but received ", describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == std::floor(d)) || d < double(lo) || d > double(hi))
    throwRange(op_, ": expected an integer between ", lo, " and ", hi, " for ", name, " but received ", d);
  return int64_t(d);
}

bool OpArgs::boolean(int i, const char* name) const {
  Napi::Value v = info_.Length() > size_t(i) ? info_[i] : info_.Env().Undefined();
  if (!v.IsBoolean()) throwType(op_, ": expected a boolean for ", name, " but received ", describe(v));
  return v.As<Napi::Boolean>().Value();
}

std::string OpArgs::string(int i, const char* name) const {
  Napi::Value v = info_.Length() > size_t(i) ? info_[i] : info_.Env().Undefined();
  if (!v.IsString()) throwType(op_, ": expected a string for ", name, " but received ", describe(v));
  return v.As<Napi::String>().Utf8Value();
}

DType OpArgs::dtype(int i, const char* name) const {
  std::string s = string(i, name);
  DType t;
  if (!parseDtype(s, &t))
    throwType(op_, ": expected a dtype (f32, bf16, f16, f8e4m3, i32, i64, u8) for ", name, " but received '", s, "'");
  return t;
}

void OpArgs::expectDtype(const TensorImpl& t, const char* name, std::initializer_list<DType> allowed) const {
  for (DType d : allowed)
    if (t.dtype == d) return;
  throwType(op_, ": ", name, " must have dtype ", dtypeList(allowed), " but received ", dtypeName(t.dtype));
}

void OpArgs::expectRank(const TensorImpl& t, const char* name, int rank) const {
  if (t.rank() != rank)
    throwRange(op_, ": ", name, " must have ", rank, " dimensions but received shape ", t.shapeString());
}

void OpArgs::expectDim(const TensorImpl& t, const char* name, int dim, int64_t value) const {
  int d = dim < 0 ? t.rank() + dim : dim;
  if (d < 0 || d >= t.rank() || t.shape[d] != value)
    throwRange(op_, ": ", name, " must have size ", value, " in dimension ", dim, " but received shape ", t.shapeString());
}

void OpArgs::expectShape(const TensorImpl& t, const char* name, std::initializer_list<int64_t> shape) const {
  bool ok = t.shape.size() == shape.size();
  size_t i = 0;
  for (int64_t d : shape) ok = ok && t.shape[i++] == d;
  if (!ok) {
    TensorImpl want;
    want.shape.assign(shape.begin(), shape.end());
    throwRange(op_, ": ", name, " must have shape ", want.shapeString(), " but received ", t.shapeString());
  }
}

void OpArgs::expectSameDevice(const TensorImpl& a, const char* an, const TensorImpl& b, const char* bn) const {
  if (a.device != b.device)
    throwType(op_, ": ", bn, " must be on the same device as ", an, " (", a.device.name(), ") but is on ", b.device.name());
}

void OpArgs::expectWritable(const TensorImpl& t, const char* name) const {
  if (t.storage && t.storage->readOnly)
    throwType(op_, ": ", name, " is read-only memory (a tensor mapped from a checkpoint file); write into a tensor of your own");
}


static std::string dtypeList(std::initializer_list<DType> allowed) {
  std::string list;
  size_t k = 0;
  for (DType d : allowed) {
    list += (k == 0 ? "" : (k + 1 == allowed.size() ? " or " : ", "));
    list += dtypeName(d);
    ++k;
  }
  return list;
}

void OpArgs::expectTensor(const TensorImpl& t, const char* name, std::initializer_list<DType> dtypes,
                          std::initializer_list<int64_t> shape) const {
  if (dtypes.size()) expectDtype(t, name, dtypes);
  bool any = false;
  for (int64_t d : shape) any = any || d == kAny;
  if (!any) return expectShape(t, name, shape);
  expectRank(t, name, int(shape.size()));
  int i = 0;
  for (int64_t d : shape) {
    if (d != kAny) expectDim(t, name, i, d);
    ++i;
  }
}

TensorRef OpArgs::tensor(int i, const char* name, std::initializer_list<DType> dtypes, std::initializer_list<int64_t> shape) const {
  TensorRef t = tensor(i, name);
  expectTensor(*t, name, dtypes, shape);
  return t;
}

TensorRef OpArgs::optTensor(int i, const char* name, std::initializer_list<DType> dtypes, std::initializer_list<int64_t> shape) const {
  TensorRef t = optTensor(i, name);
  if (t) expectTensor(*t, name, dtypes, shape);
  return t;
}

void OpArgs::expectSameDevice(std::initializer_list<std::pair<const TensorRef*, const char*>> tensors) const {
  const std::pair<const TensorRef*, const char*>* first = nullptr;
  for (auto& t : tensors) {
    if (!*t.first) continue;
    if (!first) {
      first = &t;
      continue;
    }
    expectSameDevice(**first->first, first->second, **t.first, t.second);
  }
}

void OpArgs::expectMinRank(const TensorImpl& t, const char* name, int rank) const {
  if (t.rank() < rank)
    throwRange(op_, ": ", name, " must have at least ", rank, rank == 1 ? " dimension" : " dimensions", " but received shape ", t.shapeString());
}

DType OpArgs::outDtype(int i, std::initializer_list<DType> allowed, const DType* fallback) const {
  DType t = fallback && !has(i) ? *fallback : dtype(i, "outDtype");
  for (DType d : allowed)
    if (t == d) return t;
  throwType(op_, ": outDtype must be ", dtypeList(allowed), " but received ", dtypeName(t));
}

Napi::Value wrapAll(Napi::Env env, std::initializer_list<TensorRef> ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  uint32_t i = 0;
  for (auto& t : ts) a[i++] = NativeTensor::Wrap(env, t);
  return a;
}

static std::map<std::string, OpFunction>& registry() {
  static std::map<std::string, OpFunction> r;
  return r;
}

OpRegistration::OpRegistration(const char* name, OpFunction fn, bool kernel) {
  registry()[name] = fn;
  if (kernel) KernelRegistration(name, false);
}

void registerOps(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
  for (auto& kv : registry()) ops.Set(kv.first, Napi::Function::New(env, kv.second, kv.first));
  exports.Set("ops", ops);
  // opDevices: { op: ['cpu', 'cuda'?] }, the one list tests, benchmarks, the device check and
  // loadModel read to know where each op runs in this build.
  Napi::Object devices = Napi::Object::New(env);
  for (auto& kv : opDevices()) {
    Napi::Array a = Napi::Array::New(env, kv.second.size());
    for (uint32_t i = 0; i < kv.second.size(); ++i) a[i] = Napi::String::New(env, kv.second[i]);
    devices.Set(kv.first, a);
  }
  exports.Set("opDevices", devices);
}

bool OpArgs::quantOutputs(int i, DType outType, const std::vector<int64_t>& outShape, const DeviceId& device,
                          TensorRef* codes, TensorRef* scales, bool* ue8m0) const {
  if (!has(i)) return false;
  *ue8m0 = boolean(i, "quant");
  if (outType != DType::f32 && outType != DType::bf16)
    throwType(op_, ": the quantised output needs an f32 or bf16 output but it is ", dtypeName(outType));
  const int64_t K = outShape.back();
  if (K % kQuantBlock != 0)
    throwRange(op_, ": the quantised output needs a last dimension that is a multiple of ", kQuantBlock, " but it is ", K);
  std::vector<int64_t> scaleShape = outShape;
  scaleShape.back() = K / kQuantBlock;
  *codes = newTensor(DType::f8e4m3, outShape, device);
  *scales = newTensor(DType::f32, scaleShape, device);
  return true;
}

}  // namespace dsn
