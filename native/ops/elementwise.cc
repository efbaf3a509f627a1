// Element-wise ops (add, mul with a broadcast over the last dim, silu, scale) and copies (slice,
// concat). f32 math; the output takes the first input's dtype.
#include "../cpu/elementwise.h"

#include <string>
#include <vector>

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/elementwise.cuh"
#endif

namespace dsn {

static const Kernels<BinaryParams> kAdd{"add", cpu::binary, DSN_CUDA_KERNEL(cuda::binaryLaunch)};
DSN_KERNELS(kAdd);
static const Kernels<BinaryParams> kMul{"mul", cpu::binary, DSN_CUDA_KERNEL(cuda::binaryLaunch)};
DSN_KERNELS(kMul);
static const Kernels<UnaryParams> kSilu{"silu", cpu::unary, DSN_CUDA_KERNEL(cuda::unaryLaunch)};
DSN_KERNELS(kSilu);
static const Kernels<UnaryParams> kScale{"scale", cpu::unary, DSN_CUDA_KERNEL(cuda::unaryLaunch)};
DSN_KERNELS(kScale);
static const Kernels<CopyStridedParams> kSlice{"slice", cpu::copyStrided, DSN_CUDA_KERNEL(cuda::copyStridedLaunch)};
DSN_KERNELS(kSlice);
static const Kernels<CopyStridedParams> kConcat{"concat", cpu::copyStrided, DSN_CUDA_KERNEL(cuda::copyStridedLaunch)};
DSN_KERNELS(kConcat);

/** add|mul(a [..., D], b [..., D] | [D]) -> [..., D] of a's dtype */
static Napi::Value binaryOp(const Napi::CallbackInfo& info, const Kernels<BinaryParams>& k, BinaryKind kind) {
  const char* name = k.op;
  OpArgs a(info, name);
  TensorRef x = a.tensor(0, "a");
  TensorRef y = a.tensor(1, "b");
  a.expectDtype(*x, "a", {DType::f32, DType::bf16});
  a.expectDtype(*y, "b", {DType::f32, DType::bf16});
  a.expectSameDevice(*x, "a", *y, "b");
  int64_t period = 0;
  if (y->shape != x->shape) {
    if (x->rank() >= 1 && y->rank() == 1 && y->shape[0] == x->dim(-1)) {
      period = y->shape[0];
    } else {
      TensorImpl last;
      if (x->rank() >= 1) last.shape = {x->dim(-1)};
      throwRange(name, ": b must have the shape of a ", x->shapeString(), (x->rank() >= 1 ? cat(" or ", last.shapeString()) : std::string()),
                 " but received ", y->shapeString());
    }
  }
  expectKernelFor(k, x->device, "a");
  TensorRef out = newTensor(x->dtype, x->shape, x->device);
  BinaryParams p;
  p.a = x->data(); p.aType = x->dtype;
  p.b = y->data(); p.bType = y->dtype;
  p.out = out->data(); p.outType = out->dtype;
  p.n = x->numel(); p.period = period;
  if (period == 0 || p.n == 0) p.period = 0;
  p.kind = kind;
  launch(k, x->device, p, {x, y, out});
  return NativeTensor::Wrap(info.Env(), out);
}

static Napi::Value Add(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return binaryOp(info, kAdd, BinaryKind::Add); });
}
static Napi::Value Mul(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return binaryOp(info, kMul, BinaryKind::Mul); });
}

static Napi::Value unaryOp(const Napi::CallbackInfo& info, const Kernels<UnaryParams>& k, UnaryKind kind) {
  OpArgs a(info, k.op);
  TensorRef x = a.tensor(0, "x");
  a.expectDtype(*x, "x", {DType::f32, DType::bf16});
  float s = kind == UnaryKind::Scale ? float(a.number(1, "s")) : 1.0f;
  expectKernelFor(k, x->device);
  TensorRef out = newTensor(x->dtype, x->shape, x->device);
  UnaryParams p;
  p.x = x->data(); p.xType = x->dtype;
  p.out = out->data(); p.outType = out->dtype;
  p.n = x->numel(); p.scale = s; p.kind = kind;
  launch(k, x->device, p, {x, out});
  return NativeTensor::Wrap(info.Env(), out);
}

/** silu(x) -> x / (1 + e^-x), x's dtype */
static Napi::Value Silu(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return unaryOp(info, kSilu, UnaryKind::Silu); });
}
/** scale(x, s) -> x · f32(s), x's dtype */
static Napi::Value Scale(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return unaryOp(info, kScale, UnaryKind::Scale); });
}

