// embedding: token ids to rows of the embedding table (CPU: native/cpu/embedding.cc, CUDA: cuda/moe.cu).
#include "../cpu/embedding.h"

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/moe.cuh"
#endif

namespace dsn {

static const Kernels<EmbeddingParams> kEmbedding{"embedding", cpu::embedding, DSN_CUDA_KERNEL(cuda::embeddingLaunch)};
DSN_KERNELS(kEmbedding);

/** embedding(table [V, D], ids [T] i32, outDtype?) -> [T, D] of outDtype ?? table's dtype */
static Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "embedding");
    TensorRef table = a.tensor(0, "table", {DType::f32, DType::bf16}, {OpArgs::kAny, OpArgs::kAny});
    TensorRef ids = a.tensor(1, "ids", {DType::i32}, {OpArgs::kAny});
    a.expectSameDevice({{&table, "table"}, {&ids, "ids"}});
    expectKernelFor(kEmbedding, table->device, "table");
    DType outType = a.outDtype(2, {DType::f32, DType::bf16}, &table->dtype);
    TensorRef out = newTensor(outType, {ids->shape[0], table->shape[1]}, table->device);
    EmbeddingParams p;
    p.table = table->data(); p.tableType = table->dtype;
    p.vocab = table->shape[0]; p.dim = table->shape[1];
    p.ids = ids->ptr<int32_t>(); p.count = ids->shape[0];
    p.out = out->data(); p.outType = outType;
    launch(kEmbedding, table->device, p, {table, ids, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("embedding", Embedding);

}  // namespace dsn
