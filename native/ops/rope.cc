// rope: rotary position embedding of a range of dims of x, in f32, rounded to x's dtype.
#include "../cpu/rope.h"

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/rope.cuh"
#endif

namespace dsn {

static const Kernels<RopeParams> kRope{"rope", cpu::rope, DSN_CUDA_KERNEL(cuda::ropeLaunch)};
DSN_KERNELS(kRope);

/** rope(x [T, D] | [T, H, D], positions [T] i32, cos [P, R/2] f32, sin [P, R/2] f32, offset, interleaved) -> y */
static Napi::Value Rope(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "rope");
    TensorRef x = a.tensor(0, "x");
    TensorRef pos = a.tensor(1, "positions");
    TensorRef cos = a.tensor(2, "cos");
    TensorRef sin = a.tensor(3, "sin");
    int64_t offset = a.integer(4, "offset", 0, int64_t(1) << 31);
    bool interleaved = a.boolean(5, "interleaved");
    a.expectDtype(*x, "x", {DType::bf16, DType::f32});
    if (x->rank() != 2 && x->rank() != 3)
      throwRange("rope: x must have 2 or 3 dimensions ([T, D] or [T, H, D]) but received shape ", x->shapeString());
    a.expectDtype(*pos, "positions", {DType::i32});
    a.expectShape(*pos, "positions", {x->dim(0)});
    a.expectDtype(*cos, "cos", {DType::f32});
    a.expectRank(*cos, "cos", 2);
    a.expectDtype(*sin, "sin", {DType::f32});
    if (sin->shape != cos->shape)
      throwRange("rope: sin must have the shape of cos ", cos->shapeString(), " but received ", sin->shapeString());
    a.expectSameDevice(*x, "x", *pos, "positions");
    a.expectSameDevice(*x, "x", *cos, "cos");
    a.expectSameDevice(*x, "x", *sin, "sin");
    int64_t dim = x->dim(-1), half = cos->dim(1);
    if (offset + 2 * half > dim)
      throwRange("rope: offset + 2 * cos.shape[1] must be at most the last dimension of x (", dim, ") but received ",
                 offset, " + ", 2 * half, " = ", offset + 2 * half);
    expectKernelFor(kRope, x->device);
    TensorRef y = newTensor(x->dtype, x->shape, x->device);

    RopeParams p;
    p.x = x->data(); p.out = y->data(); p.type = x->dtype;
    p.positions = pos->ptr<int32_t>(); p.cos = cos->ptr<float>(); p.sin = sin->ptr<float>();
    p.tokens = x->dim(0); p.heads = x->rank() == 3 ? x->dim(1) : 1; p.dim = dim;
    p.offset = offset; p.half = half; p.tableRows = cos->dim(0); p.interleaved = interleaved;
    launch(kRope, x->device, p, {x, pos, cos, sin, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

DSN_OP("rope", Rope);

}  // namespace dsn
