// Matrix products: fp8Gemm, groupedFp8Gemm (MoE experts), gemm (f32 / bf16) and bmmHeads (MLA's
// per-head products), and the FP8 weight sets that let fp8Gemm and groupedFp8Gemm read their weights
// where they lie (the checkpoint's mapped shards) instead of from a stacked copy (CPU only).
#include "../cpu/gemm.h"

#include <memory>
#include <string>
#include <vector>

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

/**
 * FP8 weights used in place (CPU): the tensors of a weight set, held so that their storage (a
 * checkpoint mapping) outlives every op that reads them, and their pointers as the kernel takes them.
 * Immutable once made; ops in flight share it.
 */
struct Fp8WeightSet {
  std::vector<TensorRef> held;           // every weight and scale tensor
  std::vector<const uint8_t*> w;         // [E·P]
  std::vector<const float*> scales;      // [E·P]
  std::vector<int64_t> rows;             // [P]
  cpu::Fp8WeightParts parts;             // points into the vectors above
};

/** What a JavaScript weight-set handle holds; `set` is null once released. */
struct Fp8WeightSetHandle {
  std::shared_ptr<const Fp8WeightSet> set;
};

// Marks the externals made by fp8WeightSet so that no other External is taken for one.
const napi_type_tag kWeightSetTag = {0x6473'6e5f'6670'3877ULL, 0x6569'6768'7473'6574ULL};

bool isWeightSet(const Napi::Value& v) {
  return v.IsExternal() && v.As<Napi::External<Fp8WeightSetHandle>>().CheckTypeTag(&kWeightSetTag);
}

/** The weight set of argument i; throws when it is not one or was released. */
std::shared_ptr<const Fp8WeightSet> weightSetArg(const OpArgs& a, const Napi::CallbackInfo& info, int i, const char* name) {
  Napi::Value v = info.Length() > size_t(i) ? info[i] : info.Env().Undefined();
  if (!isWeightSet(v)) throwType(a.op(), ": expected an FP8 weight set for ", name);
  std::shared_ptr<const Fp8WeightSet> set = v.As<Napi::External<Fp8WeightSetHandle>>().Data()->set;
  if (!set) throwError(a.op(), ": ", name, " is a released weight set and cannot be used");
  return set;
}

/** The tensors of a JS array argument (every element a live Tensor). */
std::vector<TensorRef> tensorArray(const OpArgs& a, const Napi::CallbackInfo& info, int i, const char* name) {
  Napi::Value v = info.Length() > size_t(i) ? info[i] : info.Env().Undefined();
  if (!v.IsArray()) throwType(a.op(), ": expected an array of Tensors for ", name);
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<TensorRef> out;
  out.reserve(arr.Length());
  for (uint32_t j = 0; j < arr.Length(); ++j) {
    Napi::Value t = arr[j];
    const std::string what = std::string(name) + "[" + std::to_string(j) + "]";
    if (!NativeTensor::FromValue(t, a.op(), what.c_str())) throwType(a.op(), ": expected a Tensor for ", what);
    out.push_back(NativeTensor::Unwrap(t.As<Napi::Object>())->ref());
  }
  return out;
}

/** Queues fp8GemmParts on the CPU stream, holding the activations, offsets, output and weight set. */
void launchParts(const char* op, const cpu::Fp8GemmPartsParams& p, std::vector<TensorRef> keep, std::shared_ptr<const Fp8WeightSet> set) {
  enqueueCpu(op, std::move(keep), [p, set = std::move(set)](ThreadPool& pool) { cpu::fp8GemmParts(p, pool); });
}

/** Checks a's K and device against a weight set (read on the CPU only). */
void checkSetOperands(const OpArgs& a, const TensorImpl& x, int64_t K, const Fp8WeightSet& set) {
  if (K != set.parts.K)
    throwRange(a.op(), ": the last dimension of a (K) must be the weight set's K (", set.parts.K, ") but received shape ", x.shapeString());
  if (x.device.type != DeviceType::CPU)
    throwType(a.op(), ": a is on ", x.device.name(), " but a weight set is read on the CPU only (pass stacked weights on a device)");
}

}  // namespace

