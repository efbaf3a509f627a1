// actQuant: per-group FP8 quantisation of activations (the reference's act_quant);
// fp8Dequant: FP8 block-scaled weights to f32 / bf16.
#include "../cpu/quant.h"

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/quant.cuh"
#endif

namespace dsn {

static const Kernels<ActQuantParams> kActQuant{"actQuant", cpu::actQuant, DSN_CUDA_KERNEL(cuda::actQuantLaunch)};
DSN_KERNELS(kActQuant);
static const Kernels<Fp8DequantParams> kFp8Dequant{"fp8Dequant", cpu::fp8Dequant, DSN_CUDA_KERNEL(cuda::fp8DequantLaunch)};
DSN_KERNELS(kFp8Dequant);

/** actQuant(x [.., K], blockSize, ue8m0) -> [codes [.., K] f8e4m3, scales [.., K/blockSize] f32] */
static Napi::Value ActQuant(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "actQuant");
    TensorRef x = a.tensor(0, "x");
    int64_t blockSize = a.integer(1, "blockSize", 1, int64_t(1) << 30);
    bool ue8m0 = a.boolean(2, "ue8m0");
    a.expectDtype(*x, "x", {DType::f32, DType::bf16});
    a.expectMinRank(*x, "x", 1);
    int64_t K = x->dim(-1);
    if (K < 1 || K % blockSize != 0)
      throwRange("actQuant: the last dimension of x must be a positive multiple of blockSize ", blockSize, " but received shape ", x->shapeString());
    expectKernelFor(kActQuant, x->device);
    std::vector<int64_t> sshape = x->shape;
    sshape.back() = K / blockSize;
    TensorRef codes = newTensor(DType::f8e4m3, x->shape, x->device);
    TensorRef scales = newTensor(DType::f32, sshape, x->device);
    ActQuantParams p;
    p.x = x->data(); p.xType = x->dtype;
    p.codes = codes->ptr<uint8_t>(); p.scales = scales->ptr<float>();
    p.rows = x->numel() / K; p.K = K; p.blockSize = blockSize; p.ue8m0 = ue8m0;
    launch(kActQuant, x->device, p, {x, codes, scales});
    return wrapAll(info.Env(), {codes, scales});
  });
}

/** fp8Dequant(w [N, K] f8e4m3, wScales [ceil(N/128), ceil(K/128)] f32, outDtype) -> [N, K] */
static Napi::Value Fp8Dequant(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "fp8Dequant");
    TensorRef w = a.tensor(0, "w");
    TensorRef s = a.tensor(1, "wScales");
    DType out = a.outDtype(2, {DType::f32, DType::bf16});
    a.expectDtype(*w, "w", {DType::f8e4m3});
    a.expectDtype(*s, "wScales", {DType::f32});
    a.expectRank(*w, "w", 2);
    int64_t N = w->dim(0), K = w->dim(1);
    a.expectShape(*s, "wScales", {(N + 127) / 128, (K + 127) / 128});
    a.expectSameDevice(*w, "w", *s, "wScales");
    expectKernelFor(kFp8Dequant, w->device, "w");
    TensorRef y = newTensor(out, {N, K}, w->device);
    Fp8DequantParams p;
    p.w = w->ptr<uint8_t>(); p.scales = s->ptr<float>(); p.out = y->data(); p.outType = out; p.N = N; p.K = K;
    launch(kFp8Dequant, w->device, p, {w, s, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

DSN_OP("actQuant", ActQuant);
DSN_OP("fp8Dequant", Fp8Dequant);

}  // namespace dsn
