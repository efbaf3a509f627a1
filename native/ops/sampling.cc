// argmax and sample: token ids from logits (CPU only so far).
#include "../cpu/sampling.h"

#include <limits>

#include "args.h"
#include "dispatch.h"

namespace dsn {

static TensorRef logitsArg(OpArgs& a) {
  TensorRef x = a.tensor(0, "logits");
  a.expectDtype(*x, "logits", {DType::f32});
  a.expectRank(*x, "logits", 2);
  if (x->shape[1] < 1) throwRange(a.op(), ": logits must have at least 1 column but received shape ", x->shapeString());
  if (x->shape[1] > std::numeric_limits<int32_t>::max())
    throwRange(a.op(), ": logits must have at most ", std::numeric_limits<int32_t>::max(), " columns but received shape ", x->shapeString());
  a.requireCpu(*x, "logits");
  return x;
}

/** argmax(logits [B, V] f32) -> [B] i32 */
static Napi::Value Argmax(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "argmax");
    TensorRef x = logitsArg(a);
    TensorRef out = newTensor(DType::i32, {x->shape[0]}, x->device);
    cpu::ArgmaxParams p;
    p.logits = x->ptr<float>(); p.rows = x->shape[0]; p.vocab = x->shape[1]; p.out = out->ptr<int32_t>();
    enqueueCpu("argmax", {x, out}, [p](ThreadPool& pool) { cpu::argmax(p, pool); });
    return NativeTensor::Wrap(info.Env(), out);
  });
}

/** sample(logits [B, V] f32, temperature, topK, topP, seed) -> [B] i32 */
static Napi::Value Sample(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "sample");
    TensorRef x = logitsArg(a);
    const double temperature = a.number(1, "temperature");
    if (temperature < 0) throwRange("sample: temperature must be >= 0 but received ", temperature);
    const int64_t topK = a.integer(2, "topK", 0, std::numeric_limits<int32_t>::max());
    const double topP = a.number(3, "topP");
    if (!(topP > 0 && topP <= 1)) throwRange("sample: topP must be in (0, 1] but received ", topP);
    constexpr int64_t kSafe = (int64_t(1) << 53) - 1;
    const int64_t seed = a.integer(4, "seed", -kSafe, kSafe);
    TensorRef out = newTensor(DType::i32, {x->shape[0]}, x->device);
    if (float(temperature) == 0.0f) {
      cpu::ArgmaxParams p;
      p.logits = x->ptr<float>(); p.rows = x->shape[0]; p.vocab = x->shape[1]; p.out = out->ptr<int32_t>();
      enqueueCpu("sample", {x, out}, [p](ThreadPool& pool) { cpu::argmax(p, pool); });
    } else {
      cpu::SampleParams p;
      p.logits = x->ptr<float>(); p.rows = x->shape[0]; p.vocab = x->shape[1];
      p.temperature = float(temperature); p.topK = topK; p.topP = float(topP); p.seed = uint64_t(seed);
      p.out = out->ptr<int32_t>();
      enqueueCpu("sample", {x, out}, [p](ThreadPool& pool) { cpu::sample(p, pool); });
    }
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("argmax", Argmax);
DSN_OP("sample", Sample);

}  // namespace dsn
