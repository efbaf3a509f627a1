// argmax, sample and sampleRows: token ids (and log-probabilities) from logits, on the CPU or a CUDA device.
#include "../cpu/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <tuple>
#include <vector>

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/sampling.cuh"
#endif

namespace dsn {

static const Kernels<ArgmaxParams> kArgmax{"argmax", cpu::argmax, DSN_CUDA_KERNEL(cuda::argmaxLaunch)};
DSN_KERNELS(kArgmax);
// sample with temperature 0 is the argmax, reported under sample's name.
static const Kernels<ArgmaxParams> kSampleGreedy{"sample", cpu::argmax, DSN_CUDA_KERNEL(cuda::argmaxLaunch)};
static const Kernels<SampleParams> kSample{"sample", cpu::sample, DSN_CUDA_KERNEL(cuda::sampleLaunch)};
DSN_KERNELS(kSample);
static const Kernels<SampleRowsParams> kSampleRows{"sampleRows", cpu::sampleRows, DSN_CUDA_KERNEL(cuda::sampleRowsLaunch)};
DSN_KERNELS(kSampleRows);

/** A device copy of `bytes` of host data, queued in stream order (staged, so the host may reuse
 *  `src` at once). */
static TensorRef deviceCopy(const void* src, size_t bytes, const DeviceId& device) {
  TensorRef t = newTensor(DType::u8, {int64_t(bytes > 0 ? bytes : 1)}, device);
  if (bytes) t->backend().copyFromHost(t->data(), src, bytes);
  return t;
}

static TensorRef logitsArg(OpArgs& a) {
  TensorRef x = a.tensor(0, "logits");
  a.expectDtype(*x, "logits", {DType::f32});
  a.expectRank(*x, "logits", 2);
  if (x->shape[1] < 1) throwRange(a.op(), ": logits must have at least 1 column but received shape ", x->shapeString());
  if (x->shape[1] > std::numeric_limits<int32_t>::max())
    throwRange(a.op(), ": logits must have at most ", std::numeric_limits<int32_t>::max(), " columns but received shape ", x->shapeString());
  return x;
}

/** argmax(logits [B, V] f32) -> [B] i32 */
static Napi::Value Argmax(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "argmax");
    TensorRef x = logitsArg(a);
    expectKernelFor(kArgmax, x->device, "logits");
    TensorRef out = newTensor(DType::i32, {x->shape[0]}, x->device);
    ArgmaxParams p;
    p.logits = x->ptr<float>(); p.rows = x->shape[0]; p.vocab = x->shape[1]; p.out = out->ptr<int32_t>();
    launch(kArgmax, x->device, p, {x, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

/** sample(logits [B, V] f32, temperature, topK, topP, seed) -> [B] i32 */
static Napi::Value Sample(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "sample");
    TensorRef x = logitsArg(a);
    expectKernelFor(kSample, x->device, "logits");
    const double temperature = a.number(1, "temperature");
    if (temperature < 0) throwRange("sample: temperature must be >= 0 but received ", temperature);
    const int64_t topK = a.integer(2, "topK", 0, std::numeric_limits<int32_t>::max());
    const double topP = a.number(3, "topP");
    if (!(topP > 0 && topP <= 1)) throwRange("sample: topP must be in (0, 1] but received ", topP);
    constexpr int64_t kSafe = (int64_t(1) << 53) - 1;
    const int64_t seed = a.integer(4, "seed", -kSafe, kSafe);
    TensorRef out = newTensor(DType::i32, {x->shape[0]}, x->device);
    if (float(temperature) == 0.0f) {
      ArgmaxParams p;
      p.logits = x->ptr<float>(); p.rows = x->shape[0]; p.vocab = x->shape[1]; p.out = out->ptr<int32_t>();
      launch(kSampleGreedy, x->device, p, {x, out});
    } else {
      SampleParams p;
      p.logits = x->ptr<float>(); p.rows = x->shape[0]; p.vocab = x->shape[1];
      p.temperature = float(temperature); p.topK = topK; p.topP = float(topP); p.seed = uint64_t(seed);
      p.out = out->ptr<int32_t>();
      TensorRef workspace;  // CUDA: the rows' softmax weights (freed in stream order)
      if (x->device.type == DeviceType::CUDA) {
        workspace = newTensor(DType::f32, {std::max<int64_t>(p.rows * p.vocab, 1)}, x->device);
        p.workspace = workspace->ptr<float>();
      }
      launch(kSample, x->device, p, {x, out});
    }
    return NativeTensor::Wrap(info.Env(), out);
  });
}

