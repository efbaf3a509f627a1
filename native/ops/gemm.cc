// Matrix products: fp8Gemm, groupedFp8Gemm (MoE experts), gemm (f32 / bf16) and bmmHeads (MLA's
// per-head products). CPU kernels only so far.
#include "../cpu/gemm.h"

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/gemm.cuh"
#include "../../cuda/sm90_fp8_gemm.cuh"
#endif

namespace dsn {

static const Kernels<Fp8GemmParams> kFp8Gemm{"fp8Gemm", cpu::fp8Gemm, DSN_CUDA_KERNEL(cuda::fp8GemmLaunch)};
DSN_KERNELS(kFp8Gemm);
static const Kernels<GroupedFp8GemmParams> kGroupedFp8Gemm{"groupedFp8Gemm", cpu::groupedFp8Gemm, DSN_CUDA_KERNEL(cuda::groupedFp8GemmLaunch)};
DSN_KERNELS(kGroupedFp8Gemm);
static const Kernels<MaskedGroupedFp8GemmParams> kMaskedGroupedFp8Gemm{"maskedGroupedFp8Gemm", cpu::maskedGroupedFp8Gemm, DSN_CUDA_KERNEL(cuda::maskedGroupedFp8GemmLaunch)};
DSN_KERNELS(kMaskedGroupedFp8Gemm);
static const Kernels<GemmParams> kGemm{"gemm", cpu::gemm, DSN_CUDA_KERNEL(cuda::gemmLaunch)};
DSN_KERNELS(kGemm);
static const Kernels<BmmHeadsParams> kBmmHeads{"bmmHeads", cpu::bmmHeads, DSN_CUDA_KERNEL(cuda::bmmHeadsLaunch)};
DSN_KERNELS(kBmmHeads);

namespace {

std::string shapeText(const std::vector<int64_t>& shape) {
  TensorImpl t;
  t.shape = shape;
  return t.shapeString();
}

void expectShapeVec(const OpArgs& a, const TensorImpl& t, const char* name, const std::vector<int64_t>& shape) {
  if (t.shape != shape) throwRange(a.op(), ": ", name, " must have shape ", shapeText(shape), " but received ", t.shapeString());
}

DType outDtype(const OpArgs& a, int i) { return a.outDtype(i, {DType::bf16, DType::f32}); }

/** The shape of x with its last dimension replaced by n. */
std::vector<int64_t> withLast(const TensorImpl& x, int64_t n) {
  std::vector<int64_t> s = x.shape;
  s.back() = n;
  return s;
}

/** Checks the FP8 activation pair (codes [.., K], scales [.., K/128]) and returns K. */
int64_t checkFp8Activation(const OpArgs& a, const TensorImpl& x, const TensorImpl& s) {
  a.expectDtype(x, "a", {DType::f8e4m3});
  a.expectDtype(s, "aScales", {DType::f32});
  a.expectMinRank(x, "a", 1);
  int64_t K = x.dim(-1);
  if (K < 128 || K % 128 != 0)
    throwRange(a.op(), ": the last dimension of a (K) must be a positive multiple of 128 but received shape ", x.shapeString());
  expectShapeVec(a, s, "aScales", withLast(x, K / 128));
  a.expectSameDevice(x, "a", s, "aScales");
  return K;
}

}  // namespace

/** fp8Gemm(a [.., K] f8e4m3, aScales [.., K/128] f32, w [N, K] f8e4m3, wScales [ceil(N/128), K/128] f32, outDtype, exactBlockSums?) -> [.., N] */
static Napi::Value Fp8Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "fp8Gemm");
    TensorRef x = a.tensor(0, "a");
    TensorRef xs = a.tensor(1, "aScales");
    TensorRef w = a.tensor(2, "w");
    TensorRef ws = a.tensor(3, "wScales");
    DType out = outDtype(a, 4);
    int64_t K = checkFp8Activation(a, *x, *xs);
    a.expectDtype(*w, "w", {DType::f8e4m3});
    a.expectDtype(*ws, "wScales", {DType::f32});
    a.expectRank(*w, "w", 2);
    a.expectDim(*w, "w", 1, K);
    int64_t N = w->dim(0);
    if (N < 1) throwRange("fp8Gemm: w must have at least 1 row but received shape ", w->shapeString());
    expectShapeVec(a, *ws, "wScales", {(N + 127) / 128, K / 128});
    a.expectSameDevice(*x, "a", *w, "w");
    a.expectSameDevice(*x, "a", *ws, "wScales");
    expectKernelFor(kFp8Gemm, x->device, "a");
    TensorRef y = newTensor(out, withLast(*x, N), x->device);
    Fp8GemmParams p;
    p.a = x->ptr<uint8_t>(); p.aScales = xs->ptr<float>(); p.w = w->ptr<uint8_t>(); p.wScales = ws->ptr<float>();
    p.y = y->data(); p.yType = out; p.M = x->numel() / K; p.N = N; p.K = K;
    p.exactBlockSums = a.has(5) && a.boolean(5, "exactBlockSums");
    launch(kFp8Gemm, x->device, p, {x, xs, w, ws, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

/** groupedFp8Gemm(a [R, K], aScales [R, K/128], w [E, N, K], wScales [E, ceil(N/128), K/128], offsets [E+1] i32, outDtype, exactBlockSums?) -> [R, N] */
static Napi::Value GroupedFp8Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "groupedFp8Gemm");
    TensorRef x = a.tensor(0, "a");
    TensorRef xs = a.tensor(1, "aScales");
    TensorRef w = a.tensor(2, "w");
    TensorRef ws = a.tensor(3, "wScales");
    TensorRef off = a.tensor(4, "offsets");
    DType out = outDtype(a, 5);
    a.expectRank(*x, "a", 2);
    int64_t K = checkFp8Activation(a, *x, *xs);
    int64_t R = x->dim(0);
    a.expectDtype(*w, "w", {DType::f8e4m3});
    a.expectDtype(*ws, "wScales", {DType::f32});
    a.expectDtype(*off, "offsets", {DType::i32});
    a.expectRank(*w, "w", 3);
    a.expectDim(*w, "w", 2, K);
    int64_t E = w->dim(0), N = w->dim(1);
    if (E < 1 || N < 1) throwRange("groupedFp8Gemm: w must have at least 1 expert and 1 row but received shape ", w->shapeString());
    expectShapeVec(a, *ws, "wScales", {E, (N + 127) / 128, K / 128});
    expectShapeVec(a, *off, "offsets", {E + 1});
    a.expectSameDevice(*x, "a", *w, "w");
    a.expectSameDevice(*x, "a", *ws, "wScales");
    a.expectSameDevice(*x, "a", *off, "offsets");
    expectKernelFor(kGroupedFp8Gemm, x->device, "a");
    TensorRef y = newTensor(out, {R, N}, x->device);
    GroupedFp8GemmParams p;
    p.a = x->ptr<uint8_t>(); p.aScales = xs->ptr<float>(); p.w = w->ptr<uint8_t>(); p.wScales = ws->ptr<float>();
    p.offsets = off->ptr<int32_t>(); p.y = y->data(); p.yType = out; p.R = R; p.E = E; p.N = N; p.K = K;
    p.exactBlockSums = a.has(6) && a.boolean(6, "exactBlockSums");
    launch(kGroupedFp8Gemm, x->device, p, {x, xs, w, ws, off, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

/** maskedGroupedFp8Gemm(a [E, M, K], aScales [E, M, K/128], w [E, N, K], wScales [E, ceil(N/128), K/128], counts [E] i32, outDtype, exactBlockSums?) -> [E, M, N] */
static Napi::Value MaskedGroupedFp8Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "maskedGroupedFp8Gemm");
    TensorRef x = a.tensor(0, "a");
    TensorRef xs = a.tensor(1, "aScales");
    TensorRef w = a.tensor(2, "w");
    TensorRef ws = a.tensor(3, "wScales");
    TensorRef counts = a.tensor(4, "counts");
    DType out = outDtype(a, 5);
    a.expectRank(*x, "a", 3);
    int64_t K = checkFp8Activation(a, *x, *xs);
    int64_t E = x->dim(0), M = x->dim(1);
    a.expectDtype(*w, "w", {DType::f8e4m3});
    a.expectDtype(*ws, "wScales", {DType::f32});
    a.expectDtype(*counts, "counts", {DType::i32});
    a.expectRank(*w, "w", 3);
    if (w->dim(0) != E || w->dim(2) != K)
      throwRange("maskedGroupedFp8Gemm: w must have shape [", E, ", N, ", K, "] (the experts of a, and its K) but received ", w->shapeString());
    int64_t N = w->dim(1);
    if (E < 1 || N < 1) throwRange("maskedGroupedFp8Gemm: w must have at least 1 expert and 1 row but received shape ", w->shapeString());
    expectShapeVec(a, *ws, "wScales", {E, (N + 127) / 128, K / 128});
    expectShapeVec(a, *counts, "counts", {E});
    a.expectSameDevice(*x, "a", *w, "w");
    a.expectSameDevice(*x, "a", *ws, "wScales");
    a.expectSameDevice(*x, "a", *counts, "counts");
    expectKernelFor(kMaskedGroupedFp8Gemm, x->device, "a");
    TensorRef y = newTensor(out, {E, M, N}, x->device);
    MaskedGroupedFp8GemmParams p;
    p.a = x->ptr<uint8_t>(); p.aScales = xs->ptr<float>(); p.w = w->ptr<uint8_t>(); p.wScales = ws->ptr<float>();
    p.counts = counts->ptr<int32_t>(); p.y = y->data(); p.yType = out; p.E = E; p.M = M; p.N = N; p.K = K;
    p.exactBlockSums = a.has(6) && a.boolean(6, "exactBlockSums");
    launch(kMaskedGroupedFp8Gemm, x->device, p, {x, xs, w, ws, counts, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

/** gemm(x [.., K] f32|bf16, w [N, K] f32|bf16, outDtype) -> [.., N] */
static Napi::Value Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "gemm");
    TensorRef x = a.tensor(0, "x");
    TensorRef w = a.tensor(1, "w");
    DType out = outDtype(a, 2);
    a.expectDtype(*x, "x", {DType::f32, DType::bf16});
    a.expectDtype(*w, "w", {DType::f32, DType::bf16});
    a.expectMinRank(*x, "x", 1);
    int64_t K = x->dim(-1);
    a.expectRank(*w, "w", 2);
    a.expectDim(*w, "w", 1, K);
    int64_t N = w->dim(0);
    a.expectSameDevice(*x, "x", *w, "w");
    expectKernelFor(kGemm, x->device);
    TensorRef y = newTensor(out, withLast(*x, N), x->device);
    GemmParams p;
    p.x = x->data(); p.xType = x->dtype; p.w = w->data(); p.wType = w->dtype; p.y = y->data(); p.yType = out;
    p.M = K > 0 ? x->numel() / K : 0; p.N = N; p.K = K;
    if (K == 0) {
      p.M = 1;
      for (int i = 0; i + 1 < x->rank(); ++i) p.M *= x->shape[i];
    }
    launch(kGemm, x->device, p, {x, w, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

/** bmmHeads(x [T, H, A] f32|bf16, w [H, A, B] f32|bf16, outDtype) -> [T, H, B] */
static Napi::Value BmmHeads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "bmmHeads");
    TensorRef x = a.tensor(0, "x");
    TensorRef w = a.tensor(1, "w");
    DType out = outDtype(a, 2);
    a.expectDtype(*x, "x", {DType::f32, DType::bf16});
    a.expectDtype(*w, "w", {DType::f32, DType::bf16});
    a.expectRank(*x, "x", 3);
    a.expectRank(*w, "w", 3);
    int64_t T = x->dim(0), H = x->dim(1), A = x->dim(2);
    a.expectDim(*w, "w", 0, H);
    a.expectDim(*w, "w", 1, A);
    int64_t B = w->dim(2);
    a.expectSameDevice(*x, "x", *w, "w");
    expectKernelFor(kBmmHeads, x->device);
    TensorRef y = newTensor(out, {T, H, B}, x->device);
    BmmHeadsParams p;
    p.x = x->data(); p.xType = x->dtype; p.w = w->data(); p.wType = w->dtype; p.y = y->data(); p.yType = out;
    p.T = T; p.H = H; p.A = A; p.B = B;
    launch(kBmmHeads, x->device, p, {x, w, y});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

/** gemmSetBf16Dot(enabled) -> whether the AVX512-BF16 kernels are now used. Tests only; call while
 *  the CPU stream is idle. Not part of the public ops list. */
static Napi::Value GemmSetBf16Dot(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "gemmSetBf16Dot");
    return Napi::Boolean::New(info.Env(), cpu::setGemmBf16Dot(a.boolean(0, "enabled")));
  });
}

/** gemmSetBatchInvariant(enabled) -> enabled. Call while the CPU stream is idle. */
static Napi::Value GemmSetBatchInvariant(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "gemmSetBatchInvariant");
    return Napi::Boolean::New(info.Env(), cpu::setGemmBatchInvariant(a.boolean(0, "enabled")));
  });
}

