// MoE ops: moeRoute (DeepSeek's Gate), moeDispatch + gatherRows (expert-contiguous rows), swiglu,
// moeCombine. CPU (native/cpu/moe.cc) and CUDA (cuda/moe.cu) kernels of the same params.
#include "../cpu/moe.h"

#include <limits>

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/moe.cuh"
#endif

namespace dsn {

static const Kernels<MoeRouteParams> kMoeRoute{"moeRoute", cpu::moeRoute, DSN_CUDA_KERNEL(cuda::moeRouteLaunch)};
DSN_KERNELS(kMoeRoute);
static const Kernels<MoeDispatchParams> kMoeDispatch{"moeDispatch", cpu::moeDispatch, DSN_CUDA_KERNEL(cuda::moeDispatchLaunch)};
DSN_KERNELS(kMoeDispatch);
static const Kernels<GatherRowsParams> kGatherRows{"gatherRows", cpu::gatherRows, DSN_CUDA_KERNEL(cuda::gatherRowsLaunch)};
DSN_KERNELS(kGatherRows);
static const Kernels<SwigluParams> kSwiglu{"swiglu", cpu::swiglu, DSN_CUDA_KERNEL(cuda::swigluLaunch)};
DSN_KERNELS(kSwiglu);
static const Kernels<MoeCombineParams> kMoeCombine{"moeCombine", cpu::moeCombine, DSN_CUDA_KERNEL(cuda::moeCombineLaunch)};
DSN_KERNELS(kMoeCombine);

constexpr int64_t kMaxI32 = std::numeric_limits<int32_t>::max();

/** moeRoute(logits [T, E] f32, bias [E] f32 | null, topk, nGroups, topkGroups, scoreFunc, routeScale, normalize)
 *  -> [ids [T, topk] i32, weights [T, topk] f32] */
static Napi::Value MoeRoute(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "moeRoute");
    TensorRef logits = a.tensor(0, "logits", {DType::f32}, {OpArgs::kAny, OpArgs::kAny});
    const int64_t T = logits->shape[0], E = logits->shape[1];
    if (E < 1) throwRange("moeRoute: logits must have at least 1 expert but received shape ", logits->shapeString());
    if (E > kMaxI32) throwRange("moeRoute: logits must have at most ", kMaxI32, " experts but received shape ", logits->shapeString());
    TensorRef bias = a.optTensor(1, "bias", {DType::f32}, {E});
    a.expectSameDevice({{&logits, "logits"}, {&bias, "bias"}});
    expectKernelFor(kMoeRoute, logits->device, "logits");
    const int64_t topk = a.integer(2, "topk", 1, E);
    const int64_t nGroups = a.integer(3, "nGroups", 1, E);
    if (E % nGroups != 0) throwRange("moeRoute: nGroups (", nGroups, ") must divide the ", E, " experts");
    const int64_t topkGroups = a.integer(4, "topkGroups", 1, nGroups);
    const int64_t groupSize = E / nGroups;
    if (topk > topkGroups * groupSize)
      throwRange("moeRoute: topk (", topk, ") must be at most topkGroups · experts / nGroups = ", topkGroups * groupSize);
    if (bias && nGroups > 1 && groupSize < 2)
      throwRange("moeRoute: with a bias, each group scores the sum of its top 2, so groups need at least 2 experts but hold ", groupSize);
    const std::string scoreFunc = a.string(5, "scoreFunc");
    if (scoreFunc != "sigmoid" && scoreFunc != "softmax")
      throwType("moeRoute: scoreFunc must be 'sigmoid' or 'softmax' but received '", scoreFunc, "'");
    const double routeScale = a.number(6, "routeScale");
    const bool normalize = a.boolean(7, "normalize");

    TensorRef ids = newTensor(DType::i32, {T, topk}, logits->device);
    TensorRef weights = newTensor(DType::f32, {T, topk}, logits->device);
    MoeRouteParams p;
    p.logits = logits->ptr<float>();
    p.bias = bias ? bias->ptr<float>() : nullptr;
    p.tokens = T; p.experts = E;
    p.topk = int(topk); p.nGroups = int(nGroups); p.topkGroups = int(topkGroups);
    p.softmax = scoreFunc == "softmax"; p.routeScale = float(routeScale); p.normalize = normalize;
    p.ids = ids->ptr<int32_t>(); p.weights = weights->ptr<float>();
    launch(kMoeRoute, logits->device, p, {logits, bias, ids, weights});
    return wrapAll(info.Env(), {ids, weights});
  });
}

/** moeDispatch(ids [T, k] i32, numExperts) -> [tokenOfRow [T·k], rowOfSlot [T·k], offsets [E + 1]] (i32) */
static Napi::Value MoeDispatch(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "moeDispatch");
    TensorRef ids = a.tensor(0, "ids", {DType::i32}, {OpArgs::kAny, OpArgs::kAny});
    expectKernelFor(kMoeDispatch, ids->device, "ids");
    const int64_t E = a.integer(1, "numExperts", 1, kMaxI32 - 1);
    const int64_t T = ids->shape[0], k = ids->shape[1];
    if (T * k > kMaxI32) throwRange("moeDispatch: ids must have at most ", kMaxI32, " elements but received shape ", ids->shapeString());
    TensorRef tokenOfRow = newTensor(DType::i32, {T * k}, ids->device);
    TensorRef rowOfSlot = newTensor(DType::i32, {T * k}, ids->device);
    TensorRef offsets = newTensor(DType::i32, {E + 1}, ids->device);
    MoeDispatchParams p;
    p.ids = ids->ptr<int32_t>(); p.tokens = T; p.k = k; p.experts = E;
    p.tokenOfRow = tokenOfRow->ptr<int32_t>(); p.rowOfSlot = rowOfSlot->ptr<int32_t>(); p.offsets = offsets->ptr<int32_t>();
    launch(kMoeDispatch, ids->device, p, {ids, tokenOfRow, rowOfSlot, offsets});
    return wrapAll(info.Env(), {tokenOfRow, rowOfSlot, offsets});
  });
}