template <typename T>
static std::vector<T> typedArg(const Napi::CallbackInfo& info, OpArgs& a, int i, const char* name, napi_typedarray_type type, const char* typeName, size_t n) {
  Napi::Value v = a.has(i) ? info[size_t(i)] : a.env().Undefined();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throwType(a.op(), ": expected a ", typeName, " for ", name);
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  if (n != size_t(-1) && arr.ElementLength() != n)
    throwRange(a.op(), ": ", name, " must have ", n, " entries but has ", arr.ElementLength());
  return std::vector<T>(arr.Data(), arr.Data() + arr.ElementLength());
}

/**
 * sampleRows(logits [B, V] f32, params Float32Array [B·7] (temperature, topK, topP, minP, presence,
 * frequency, repetition), seeds Float64Array [B·2] (seed, step), historyOffsets Int32Array [B+1],
 * historyIds Int32Array, historyCounts Int32Array, topLogprobs (−1: none)) -> [ids [B] i32,
 * logprobs [B, 1+N] f32?, topIds [B, N] i32?]
 */
static Napi::Value SampleRows(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "sampleRows");
    TensorRef x = logitsArg(a);
    expectKernelFor(kSampleRows, x->device, "logits");
    const int64_t B = x->shape[0], V = x->shape[1];
    const auto params = typedArg<float>(info, a, 1, "params", napi_float32_array, "Float32Array", size_t(B * 7));
    const auto seeds = typedArg<double>(info, a, 2, "seeds", napi_float64_array, "Float64Array", size_t(B * 2));
    const auto offsets = typedArg<int32_t>(info, a, 3, "historyOffsets", napi_int32_array, "Int32Array", size_t(B + 1));
    const auto ids = typedArg<int32_t>(info, a, 4, "historyIds", napi_int32_array, "Int32Array", size_t(-1));
    const auto counts = typedArg<int32_t>(info, a, 5, "historyCounts", napi_int32_array, "Int32Array", ids.size());
    const int64_t topN = a.integer(6, "topLogprobs", -1, 1024);
    if (offsets[0] != 0 || size_t(offsets[size_t(B)]) != ids.size()) throwRange("sampleRows: historyOffsets must run from 0 to historyIds.length");
    for (int64_t r = 0; r < B; ++r)
      if (offsets[size_t(r + 1)] < offsets[size_t(r)]) throwRange("sampleRows: historyOffsets must not decrease");
    for (size_t k = 0; k < ids.size(); ++k)
      if (ids[k] < 0 || ids[k] >= V) throwRange("sampleRows: historyIds[", k, "] is ", ids[k], ", outside [0, ", V, ")");
    if (!ids.empty()) {
      // Each id at most once per row (the penalties of an id are applied once, by one thread on CUDA).
      std::vector<int32_t> lastRow(static_cast<size_t>(V), -1);
      for (int64_t r = 0; r < B; ++r)
        for (int32_t k = offsets[size_t(r)]; k < offsets[size_t(r + 1)]; ++k) {
          if (lastRow[size_t(ids[size_t(k)])] == r) throwRange("sampleRows: historyIds[", k, "] repeats id ", ids[size_t(k)], " of row ", r);
          lastRow[size_t(ids[size_t(k)])] = r;
        }
    }
    std::vector<RowSampling> rows(static_cast<size_t>(B));
    constexpr double kSafe = double((int64_t(1) << 53) - 1);
    for (int64_t r = 0; r < B; ++r) {
      const float* q = params.data() + r * 7;
      RowSampling& s = rows[size_t(r)];
      s.temperature = q[0];
      if (!(s.temperature >= 0) || !std::isfinite(s.temperature)) throwRange("sampleRows: row ", r, ": temperature must be >= 0 but is ", s.temperature);
      if (!(q[1] >= 0) || q[1] != std::floor(q[1])) throwRange("sampleRows: row ", r, ": topK must be an integer >= 0 but is ", q[1]);
      s.topK = int64_t(q[1]);
      s.topP = q[2];
      if (!(s.topP > 0 && s.topP <= 1)) throwRange("sampleRows: row ", r, ": topP must be in (0, 1] but is ", s.topP);
      s.minP = q[3];
      if (!(s.minP >= 0 && s.minP <= 1)) throwRange("sampleRows: row ", r, ": minP must be in [0, 1] but is ", s.minP);
      s.presencePenalty = q[4];
      s.frequencyPenalty = q[5];
      s.repetitionPenalty = q[6];
      if (!std::isfinite(q[4]) || !std::isfinite(q[5])) throwRange("sampleRows: row ", r, ": penalties must be finite");
      if (!(s.repetitionPenalty > 0) || !std::isfinite(s.repetitionPenalty)) throwRange("sampleRows: row ", r, ": repetitionPenalty must be > 0 but is ", s.repetitionPenalty);
      const double seed = seeds[size_t(2 * r)], step = seeds[size_t(2 * r + 1)];
      if (!(std::fabs(seed) <= kSafe) || seed != std::floor(seed) || !(step >= 0 && step <= kSafe) || step != std::floor(step))
        throwRange("sampleRows: row ", r, ": seed and step must be safe integers (step >= 0)");
      s.seed = uint64_t(int64_t(seed));
      s.step = uint64_t(step);
    }
    TensorRef out = newTensor(DType::i32, {B}, x->device);
    TensorRef lp = topN >= 0 ? newTensor(DType::f32, {B, 1 + topN}, x->device) : nullptr;
    TensorRef top = topN >= 0 ? newTensor(DType::i32, {B, topN}, x->device) : nullptr;
    SampleRowsParams p;
    p.logits = x->ptr<float>(); p.rows = B; p.vocab = V;
    p.out = out->ptr<int32_t>();
    p.topLogprobs = topN < 0 ? 0 : topN;
    p.logprobs = lp ? lp->ptr<float>() : nullptr;
    p.topIds = top ? top->ptr<int32_t>() : nullptr;
    if (x->device.type == DeviceType::CUDA) {
      // The settings and histories go to the device in stream order; the rows' scratch stays there.
      TensorRef rowsD = deviceCopy(rows.data(), rows.size() * sizeof(RowSampling), x->device);
      TensorRef offsetsD = deviceCopy(offsets.data(), offsets.size() * sizeof(int32_t), x->device);
      TensorRef idsD = deviceCopy(ids.data(), ids.size() * sizeof(int32_t), x->device);
      TensorRef countsD = deviceCopy(counts.data(), counts.size() * sizeof(int32_t), x->device);
      TensorRef workspace = newTensor(DType::f32, {std::max<int64_t>(2 * B * V, 1)}, x->device);
      p.params = rowsD->ptr<RowSampling>();
      p.historyOffsets = offsetsD->ptr<int32_t>();
      p.historyIds = idsD->ptr<int32_t>();
      p.historyCounts = countsD->ptr<int32_t>();
      p.workspace = workspace->ptr<float>();
      launch(kSampleRows, x->device, p, {});
    } else {
      auto hold = std::make_shared<std::tuple<std::vector<RowSampling>, std::vector<int32_t>, std::vector<int32_t>, std::vector<int32_t>>>(
          std::move(rows), std::move(offsets), std::vector<int32_t>(ids), std::vector<int32_t>(counts));
      p.params = std::get<0>(*hold).data();
      p.historyOffsets = std::get<1>(*hold).data();
      p.historyIds = std::get<2>(*hold).data();
      p.historyCounts = std::get<3>(*hold).data();
      std::vector<TensorRef> keep{x, out};
      if (lp) keep.push_back(lp), keep.push_back(top);
      enqueueCpu("sampleRows", keep, [p, hold](ThreadPool& pool) { cpu::sampleRows(p, pool); });
    }
    if (!lp) return wrapAll(info.Env(), {out});
    return wrapAll(info.Env(), {out, lp, top});
  });
}

DSN_OP("argmax", Argmax);
DSN_OP("sampleRows", SampleRows);
DSN_OP("sample", Sample);

}  // namespace dsn
