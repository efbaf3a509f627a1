// rmsNorm: RMSNorm over the last dimension, optionally fused with the residual add of the reference
// (x + residual is normalised and also returned, rounded to x's dtype). layerNorm: LayerNorm with
// optional bias.
#include "../cpu/norm.h"

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/norm.cuh"
#endif

namespace dsn {

static const Kernels<RmsNormParams> kRmsNorm{"rmsNorm", cpu::rmsNorm, DSN_CUDA_KERNEL(cuda::rmsNormLaunch)};
DSN_KERNELS(kRmsNorm);
static const Kernels<LayerNormParams> kLayerNorm{"layerNorm", cpu::layerNorm, DSN_CUDA_KERNEL(cuda::layerNormLaunch)};
DSN_KERNELS(kLayerNorm);

/**
 * rmsNorm(x [.., dim], weight [dim], eps, residual? [.., dim], quant? (ue8m0: boolean)) -> out |
 * [out, residualOut], then with quant codes [.., dim] f8e4m3 and scales [.., dim / 128] f32 appended:
 * actQuant of out (as stored) fused into the kernel.
 */
static Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "rmsNorm");
    TensorRef x = a.tensor(0, "x");
    TensorRef w = a.tensor(1, "weight");
    double eps = a.number(2, "eps");
    TensorRef res = a.optTensor(3, "residual");
    a.expectDtype(*x, "x", {DType::f32, DType::bf16, DType::f16});
    a.expectDtype(*w, "weight", {DType::f32, DType::bf16});
    a.expectMinRank(*x, "x", 1);
    int64_t dim = x->dim(-1);
    if (dim < 1) throwRange("rmsNorm: the last dimension of x must be >= 1 but received shape ", x->shapeString());
    a.expectShape(*w, "weight", {dim});
    a.expectSameDevice({{&x, "x"}, {&w, "weight"}, {&res, "residual"}});
    if (eps < 0) throwRange("rmsNorm: eps must be >= 0 but received ", eps);
    if (res) {
      if (res->dtype != x->dtype) throwType("rmsNorm: residual must have the dtype of x (", dtypeName(x->dtype), ") but received ", dtypeName(res->dtype));
      if (res->shape != x->shape) throwRange("rmsNorm: residual must have the shape of x ", x->shapeString(), " but received ", res->shapeString());
    }
    expectKernelFor(kRmsNorm, x->device);
    TensorRef out = newTensor(x->dtype, x->shape, x->device);
    TensorRef resOut = res ? newTensor(x->dtype, x->shape, x->device) : nullptr;
    TensorRef codes, scales;
    bool ue8m0 = false;
    const bool quant = a.quantOutputs(4, x->dtype, x->shape, x->device, &codes, &scales, &ue8m0);

    RmsNormParams p;
    p.x = x->data(); p.xType = x->dtype;
    p.residual = res ? res->data() : nullptr;
    p.weight = w->data(); p.wType = w->dtype;
    p.out = out->data();
    p.residualOut = resOut ? resOut->data() : nullptr;
    p.rows = x->numel() / dim; p.dim = dim; p.eps = float(eps);
    if (quant) {
      p.codes = codes->ptr<uint8_t>(); p.scales = scales->ptr<float>(); p.ue8m0 = ue8m0;
    }
    launch(kRmsNorm, x->device, p, {x, w, res, out, resOut, codes, scales});
    if (quant) return res ? wrapAll(info.Env(), {out, resOut, codes, scales}) : wrapAll(info.Env(), {out, codes, scales});
    return res ? wrapAll(info.Env(), {out, resOut}) : NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("rmsNorm", RmsNorm);

/** layerNorm(x [.., dim], weight [dim], bias [dim] | null, eps) -> out */
static Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "layerNorm");
    TensorRef x = a.tensor(0, "x");
    TensorRef w = a.tensor(1, "weight");
    TensorRef b = a.optTensor(2, "bias");
    double eps = a.number(3, "eps");
    a.expectDtype(*x, "x", {DType::f32, DType::bf16});
    a.expectDtype(*w, "weight", {DType::f32, DType::bf16});
    if (b) a.expectDtype(*b, "bias", {DType::f32, DType::bf16});
    a.expectMinRank(*x, "x", 1);
    int64_t dim = x->dim(-1);
    if (dim < 1) throwRange("layerNorm: the last dimension of x must be >= 1 but received shape ", x->shapeString());
    a.expectShape(*w, "weight", {dim});
    if (b) a.expectShape(*b, "bias", {dim});
    a.expectSameDevice({{&x, "x"}, {&w, "weight"}, {&b, "bias"}});
    expectKernelFor(kLayerNorm, x->device);
    if (eps < 0) throwRange("layerNorm: eps must be >= 0 but received ", eps);
    TensorRef out = newTensor(x->dtype, x->shape, x->device);

    LayerNormParams p;
    p.x = x->data(); p.xType = x->dtype;
    p.weight = w->data(); p.wType = w->dtype;
    p.bias = b ? b->data() : nullptr; p.bType = b ? b->dtype : DType::f32;
    p.out = out->data();
    p.rows = x->numel() / dim; p.dim = dim; p.eps = float(eps);
    launch(kLayerNorm, x->device, p, {x, w, b, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("layerNorm", LayerNorm);

}  // namespace dsn