/** fp8GemmPath(M, N, K) -> "wgmma" | "mma.sync": the CUDA kernel fp8Gemm runs for that shape
 *  (native/params/gemm.h's fp8GemmCudaPath), so tests and benchmarks can say which one they
 *  measured. Not part of the public ops list. */
static Napi::Value Fp8GemmPath(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "fp8GemmPath");
    const int64_t M = a.integer(0, "M", 0, int64_t(1) << 40), N = a.integer(1, "N", 0, int64_t(1) << 40), K = a.integer(2, "K", 0, int64_t(1) << 40);
    return Napi::String::New(info.Env(), fp8GemmCudaPath(M, N, K));
  });
}

/** groupedFp8GemmPath(R, E, N, K) and maskedGroupedFp8GemmPath(E, M, N, K): the same for the grouped
 *  layouts. Not part of the public ops list. */
template <const char* (*kRule)(int64_t, int64_t, int64_t, int64_t)>
static Napi::Value GroupedPath(const Napi::CallbackInfo& info, const char* op, const char* const (&names)[4]) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, op);
    int64_t v[4];
    for (int i = 0; i < 4; ++i) v[i] = a.integer(i, names[i], 0, int64_t(1) << 40);
    return Napi::String::New(info.Env(), kRule(v[0], v[1], v[2], v[3]));
  });
}
static Napi::Value GroupedFp8GemmPath(const Napi::CallbackInfo& info) {
  return GroupedPath<groupedFp8GemmCudaPath>(info, "groupedFp8GemmPath", {"R", "E", "N", "K"});
}
static Napi::Value MaskedGroupedFp8GemmPath(const Napi::CallbackInfo& info) {
  return GroupedPath<maskedGroupedFp8GemmCudaPath>(info, "maskedGroupedFp8GemmPath", {"E", "M", "N", "K"});
}

DSN_OP("fp8Gemm", Fp8Gemm);
DSN_OP("groupedFp8Gemm", GroupedFp8Gemm);
DSN_OP("maskedGroupedFp8Gemm", MaskedGroupedFp8Gemm);
DSN_OP("gemm", Gemm);
DSN_OP("bmmHeads", BmmHeads);
DSN_INTERNAL_OP("gemmSetBf16Dot", GemmSetBf16Dot);
DSN_INTERNAL_OP("fp8GemmPath", Fp8GemmPath);
DSN_INTERNAL_OP("groupedFp8GemmPath", GroupedFp8GemmPath);
DSN_INTERNAL_OP("maskedGroupedFp8GemmPath", MaskedGroupedFp8GemmPath);
DSN_INTERNAL_OP("gemmSetBatchInvariant", GemmSetBatchInvariant);

}  // namespace dsn