/** fp8Gemm(a [.., K] f8e4m3, aScales [.., K/128] f32, w [N, K] f8e4m3, wScales [ceil(N/128), K/128] f32, outDtype, exactBlockSums?) -> [.., N] */
static Napi::Value Fp8Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "fp8Gemm");
    TensorRef x = a.tensor(0, "a");
    TensorRef xs = a.tensor(1, "aScales");
    if (info.Length() > 2 && isWeightSet(info[2])) {
      // fp8Gemm(a, aScales, weightSet (1 expert), outDtype, exactBlockSums?)
      std::shared_ptr<const Fp8WeightSet> set = weightSetArg(a, info, 2, "w");
      DType out = outDtype(a, 3);
      int64_t K = checkFp8Activation(a, *x, *xs);
      checkSetOperands(a, *x, K, *set);
      if (set->parts.E != 1)
        throwRange("fp8Gemm: w must be a weight set of 1 expert but received one of ", set->parts.E, " (groupedFp8Gemm runs those)");
      TensorRef y = newTensor(out, withLast(*x, set->parts.N), x->device);
      cpu::Fp8GemmPartsParams p;
      p.a = x->ptr<uint8_t>(); p.aScales = xs->ptr<float>(); p.w = set->parts; p.y = y->data(); p.yType = out; p.M = x->numel() / K;
      p.exactBlockSums = a.has(4) && a.boolean(4, "exactBlockSums");
      launchParts("fp8Gemm", p, {x, xs, y}, std::move(set));
      return NativeTensor::Wrap(info.Env(), y);
    }
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
    TensorRef workspace;  // CUDA, decode kernel split over K: the splits' partial sums (freed in stream order)
    if (x->device.type == DeviceType::CUDA && std::string(fp8GemmCudaPath(p.M, N, K)) == "swapAB") {
      p.splits = fp8GemmDecodeSplits(p.M, N, K);
      if (p.splits > 1) {
        workspace = newTensor(DType::f32, {p.splits * p.M * N}, x->device);
        p.workspace = workspace->ptr<float>();
      }
    }
    launch(kFp8Gemm, x->device, p, {x, xs, w, ws, y, workspace});
    return NativeTensor::Wrap(info.Env(), y);
  });
}

/** groupedFp8Gemm(a [R, K], aScales [R, K/128], w [E, N, K], wScales [E, ceil(N/128), K/128], offsets [E+1] i32, outDtype, exactBlockSums?) -> [R, N] */
static Napi::Value GroupedFp8Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "groupedFp8Gemm");
    TensorRef x = a.tensor(0, "a");
    TensorRef xs = a.tensor(1, "aScales");
    if (info.Length() > 2 && isWeightSet(info[2])) {
      // groupedFp8Gemm(a, aScales, weightSet, offsets, outDtype, exactBlockSums?)
      std::shared_ptr<const Fp8WeightSet> set = weightSetArg(a, info, 2, "w");
      TensorRef off = a.tensor(3, "offsets");
      DType out = outDtype(a, 4);
      a.expectRank(*x, "a", 2);
      int64_t K = checkFp8Activation(a, *x, *xs);
      checkSetOperands(a, *x, K, *set);
      a.expectDtype(*off, "offsets", {DType::i32});
      expectShapeVec(a, *off, "offsets", {set->parts.E + 1});
      a.expectSameDevice(*x, "a", *off, "offsets");
      TensorRef y = newTensor(out, {x->dim(0), set->parts.N}, x->device);
      cpu::Fp8GemmPartsParams p;
      p.a = x->ptr<uint8_t>(); p.aScales = xs->ptr<float>(); p.w = set->parts; p.offsets = off->ptr<int32_t>();
      p.y = y->data(); p.yType = out; p.M = x->dim(0);
      p.exactBlockSums = a.has(5) && a.boolean(5, "exactBlockSums");
      launchParts("groupedFp8Gemm", p, {x, xs, off, y}, std::move(set));
      return NativeTensor::Wrap(info.Env(), y);
    }
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

