// embedding: token ids to rows of the embedding table (CPU only so far).
#include "../cpu/embedding.h"

#include "args.h"
#include "dispatch.h"

namespace dsn {

/** embedding(table [V, D], ids [T] i32, outDtype?) -> [T, D] of outDtype ?? table's dtype */
static Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "embedding");
    TensorRef table = a.tensor(0, "table", {DType::f32, DType::bf16}, {OpArgs::kAny, OpArgs::kAny});
    TensorRef ids = a.tensor(1, "ids", {DType::i32}, {OpArgs::kAny});
    a.expectSameDevice({{&table, "table"}, {&ids, "ids"}});
    a.requireCpu(*table, "table");
    DType outType = a.outDtype(2, {DType::f32, DType::bf16}, &table->dtype);
    TensorRef out = newTensor(outType, {ids->shape[0], table->shape[1]}, table->device);
    cpu::EmbeddingParams p;
    p.table = table->data(); p.tableType = table->dtype;
    p.vocab = table->shape[0]; p.dim = table->shape[1];
    p.ids = ids->ptr<int32_t>(); p.count = ids->shape[0];
    p.out = out->data(); p.outType = outType;
    enqueueCpu("embedding", {table, ids, out}, [p](ThreadPool& pool) { cpu::embedding(p, pool); });
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("embedding", Embedding);

}  // namespace dsn
