// hadamard: Walsh-Hadamard rotation of the last dimension, scaled by D^-1/2 (the indexer's
// rotate_activation).
#include "../cpu/hadamard.h"

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/hadamard.cuh"
#endif

namespace dsn {

static const Kernels<HadamardParams> kHadamard{"hadamard", cpu::hadamard, DSN_CUDA_KERNEL(cuda::hadamardLaunch)};
DSN_KERNELS(kHadamard);

/** hadamard(x [..., D]) -> y, D a power of two <= 2^15 */
static Napi::Value Hadamard(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "hadamard");
    TensorRef x = a.tensor(0, "x");
    a.expectDtype(*x, "x", {DType::bf16, DType::f32});
    a.expectMinRank(*x, "x", 1);
    int64_t dim = x->dim(-1);
    if (dim < 1 || dim > 32768 || (dim & (dim - 1)) != 0)
      throwRange("hadamard: the last dimension of x must be a power of two between 1 and 32768 but received shape ", x->shapeString());
    expectKernelFor(kHadamard, x->device);
    TensorRef y = newTensor(x->dtype, x->shape, x->device);
    HadamardParams p;
    p.x = x->data(); p.out = y->data(); p.type = x->dtype; p.rows = x->numel() / dim; p.dim = dim;
    launch(kHadamard, x->device, p, {x, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

DSN_OP("hadamard", Hadamard);

}  // namespace dsn
