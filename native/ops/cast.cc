// cast: element-wise conversion between f32, bf16, f16 and f8e4m3 (round-to-nearest-even).
#include "../cpu/cast.h"

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/cast.cuh"
#endif

namespace dsn {

static const Kernels<CastParams> kCast{"cast", cpu::cast, DSN_CUDA_KERNEL(cuda::castLaunch)};
DSN_KERNELS(kCast);

/** cast(x, dtype) -> y with x's shape */
static Napi::Value Cast(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "cast");
    TensorRef x = a.tensor(0, "x");
    DType to = a.dtype(1, "dtype");
    a.expectDtype(*x, "x", {DType::f32, DType::bf16, DType::f16, DType::f8e4m3});
    if (to != DType::f32 && to != DType::bf16 && to != DType::f16 && to != DType::f8e4m3)
      throwType("cast: dtype must be f32, bf16, f16 or f8e4m3 but received ", dtypeName(to));
    expectKernelFor(kCast, x->device);
    TensorRef y = newTensor(to, x->shape, x->device);
    CastParams p;
    p.x = x->data(); p.from = x->dtype; p.y = y->data(); p.to = to; p.n = x->numel();
    launch(kCast, x->device, p, {x, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

DSN_OP("cast", Cast);

}  // namespace dsn
