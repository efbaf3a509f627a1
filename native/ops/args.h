// Argument checks shared by every op: each names the op, the argument, what was expected and what
// came ("rmsNorm: weight must have dtype f32 or bf16 but received i32"). Ops call these before they
// touch memory; a failed check throws a TypeError/RangeError at the call site.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "../runtime/errors.h"
#include "../runtime/tensor.h"

namespace dsn {

class OpArgs {
 public:
  OpArgs(const Napi::CallbackInfo& info, const char* op) : info_(info), op_(op) {}
  const char* op() const { return op_; }
  Napi::Env env() const { return info_.Env(); }
  /** A required tensor argument. */
  TensorRef tensor(int i, const char* name) const;
  /** An optional tensor argument: null/undefined gives nullptr. */
  TensorRef optTensor(int i, const char* name) const;
  double number(int i, const char* name) const;
  /** An integer in [lo, hi]. */
  int64_t integer(int i, const char* name, int64_t lo, int64_t hi) const;
  bool boolean(int i, const char* name) const;
  std::string string(int i, const char* name) const;
  DType dtype(int i, const char* name) const;
  bool has(int i) const { return info_.Length() > size_t(i) && !info_[i].IsUndefined() && !info_[i].IsNull(); }

  // ---- checks on tensors ----
  void expectDtype(const TensorImpl& t, const char* name, std::initializer_list<DType> allowed) const;
  void expectRank(const TensorImpl& t, const char* name, int rank) const;
  void expectDim(const TensorImpl& t, const char* name, int dim, int64_t value) const;
  void expectShape(const TensorImpl& t, const char* name, std::initializer_list<int64_t> shape) const;
  void expectSameDevice(const TensorImpl& a, const char* an, const TensorImpl& b, const char* bn) const;
  /** For ops that write into an argument: a TypeError when its memory is read-only (a checkpoint mapping). */
  void expectWritable(const TensorImpl& t, const char* name) const;

  // ---- combined checks (the messages are those of the single checks above) ----
  /** A dimension of a shape spec that may take any size. */
  static constexpr int64_t kAny = -1;
  /** A required tensor with one of `dtypes` (empty: any) and a shape: a spec without kAny is
   *  checked as expectShape, one with kAny as expectRank then expectDim for each fixed size. */
  TensorRef tensor(int i, const char* name, std::initializer_list<DType> dtypes, std::initializer_list<int64_t> shape) const;
  /** The same for an optional tensor (nullptr when absent). */
  TensorRef optTensor(int i, const char* name, std::initializer_list<DType> dtypes, std::initializer_list<int64_t> shape) const;
  /** Checks dtype (when `dtypes` is not empty) and shape spec of a tensor in hand. */
  void expectTensor(const TensorImpl& t, const char* name, std::initializer_list<DType> dtypes,
                    std::initializer_list<int64_t> shape) const;
  /** Every tensor of the list on the device of the first (null entries, optional tensors, skipped). */
  void expectSameDevice(std::initializer_list<std::pair<const TensorRef*, const char*>> tensors) const;
  /** "<op>: <name> must have at least N dimension(s) but received shape [..]". */
  void expectMinRank(const TensorImpl& t, const char* name, int rank) const;
  /** An output dtype argument (default `fallback` when absent and fallback is given), one of
   *  `allowed`: "<op>: outDtype must be f32 or bf16 but received f16". */
  DType outDtype(int i, std::initializer_list<DType> allowed, const DType* fallback = nullptr) const;
  /**
   * The optional fused-actQuant argument `quant` of rmsNorm and swiglu: absent (undefined, null) for
   * none, else a boolean, ue8m0. When present, allocates the quantised form of the op's output `out`
   * ([.., K], dtype outType): codes [.., K] f8e4m3 and scales [.., K / 128] f32 on its device, after
   * checking "<op>: the quantised output needs ...". Returns false when absent.
   */
  bool quantOutputs(int i, DType outType, const std::vector<int64_t>& outShape, const DeviceId& device, TensorRef* codes,
                    TensorRef* scales, bool* ue8m0) const;

 private:
  const Napi::CallbackInfo& info_;
  const char* op_;
};

/** Runs an op body, turning dsn::Error into the matching JS exception. */
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (const Error& e) {
    Napi::Env env = info.Env();
    switch (e.kind) {
      case ErrorKind::Type: throw Napi::TypeError::New(env, e.what());
      case ErrorKind::Range: throw Napi::RangeError::New(env, e.what());
      default: throw Napi::Error::New(env, e.what());
    }
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(info.Env(), "out of host memory");
  }
}

/** Wraps a list of tensors into a JS array. */
Napi::Value wrapAll(Napi::Env env, std::initializer_list<TensorRef> ts);

// ---- op registration: every native/ops/*.cc registers its functions by name ----
using OpFunction = Napi::Value (*)(const Napi::CallbackInfo&);
struct OpRegistration {
  /** `kernel`: the op is listed by opDevices() (on the CPU, plus "cuda" where dispatch.h's
   *  DSN_KERNELS registers a CUDA kernel for it); internal functions are not. */
  OpRegistration(const char* name, OpFunction fn, bool kernel);
};
void registerOps(Napi::Env env, Napi::Object exports);

#define DSN_OP(jsName, fn) static ::dsn::OpRegistration dsn_op_registration_##fn(jsName, fn, true)
/** A function under `ops` that is not a kernel (file I/O, test hooks): not listed by opDevices(). */
#define DSN_INTERNAL_OP(jsName, fn) static ::dsn::OpRegistration dsn_op_registration_##fn(jsName, fn, false)

}  // namespace dsn
