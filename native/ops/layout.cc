// transpose: swaps two dimensions, copying into a new contiguous tensor (any dtype).
#include "../cpu/layout.h"

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/elementwise.cuh"
#endif

namespace dsn {

static const Kernels<TransposeParams> kTranspose{"transpose", cpu::transpose, DSN_CUDA_KERNEL(cuda::transposeLaunch)};
DSN_KERNELS(kTranspose);

/** transpose(x, dim0, dim1) -> y with dims dim0 and dim1 swapped */
static Napi::Value Transpose(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "transpose");
    TensorRef x = a.tensor(0, "x");
    const int64_t r = x->rank();
    a.expectMinRank(*x, "x", 2);
    int64_t d0 = a.integer(1, "dim0", -r, r - 1), d1 = a.integer(2, "dim1", -r, r - 1);
    if (d0 < 0) d0 += r;
    if (d1 < 0) d1 += r;
    if (d0 > d1) std::swap(d0, d1);
    std::vector<int64_t> shape = x->shape;
    std::swap(shape[d0], shape[d1]);
    expectKernelFor(kTranspose, x->device);
    TensorRef y = newTensor(x->dtype, shape, x->device);
    TransposeParams p;
    p.x = x->data();
    p.y = y->data();
    p.elemBytes = int64_t(dtypeSize(x->dtype));
    if (d0 != d1) {
      for (int64_t i = 0; i < d0; ++i) p.outer *= x->shape[i];
      p.a = x->shape[d0];
      for (int64_t i = d0 + 1; i < d1; ++i) p.mid *= x->shape[i];
      p.b = x->shape[d1];
      for (int64_t i = d1 + 1; i < r; ++i) p.inner *= x->shape[i];
    } else {
      p.inner = x->numel();  // the same dimension twice: one row, a plain copy
    }
    if (x->numel() > 0) launch(kTranspose, x->device, p, {x, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

DSN_OP("transpose", Transpose);

}  // namespace dsn
