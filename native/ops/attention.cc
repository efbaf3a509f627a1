// mlaPrefill / mlaDecode: MLA attention, the non-absorbed form over one sequence's keys and the
// absorbed form over the paged latent cache. See native/cpu/attention.h for the numerics.
#include "../cpu/attention.h"

#include <algorithm>

#include "../cpu/cache.h"
#include "../cpu/latent_cache.h"
#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/attention.cuh"
#endif

namespace dsn {

static const Kernels<MlaPrefillParams> kMlaPrefill{"mlaPrefill", cpu::mlaPrefill, DSN_CUDA_KERNEL(cuda::mlaPrefillLaunch)};
DSN_KERNELS(kMlaPrefill);
static const Kernels<MlaDecodeParams> kMlaDecode{"mlaDecode", cpu::mlaDecode, DSN_CUDA_KERNEL(cuda::mlaDecodeLaunch)};
DSN_KERNELS(kMlaDecode);

static void expectDtypeOf(const char* op, const TensorImpl& t, const char* name, const TensorImpl& ref, const char* refName) {
  if (t.dtype != ref.dtype)
    throwType(op, ": ", name, " must have the dtype of ", refName, " (", dtypeName(ref.dtype), ") but received ", dtypeName(t.dtype));
}

static void expectIndices(const OpArgs& a, const TensorImpl& idx, int64_t tokens) {
  a.expectDtype(idx, "indices", {DType::i32});
  a.expectRank(idx, "indices", 2);
  a.expectDim(idx, "indices", 0, tokens);
}

/** mlaPrefill(q [T, H, Dn + Dr], kv [S, H, Dn + Dv], kPe [S, Dr], qPos [T] i32, scale, vHeadDim, indices? [T, k] i32) -> [T, H, Dv] */
static Napi::Value MlaPrefill(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "mlaPrefill";
    OpArgs a(info, op);
    TensorRef q = a.tensor(0, "q");
    TensorRef kv = a.tensor(1, "kv");
    TensorRef kPe = a.tensor(2, "kPe");
    TensorRef qPos = a.tensor(3, "qPos");
    double scale = a.number(4, "scale");
    int64_t dv = a.integer(5, "vHeadDim", 1, int64_t(1) << 20);
    TensorRef idx = a.optTensor(6, "indices");
    bool bf16Scores = a.has(7) && a.boolean(7, "bf16Scores");
    a.expectDtype(*q, "q", {DType::bf16, DType::f32});
    a.expectRank(*q, "q", 3);
    int64_t T = q->dim(0), H = q->dim(1), dq = q->dim(2);
    expectDtypeOf(op, *kPe, "kPe", *q, "q");
    a.expectRank(*kPe, "kPe", 2);
    int64_t S = kPe->dim(0), dr = kPe->dim(1);
    if (dr > dq)
      throwRange("mlaPrefill: kPe's last dimension (Dr = ", dr, ") must be at most q's last dimension (Dn + Dr = ", dq, ") but received shapes ",
                 kPe->shapeString(), " and ", q->shapeString());
    int64_t dn = dq - dr;
    expectDtypeOf(op, *kv, "kv", *q, "q");
    a.expectShape(*kv, "kv", {S, H, dn + dv});
    a.expectDtype(*qPos, "qPos", {DType::i32});
    a.expectShape(*qPos, "qPos", {T});
    if (idx) expectIndices(a, *idx, T);
    a.expectSameDevice(*q, "q", *kv, "kv");
    a.expectSameDevice(*q, "q", *kPe, "kPe");
    a.expectSameDevice(*q, "q", *qPos, "qPos");
    if (idx) a.expectSameDevice(*q, "q", *idx, "indices");
    expectKernelFor(kMlaPrefill, q->device, "q");
    if (bf16Scores && q->dtype != DType::bf16) throwType(op, ": scoreDtype 'bf16' needs bf16 activations but q is ", dtypeName(q->dtype));
    TensorRef out = newTensor(q->dtype, {T, H, dv}, q->device);

    MlaPrefillParams p;
    p.type = q->dtype; p.q = q->data(); p.kv = kv->data(); p.kPe = kPe->data(); p.qPos = qPos->ptr<int32_t>();
    p.indices = idx ? idx->ptr<int32_t>() : nullptr; p.out = out->data();
    p.tokens = T; p.keys = S; p.heads = H; p.dn = dn; p.dr = dr; p.dv = dv; p.topk = idx ? idx->dim(1) : 0;
    p.scale = float(scale); p.bf16Scores = bf16Scores;
    launch(kMlaPrefill, q->device, p, {q, kv, kPe, qPos, idx, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

/** mlaDecode(qLatent [T, H, C], qPe [T, H, Dr], cache [numBlocks, 64, C + Dr] (qLatent's dtype) or
 *  [numBlocks, 64, rowBytes] u8 (the FP8 latent cache, native/cpu/latent_cache.h), blockTable [B, maxBlocks] i32,
 *  seqIdx [T] i32, qPos [T] i32, scale, indices? [T, k] i32) -> [T, H, C] */
static Napi::Value MlaDecode(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "mlaDecode";
    OpArgs a(info, op);
    TensorRef ql = a.tensor(0, "qLatent");
    TensorRef qpe = a.tensor(1, "qPe");
    TensorRef cache = a.tensor(2, "cache");
    TensorRef table = a.tensor(3, "blockTable");
    TensorRef seq = a.tensor(4, "seqIdx");
    TensorRef qPos = a.tensor(5, "qPos");
    double scale = a.number(6, "scale");
    TensorRef idx = a.optTensor(7, "indices");
    bool bf16Scores = a.has(8) && a.boolean(8, "bf16Scores");
    a.expectDtype(*ql, "qLatent", {DType::bf16, DType::f32});
    a.expectRank(*ql, "qLatent", 3);
    int64_t T = ql->dim(0), H = ql->dim(1), C = ql->dim(2);
    expectDtypeOf(op, *qpe, "qPe", *ql, "qLatent");
    a.expectRank(*qpe, "qPe", 3);
    a.expectDim(*qpe, "qPe", 0, T);
    a.expectDim(*qpe, "qPe", 1, H);
    int64_t dr = qpe->dim(2);
    const bool fp8Cache = cache->dtype == DType::u8;
    if (!fp8Cache) expectDtypeOf(op, *cache, "cache", *ql, "qLatent");
    a.expectRank(*cache, "cache", 3);
    a.expectDim(*cache, "cache", 1, cpu::kBlockTokens);
    if (fp8Cache && C % cpu::kLatentGroup != 0)
      throwRange(op, ": an FP8 latent cache needs the latent width C to be a multiple of ", cpu::kLatentGroup, " but received ", C);
    a.expectDim(*cache, "cache", 2, fp8Cache ? cpu::LatentCacheLayout{C, dr, ql->dtype}.rowBytes() : C + dr);
    a.expectDtype(*table, "blockTable", {DType::i32});
    a.expectRank(*table, "blockTable", 2);
    a.expectDtype(*seq, "seqIdx", {DType::i32});
    a.expectShape(*seq, "seqIdx", {T});
    a.expectDtype(*qPos, "qPos", {DType::i32});
    a.expectShape(*qPos, "qPos", {T});
    if (idx) expectIndices(a, *idx, T);
    a.expectSameDevice(*ql, "qLatent", *qpe, "qPe");
    a.expectSameDevice(*ql, "qLatent", *cache, "cache");
    a.expectSameDevice(*ql, "qLatent", *table, "blockTable");
    a.expectSameDevice(*ql, "qLatent", *seq, "seqIdx");
    a.expectSameDevice(*ql, "qLatent", *qPos, "qPos");
    if (idx) a.expectSameDevice(*ql, "qLatent", *idx, "indices");
    expectKernelFor(kMlaDecode, ql->device, "qLatent");
    if (bf16Scores && ql->dtype != DType::bf16) throwType(op, ": scoreDtype 'bf16' needs bf16 activations but qLatent is ", dtypeName(ql->dtype));
    TensorRef out = newTensor(ql->dtype, {T, H, C}, ql->device);

    MlaDecodeParams p;
    p.type = ql->dtype; p.qLatent = ql->data(); p.qPe = qpe->data(); p.cache = cache->data(); p.fp8Cache = fp8Cache;
    p.blockTable = table->ptr<int32_t>(); p.seqIdx = seq->ptr<int32_t>(); p.qPos = qPos->ptr<int32_t>();
    p.indices = idx ? idx->ptr<int32_t>() : nullptr; p.out = out->data();
    p.tokens = T; p.heads = H; p.latent = C; p.dr = dr;
    p.numBlocks = cache->dim(0); p.batch = table->dim(0); p.maxBlocks = table->dim(1); p.topk = idx ? idx->dim(1) : 0;
    p.scale = float(scale); p.bf16Scores = bf16Scores;
    TensorRef workspace;  // CUDA: split-KV statistics and partial rows (freed in stream order)
    if (ql->device.type == DeviceType::CUDA) {
      p.splits = mlaDecodeSplits(p);
      workspace = newTensor(DType::f32, {std::max<int64_t>(mlaDecodeWorkspaceFloats(p, p.splits), 1)}, ql->device);
      p.workspace = workspace->ptr<float>();
    }
    launch(kMlaDecode, ql->device, p, {ql, qpe, cache, table, seq, qPos, idx, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("mlaPrefill", MlaPrefill);
DSN_OP("mlaDecode", MlaDecode);

}  // namespace dsn