/** Elements before dimension d, and elements after it. */
static void splitAt(const TensorImpl& t, int d, int64_t* outer, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < d; ++i) *outer *= t.shape[i];
  for (int i = d + 1; i < t.rank(); ++i) *inner *= t.shape[i];
}

/** slice(x, dim, start, length) -> a copy of x with dimension dim cut to [start, start + length) */
static Napi::Value Slice(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "slice");
    TensorRef x = a.tensor(0, "x");
    a.expectMinRank(*x, "x", 1);
    int64_t dimArg = a.integer(1, "dim", -x->rank(), x->rank() - 1);
    int d = int(dimArg < 0 ? dimArg + x->rank() : dimArg);
    int64_t size = x->shape[d];
    int64_t start = a.integer(2, "start", 0, size);
    int64_t length = a.integer(3, "length", 0, size - start);
    std::vector<int64_t> shape = x->shape;
    shape[d] = length;
    expectKernelFor(kSlice, x->device);
    TensorRef out = newTensor(x->dtype, shape, x->device);
    int64_t outer, inner;
    splitAt(*x, d, &outer, &inner);
    const int64_t es = int64_t(dtypeSize(x->dtype));
    CopyStridedParams p;
    p.src = static_cast<const char*>(x->data()) + start * inner * es; p.srcStride = size * inner * es;
    p.dst = out->data(); p.dstStride = length * inner * es;
    p.rows = outer; p.rowBytes = p.dstStride;
    launch(kSlice, x->device, p, {x, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

/** concat(tensors[], dim) -> a copy of the tensors joined along dim */
static Napi::Value Concat(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "concat");
    Napi::Value list = info.Length() > 0 ? info[0] : info.Env().Undefined();
    if (!list.IsArray() || list.As<Napi::Array>().Length() == 0)
      throwType("concat: expected a non-empty array of Tensors for tensors");
    Napi::Array arr = list.As<Napi::Array>();
    std::vector<TensorRef> ts;
    std::vector<std::string> names;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      names.push_back(cat("tensors[", i, "]"));
      Napi::Value v = arr[i];
      if (!NativeTensor::FromValue(v, "concat", names.back().c_str()))
        throwType("concat: expected a Tensor for ", names.back(), " but received ", v.IsNull() ? "null" : v.IsUndefined() ? "undefined" : "another value");
      ts.push_back(NativeTensor::Unwrap(v.As<Napi::Object>())->ref());
    }
    const TensorImpl& t0 = *ts[0];
    a.expectMinRank(t0, "tensors[0]", 1);
    int64_t dimArg = a.integer(1, "dim", -t0.rank(), t0.rank() - 1);
    int d = int(dimArg < 0 ? dimArg + t0.rank() : dimArg);
    int64_t total = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
      const TensorImpl& t = *ts[i];
      const char* nm = names[i].c_str();
      if (t.dtype != t0.dtype) throwType("concat: ", nm, " must have dtype ", dtypeName(t0.dtype), " (as tensors[0]) but received ", dtypeName(t.dtype));
      a.expectSameDevice(t0, "tensors[0]", t, nm);
      bool ok = t.rank() == t0.rank();
      for (int k = 0; ok && k < t.rank(); ++k) ok = k == d || t.shape[k] == t0.shape[k];
      if (!ok)
        throwRange("concat: ", nm, " must match tensors[0] ", t0.shapeString(), " outside dimension ", d, " but received ", t.shapeString());
      total += t.shape[d];
    }
    std::vector<int64_t> shape = t0.shape;
    shape[d] = total;
    expectKernelFor(kConcat, t0.device, "tensors[0]");
    TensorRef out = newTensor(t0.dtype, shape, t0.device);
    int64_t outer, inner;
    splitAt(t0, d, &outer, &inner);
    const int64_t es = int64_t(dtypeSize(t0.dtype));
    // One copy per part, in order, each holding its part and the output.
    const int64_t dstStride = total * inner * es;
    int64_t offset = 0;
    for (auto& t : ts) {
      CopyStridedParams p;
      p.src = t->data(); p.srcStride = t->shape[d] * inner * es;
      p.dst = static_cast<char*>(out->data()) + offset; p.dstStride = dstStride;
      p.rows = outer; p.rowBytes = p.srcStride;
      launch(kConcat, t0.device, p, {t, out});
      offset += p.rowBytes;
    }
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("add", Add);
DSN_OP("mul", Mul);
DSN_OP("silu", Silu);
DSN_OP("scale", Scale);
DSN_OP("slice", Slice);
DSN_OP("concat", Concat);

}  // namespace dsn
