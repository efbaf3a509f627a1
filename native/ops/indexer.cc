// indexerScores / topK: the lightning indexer's FP8 scores over the paged indexer-key cache and
// the selection of each query's top-k keys.
#include "../cpu/indexer.h"

#include "../cpu/cache.h"
#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/indexer.cuh"
#include "../../cuda/topk.cuh"
#endif

namespace dsn {

static const Kernels<IndexerScoresParams> kIndexerScores{"indexerScores", cpu::indexerScores, DSN_CUDA_KERNEL(cuda::indexerScoresLaunch)};
DSN_KERNELS(kIndexerScores);
static const Kernels<TopKParams> kTopK{"topK", cpu::topK, DSN_CUDA_KERNEL(cuda::topKLaunch)};
DSN_KERNELS(kTopK);

/** indexerScores(q [T, Hi, Di] f8e4m3, weights [T, Hi] f32, kCache [numBlocks, 64, Di] f8e4m3,
 *  kScales [numBlocks, 64] f32, blockTable [B, maxBlocks] i32, seqIdx [T] i32, qPos [T] i32, maxKeys) -> [T, maxKeys] f32 */
static Napi::Value IndexerScores(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "indexerScores");
    constexpr int64_t kAny = OpArgs::kAny;
    TensorRef q = a.tensor(0, "q", {DType::f8e4m3}, {kAny, kAny, kAny});
    int64_t T = q->dim(0), H = q->dim(1), D = q->dim(2);
    TensorRef w = a.tensor(1, "weights", {DType::f32}, {T, H});
    TensorRef k = a.tensor(2, "kCache", {DType::f8e4m3}, {kAny, cpu::kBlockTokens, D});
    TensorRef ks = a.tensor(3, "kScales", {DType::f32}, {k->dim(0), cpu::kBlockTokens});
    TensorRef table = a.tensor(4, "blockTable", {DType::i32}, {kAny, kAny});
    TensorRef seq = a.tensor(5, "seqIdx", {DType::i32}, {T});
    TensorRef qPos = a.tensor(6, "qPos", {DType::i32}, {T});
    int64_t maxKeys = a.integer(7, "maxKeys", 1, int64_t(1) << 31);
    a.expectSameDevice({{&q, "q"}, {&w, "weights"}, {&k, "kCache"}, {&ks, "kScales"}, {&table, "blockTable"}, {&seq, "seqIdx"}, {&qPos, "qPos"}});
    expectKernelFor(kIndexerScores, q->device, "q");
    TensorRef out = newTensor(DType::f32, {T, maxKeys}, q->device);

    IndexerScoresParams p;
    p.q = q->ptr<uint8_t>(); p.weights = w->ptr<float>(); p.kCache = k->ptr<uint8_t>(); p.kScales = ks->ptr<float>();
    p.blockTable = table->ptr<int32_t>(); p.seqIdx = seq->ptr<int32_t>(); p.qPos = qPos->ptr<int32_t>();
    p.scores = out->ptr<float>();
    p.tokens = T; p.heads = H; p.dim = D;
    p.numBlocks = k->dim(0); p.batch = table->dim(0); p.maxBlocks = table->dim(1); p.maxKeys = maxKeys;
    launch(kIndexerScores, q->device, p, {q, w, k, ks, table, seq, qPos, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

/** topK(scores [T, S] f32, k, lengths? [T] i32) -> [T, k] i32. Among ties at the k-th largest score the CPU
 *  chooses as torch.topk does and CUDA chooses the lowest indices (cuda/topk.cuh). */
static Napi::Value TopK(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "topK");
    TensorRef scores = a.tensor(0, "scores", {DType::f32}, {OpArgs::kAny, OpArgs::kAny});
    int64_t k = a.integer(1, "k", 1, (int64_t(1) << 31) - 1);
    TensorRef len = a.optTensor(2, "lengths", {DType::i32}, {scores->dim(0)});
    a.expectSameDevice({{&scores, "scores"}, {&len, "lengths"}});
    expectKernelFor(kTopK, scores->device, "scores");
    TensorRef out = newTensor(DType::i32, {scores->dim(0), k}, scores->device);
    TopKParams p;
    p.scores = scores->ptr<float>(); p.lengths = len ? len->ptr<int32_t>() : nullptr; p.indices = out->ptr<int32_t>();
    p.rows = scores->dim(0); p.cols = scores->dim(1); p.k = k;
    launch(kTopK, scores->device, p, {scores, len, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("indexerScores", IndexerScores);
DSN_OP("topK", TopK);

}  // namespace dsn