/**
 * fp8WeightSet(weights: Tensor[E·P], scales: Tensor[E·P], parts P) -> handle: the FP8 weights of E
 * experts, each the row-concatenation of P parts; weights[e·P + p] is part p of expert e, `[rows_p, K]`
 * f8e4m3 on the CPU, scales[e·P + p] its `[ceil(rows_p/128), K/128]` f32 block scales. Every expert's
 * part p has the same rows. The set holds the tensors (their storage stays alive while it or an op
 * reading it lives) and copies nothing.
 */
static Napi::Value Fp8WeightSetNew(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "fp8WeightSet");
    std::vector<TensorRef> weights = tensorArray(a, info, 0, "weights");
    std::vector<TensorRef> scales = tensorArray(a, info, 1, "scales");
    const int64_t P = a.integer(2, "parts", 1, 1 << 16);
    const int64_t count = int64_t(weights.size());
    if (count == 0 || count % P != 0)
      throwRange("fp8WeightSet: weights must hold a positive multiple of parts (", P, ") tensors but received ", count);
    if (int64_t(scales.size()) != count)
      throwRange("fp8WeightSet: scales must hold one tensor per weight (", count, ") but received ", scales.size());
    auto set = std::make_shared<Fp8WeightSet>();
    const int64_t K = weights[0]->rank() == 2 ? weights[0]->dim(1) : 0;
    if (K < 128 || K % 128 != 0)
      throwRange("fp8WeightSet: weights[0] must have shape [rows, K] with K a positive multiple of 128 but received ", weights[0]->shapeString());
    for (int64_t i = 0; i < count; ++i) {
      const int64_t e = i / P, part = i % P;
      const std::string wn = "weights[" + std::to_string(i) + "]", sn = "scales[" + std::to_string(i) + "]";
      const TensorImpl& w = *weights[size_t(i)];
      const TensorImpl& s = *scales[size_t(i)];
      a.expectDtype(w, wn.c_str(), {DType::f8e4m3});
      a.expectDtype(s, sn.c_str(), {DType::f32});
      if (w.device.type != DeviceType::CPU) throwType("fp8WeightSet: ", wn, " is on ", w.device.name(), " but a weight set holds CPU tensors only");
      if (s.device.type != DeviceType::CPU) throwType("fp8WeightSet: ", sn, " is on ", s.device.name(), " but a weight set holds CPU tensors only");
      a.expectRank(w, wn.c_str(), 2);
      if (e == 0) {
        if (w.dim(0) < 1) throwRange("fp8WeightSet: ", wn, " must have at least 1 row but received shape ", w.shapeString());
        set->rows.push_back(w.dim(0));
      }
      const int64_t rows = set->rows[size_t(part)];
      if (w.dim(0) != rows || w.dim(1) != K)
        throwRange("fp8WeightSet: ", wn, " (part ", part, " of expert ", e, ") must have shape [", rows, ", ", K, "] as expert 0's but received ", w.shapeString());
      expectShapeVec(a, s, sn.c_str(), {(rows + 127) / 128, K / 128});
      set->w.push_back(w.ptr<uint8_t>());
      set->scales.push_back(s.ptr<float>());
    }
    set->held = std::move(weights);
    set->held.insert(set->held.end(), scales.begin(), scales.end());
    cpu::Fp8WeightParts& parts = set->parts;
    parts.w = set->w.data(); parts.scales = set->scales.data(); parts.rows = set->rows.data();
    parts.E = count / P; parts.P = P; parts.K = K;
    for (int64_t r : set->rows) parts.N += r;
    Napi::Env env = info.Env();
    auto ext = Napi::External<Fp8WeightSetHandle>::New(env, new Fp8WeightSetHandle{std::move(set)},
                                                       [](Napi::Env, Fp8WeightSetHandle* h) { delete h; });
    ext.TypeTag(&kWeightSetTag);
    return ext;
  });
}

