// Element-wise ops (add, mul with a broadcast over the last dim, silu, scale) and copies (slice,
// concat). f32 math; the output takes the first input's dtype. CPU only so far.
#include "../cpu/elementwise.h"

#include <string>
#include <vector>

#include "args.h"
#include "dispatch.h"

namespace dsn {

/** add|mul(a [..., D], b [..., D] | [D]) -> [..., D] of a's dtype */
static Napi::Value binaryOp(const Napi::CallbackInfo& info, const char* name, cpu::BinaryKind kind) {
  OpArgs a(info, name);
  TensorRef x = a.tensor(0, "a");
  TensorRef y = a.tensor(1, "b");
  a.expectDtype(*x, "a", {DType::f32, DType::bf16});
  a.expectDtype(*y, "b", {DType::f32, DType::bf16});
  a.expectSameDevice(*x, "a", *y, "b");
  a.requireCpu(*x, "a");
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
  TensorRef out = newTensor(x->dtype, x->shape, x->device);
  cpu::BinaryParams p;
  p.a = x->data(); p.aType = x->dtype;
  p.b = y->data(); p.bType = y->dtype;
  p.out = out->data(); p.outType = out->dtype;
  p.n = x->numel(); p.period = period;
  if (period == 0 || p.n == 0) p.period = 0;
  enqueueCpu(name, {x, y, out}, [p, kind](ThreadPool& pool) { cpu::binary(p, kind, pool); });
  return NativeTensor::Wrap(info.Env(), out);
}

static Napi::Value Add(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return binaryOp(info, "add", cpu::BinaryKind::Add); });
}
static Napi::Value Mul(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return binaryOp(info, "mul", cpu::BinaryKind::Mul); });
}

static Napi::Value unaryOp(const Napi::CallbackInfo& info, const char* name, cpu::UnaryKind kind) {
  OpArgs a(info, name);
  TensorRef x = a.tensor(0, "x");
  a.expectDtype(*x, "x", {DType::f32, DType::bf16});
  a.requireCpu(*x, "x");
  float s = kind == cpu::UnaryKind::Scale ? float(a.number(1, "s")) : 1.0f;
  TensorRef out = newTensor(x->dtype, x->shape, x->device);
  cpu::UnaryParams p;
  p.x = x->data(); p.xType = x->dtype;
  p.out = out->data(); p.outType = out->dtype;
  p.n = x->numel(); p.scale = s;
  enqueueCpu(name, {x, out}, [p, kind](ThreadPool& pool) { cpu::unary(p, kind, pool); });
  return NativeTensor::Wrap(info.Env(), out);
}

/** silu(x) -> x / (1 + e^-x), x's dtype */
static Napi::Value Silu(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return unaryOp(info, "silu", cpu::UnaryKind::Silu); });
}
/** scale(x, s) -> x · f32(s), x's dtype */
static Napi::Value Scale(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return unaryOp(info, "scale", cpu::UnaryKind::Scale); });
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
    a.requireCpu(*x, "x");
    a.expectMinRank(*x, "x", 1);
    int64_t dimArg = a.integer(1, "dim", -x->rank(), x->rank() - 1);
    int d = int(dimArg < 0 ? dimArg + x->rank() : dimArg);
    int64_t size = x->shape[d];
    int64_t start = a.integer(2, "start", 0, size);
    int64_t length = a.integer(3, "length", 0, size - start);
    std::vector<int64_t> shape = x->shape;
    shape[d] = length;
    TensorRef out = newTensor(x->dtype, shape, x->device);
    int64_t outer, inner;
    splitAt(*x, d, &outer, &inner);
    const int64_t es = int64_t(dtypeSize(x->dtype));
    const char* src = static_cast<const char*>(x->data()) + start * inner * es;
    void* dst = out->data();
    const int64_t srcStride = size * inner * es, dstStride = length * inner * es;
    enqueueCpu("slice", {x, out}, [=](ThreadPool& pool) { cpu::copyStrided(dst, dstStride, src, srcStride, outer, dstStride, pool); });
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
    a.requireCpu(t0, "tensors[0]");
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
    TensorRef out = newTensor(t0.dtype, shape, t0.device);
    int64_t outer, inner;
    splitAt(t0, d, &outer, &inner);
    const int64_t es = int64_t(dtypeSize(t0.dtype));
    struct Part { const void* src; int64_t bytes; int64_t offset; };
    std::vector<Part> parts;
    int64_t offset = 0;
    for (auto& t : ts) {
      parts.push_back({t->data(), t->shape[d] * inner * es, offset});
      offset += t->shape[d] * inner * es;
    }
    void* dst = out->data();
    const int64_t dstStride = total * inner * es;
    std::vector<TensorRef> keep = ts;
    keep.push_back(out);
    enqueueCpu("concat", keep, [=](ThreadPool& pool) {
      for (const Part& part : parts)
        cpu::copyStrided(static_cast<char*>(dst) + part.offset, dstStride, part.src, part.bytes, outer, part.bytes, pool);
    });
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