/** gatherRows(x [T, D] any dtype, index [R] i32) -> [R, D] */
static Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "gatherRows");
    TensorRef x = a.tensor(0, "x", {}, {OpArgs::kAny, OpArgs::kAny});
    TensorRef index = a.tensor(1, "index", {DType::i32}, {OpArgs::kAny});
    a.expectSameDevice({{&x, "x"}, {&index, "index"}});
    expectKernelFor(kGatherRows, x->device, "x");
    TensorRef out = newTensor(x->dtype, {index->shape[0], x->shape[1]}, x->device);
    GatherRowsParams p;
    p.x = x->data(); p.rows = x->shape[0]; p.rowBytes = x->shape[1] * int64_t(dtypeSize(x->dtype));
    p.index = index->ptr<int32_t>(); p.count = index->shape[0];
    p.out = out->data();
    launch(kGatherRows, x->device, p, {x, index, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

/** swiglu(gateUp [R, 2I] f32 | bf16, outDtype?, quant? (ue8m0: boolean)) -> out [R, I] | with quant
 *  [out, codes [R, I] f8e4m3, scales [R, I / 128] f32]: actQuant of out (as stored) fused into the kernel. */
static Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "swiglu");
    TensorRef x = a.tensor(0, "gateUp", {DType::f32, DType::bf16}, {OpArgs::kAny, OpArgs::kAny});
    if (x->shape[1] % 2 != 0)
      throwRange("swiglu: the last dimension of gateUp (gate and up halves) must be even but received shape ", x->shapeString());
    expectKernelFor(kSwiglu, x->device, "gateUp");
    DType outType = a.outDtype(1, {DType::f32, DType::bf16}, &x->dtype);
    TensorRef out = newTensor(outType, {x->shape[0], x->shape[1] / 2}, x->device);
    TensorRef codes, scales;
    bool ue8m0 = false;
    const bool quant = a.quantOutputs(2, outType, out->shape, x->device, &codes, &scales, &ue8m0);
    SwigluParams p;
    p.gateUp = x->data(); p.inType = x->dtype; p.rows = x->shape[0]; p.inter = x->shape[1] / 2;
    p.out = out->data(); p.outType = outType;
    if (quant) {
      p.codes = codes->ptr<uint8_t>(); p.scales = scales->ptr<float>(); p.ue8m0 = ue8m0;
    }
    launch(kSwiglu, x->device, p, {x, out, codes, scales});
    return quant ? wrapAll(info.Env(), {out, codes, scales}) : NativeTensor::Wrap(info.Env(), out);
  });
}

/** moeCombine(expertOut [R, D], rowOfSlot [T·k] i32, weights [T, k] f32, ids [T, k] i32, shared [T, D] | null, outDtype) -> [T, D] */
static Napi::Value MoeCombine(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "moeCombine");
    constexpr int64_t kAny = OpArgs::kAny;
    TensorRef eo = a.tensor(0, "expertOut", {DType::f32, DType::bf16}, {kAny, kAny});
    TensorRef w = a.tensor(2, "weights", {DType::f32}, {kAny, kAny});
    const int64_t T = w->shape[0], k = w->shape[1], D = eo->shape[1];
    TensorRef ids = a.tensor(3, "ids", {DType::i32}, {T, k});
    TensorRef ros = a.tensor(1, "rowOfSlot", {DType::i32}, {T * k});
    TensorRef shared = a.optTensor(4, "shared", {DType::f32, DType::bf16}, {T, D});
    a.expectSameDevice({{&eo, "expertOut"}, {&ros, "rowOfSlot"}, {&w, "weights"}, {&ids, "ids"}, {&shared, "shared"}});
    expectKernelFor(kMoeCombine, eo->device, "expertOut");
    DType outType = a.outDtype(5, {DType::f32, DType::bf16});
    TensorRef out = newTensor(outType, {T, D}, eo->device);
    MoeCombineParams p;
    p.expertOut = eo->data(); p.eType = eo->dtype; p.expertRows = eo->shape[0]; p.dim = D;
    p.rowOfSlot = ros->ptr<int32_t>(); p.weights = w->ptr<float>(); p.ids = ids->ptr<int32_t>();
    p.shared = shared ? shared->data() : nullptr; p.sType = shared ? shared->dtype : eo->dtype;
    p.tokens = T; p.k = k;
    p.out = out->data(); p.outType = outType;
    launch(kMoeCombine, eo->device, p, {eo, ros, w, ids, shared, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("moeRoute", MoeRoute);
DSN_OP("moeDispatch", MoeDispatch);
DSN_OP("gatherRows", GatherRows);
DSN_OP("swiglu", Swiglu);
DSN_OP("moeCombine", MoeCombine);

}  // namespace dsn