/** fp8WeightSetRelease(handle): drops the handle's tensors (ops already queued keep them until they
 *  have run); a later use of the handle throws. Safe twice. */
static Napi::Value Fp8WeightSetRelease(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "fp8WeightSetRelease");
    Napi::Value v = info.Length() > 0 ? info[0] : info.Env().Undefined();
    if (!isWeightSet(v)) throwType("fp8WeightSetRelease: expected an FP8 weight set for handle");
    v.As<Napi::External<Fp8WeightSetHandle>>().Data()->set.reset();
    return info.Env().Undefined();
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

/** fp8GemmPath(M, N, K) -> "wgmma" | "swapAB" | "mma.sync": the CUDA kernel fp8Gemm runs for that
 *  shape (native/params/gemm.h's fp8GemmCudaPath), so tests and benchmarks can say which one they
 *  measured. Not part of the public ops list. fp8GemmSplits(M, N, K): the swapAB kernel's K splits
 *  for that shape (fp8GemmDecodeSplits; 1 means no split). */
static Napi::Value Fp8GemmPath(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "fp8GemmPath");
    const int64_t M = a.integer(0, "M", 0, int64_t(1) << 40), N = a.integer(1, "N", 0, int64_t(1) << 40), K = a.integer(2, "K", 0, int64_t(1) << 40);
    return Napi::String::New(info.Env(), fp8GemmCudaPath(M, N, K));
  });
}

static Napi::Value Fp8GemmSplits(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "fp8GemmSplits");
    const int64_t M = a.integer(0, "M", 0, int64_t(1) << 40), N = a.integer(1, "N", 0, int64_t(1) << 40), K = a.integer(2, "K", 0, int64_t(1) << 40);
    return Napi::Number::New(info.Env(), double(std::string(fp8GemmCudaPath(M, N, K)) == "swapAB" ? fp8GemmDecodeSplits(M, N, K) : 1));
  });
}

/** fp8GemmBlockN(M, N, K): the Hopper kernel's tile width for that shape (fp8GemmHopperBlockN), 0
 *  when fp8Gemm runs another kernel. Not part of the public ops list. */
static Napi::Value Fp8GemmBlockN(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "fp8GemmBlockN");
    const int64_t M = a.integer(0, "M", 0, int64_t(1) << 40), N = a.integer(1, "N", 0, int64_t(1) << 40), K = a.integer(2, "K", 0, int64_t(1) << 40);
    return Napi::Number::New(info.Env(), double(std::string(fp8GemmCudaPath(M, N, K)) == "wgmma" ? fp8GemmHopperBlockN(M, N) : 0));
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
DSN_INTERNAL_OP("fp8WeightSet", Fp8WeightSetNew);
DSN_INTERNAL_OP("fp8WeightSetRelease", Fp8WeightSetRelease);
DSN_INTERNAL_OP("gemmSetBf16Dot", GemmSetBf16Dot);
DSN_INTERNAL_OP("fp8GemmPath", Fp8GemmPath);
DSN_INTERNAL_OP("fp8GemmSplits", Fp8GemmSplits);
DSN_INTERNAL_OP("fp8GemmBlockN", Fp8GemmBlockN);
DSN_INTERNAL_OP("groupedFp8GemmPath", GroupedFp8GemmPath);
DSN_INTERNAL_OP("maskedGroupedFp8GemmPath", MaskedGroupedFp8GemmPath);
DSN_INTERNAL_OP("gemmSetBatchInvariant", GemmSetBatchInvariant);

}  // namespace dsn
