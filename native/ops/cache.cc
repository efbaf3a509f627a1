// pagedWrite / pagedGather: rows in and out of a paged cache [numBlocks, 64, W] by slot
// (slot = block * 64 + row in block).
#include "../cpu/cache.h"
#include "../cpu/latent_cache.h"

#include "args.h"
#include "dispatch.h"
#ifdef DSN_WITH_CUDA
#include "../../cuda/cache.cuh"
#endif

namespace dsn {

static const Kernels<PagedWriteParams> kPagedWrite{"pagedWrite", cpu::pagedWrite, DSN_CUDA_KERNEL(cuda::pagedWriteLaunch)};
DSN_KERNELS(kPagedWrite);
static const Kernels<PagedGatherParams> kPagedGather{"pagedGather", cpu::pagedGather, DSN_CUDA_KERNEL(cuda::pagedGatherLaunch)};
DSN_KERNELS(kPagedGather);
static const Kernels<LatentCacheWriteParams> kLatentCacheWrite{"latentCacheWrite", cpu::latentCacheWrite, DSN_CUDA_KERNEL(cuda::latentCacheWriteLaunch)};
DSN_KERNELS(kLatentCacheWrite);
static const Kernels<LatentCacheReadParams> kLatentCacheRead{"latentCacheRead", cpu::latentCacheRead, DSN_CUDA_KERNEL(cuda::latentCacheReadLaunch)};
DSN_KERNELS(kLatentCacheRead);

static void checkCache(const OpArgs& a, const TensorImpl& cache) {
  a.expectRank(cache, "cache", 3);
  a.expectDim(cache, "cache", 1, cpu::kBlockTokens);
}

/** pagedWrite(cache [numBlocks, 64, W], rows [T, W], slots [T] i32) -> undefined (writes cache in place) */
static Napi::Value PagedWrite(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "pagedWrite");
    TensorRef cache = a.tensor(0, "cache");
    TensorRef rows = a.tensor(1, "rows");
    TensorRef slots = a.tensor(2, "slots");
    checkCache(a, *cache);
    a.expectWritable(*cache, "cache");
    if (rows->dtype != cache->dtype)
      throwType("pagedWrite: rows must have the dtype of cache (", dtypeName(cache->dtype), ") but received ", dtypeName(rows->dtype));
    a.expectRank(*rows, "rows", 2);
    a.expectDim(*rows, "rows", 1, cache->dim(2));
    a.expectDtype(*slots, "slots", {DType::i32});
    a.expectShape(*slots, "slots", {rows->dim(0)});
    a.expectSameDevice(*cache, "cache", *rows, "rows");
    a.expectSameDevice(*cache, "cache", *slots, "slots");
    expectKernelFor(kPagedWrite, cache->device, "cache");
    PagedWriteParams p;
    p.cache = cache->data(); p.rows = rows->data(); p.slots = slots->ptr<int32_t>();
    p.tokens = rows->dim(0); p.rowBytes = cache->dim(2) * int64_t(dtypeSize(cache->dtype));
    p.numSlots = cache->dim(0) * cpu::kBlockTokens;
    launch(kPagedWrite, cache->device, p, {cache, rows, slots});
    return info.Env().Undefined();
  });
}

/** pagedGather(cache [numBlocks, 64, W], slots [S] i32) -> [S, W] */
static Napi::Value PagedGather(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    OpArgs a(info, "pagedGather");
    TensorRef cache = a.tensor(0, "cache");
    TensorRef slots = a.tensor(1, "slots");
    checkCache(a, *cache);
    a.expectDtype(*slots, "slots", {DType::i32});
    a.expectRank(*slots, "slots", 1);
    a.expectSameDevice(*cache, "cache", *slots, "slots");
    expectKernelFor(kPagedGather, cache->device, "cache");
    TensorRef out = newTensor(cache->dtype, {slots->dim(0), cache->dim(2)}, cache->device);
    PagedGatherParams p;
    p.cache = cache->data(); p.slots = slots->ptr<int32_t>(); p.out = out->data();
    p.count = slots->dim(0); p.rowBytes = cache->dim(2) * int64_t(dtypeSize(cache->dtype));
    p.numSlots = cache->dim(0) * cpu::kBlockTokens;
    launch(kPagedGather, cache->device, p, {cache, slots, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

/** The layout of a latent cache [numBlocks, 64, rowBytes] u8 holding C latent dims and Dr RoPE dims of `type`. */
static LatentCacheLayout latentLayout(const char* op, const OpArgs& a, const TensorImpl& cache, int64_t C, int64_t dr, DType type) {
  a.expectDtype(cache, "cache", {DType::u8});
  checkCache(a, cache);
  if (C % cpu::kLatentGroup != 0)
    throwRange(op, ": the latent width C must be a multiple of ", cpu::kLatentGroup, " (FP8 groups of 1x128) but received ", C);
  LatentCacheLayout layout{C, dr, type};
  a.expectDim(cache, "cache", 2, layout.rowBytes());
  return layout;
}

/** latentCacheWrite(cache [numBlocks, 64, rowBytes] u8, latent [T, C], kPe [T, Dr], slots [T] i32, ue8m0) -> undefined */
static Napi::Value LatentCacheWrite(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "latentCacheWrite";
    OpArgs a(info, op);
    TensorRef cache = a.tensor(0, "cache");
    TensorRef latent = a.tensor(1, "latent");
    TensorRef kPe = a.tensor(2, "kPe");
    TensorRef slots = a.tensor(3, "slots");
    bool ue8m0 = a.boolean(4, "ue8m0");
    a.expectDtype(*latent, "latent", {DType::bf16, DType::f32});
    a.expectRank(*latent, "latent", 2);
    if (kPe->dtype != latent->dtype)
      throwType(op, ": kPe must have the dtype of latent (", dtypeName(latent->dtype), ") but received ", dtypeName(kPe->dtype));
    a.expectRank(*kPe, "kPe", 2);
    a.expectDim(*kPe, "kPe", 0, latent->dim(0));
    LatentCacheLayout layout = latentLayout(op, a, *cache, latent->dim(1), kPe->dim(1), latent->dtype);
    a.expectWritable(*cache, "cache");
    a.expectDtype(*slots, "slots", {DType::i32});
    a.expectShape(*slots, "slots", {latent->dim(0)});
    a.expectSameDevice(*cache, "cache", *latent, "latent");
    a.expectSameDevice(*cache, "cache", *kPe, "kPe");
    a.expectSameDevice(*cache, "cache", *slots, "slots");
    expectKernelFor(kLatentCacheWrite, cache->device, "cache");
    LatentCacheWriteParams p;
    p.layout = layout; p.cache = cache->ptr<uint8_t>(); p.numSlots = cache->dim(0) * cpu::kBlockTokens;
    p.latent = latent->data(); p.kPe = kPe->data(); p.slots = slots->ptr<int32_t>(); p.tokens = latent->dim(0); p.ue8m0 = ue8m0;
    launch(kLatentCacheWrite, cache->device, p, {cache, latent, kPe, slots});
    return info.Env().Undefined();
  });
}

/** latentCacheRead(cache [numBlocks, 64, rowBytes] u8, slots [S] i32, C, Dr, dtype) -> [S, C + Dr] of dtype */
static Napi::Value LatentCacheRead(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "latentCacheRead";
    OpArgs a(info, op);
    TensorRef cache = a.tensor(0, "cache");
    TensorRef slots = a.tensor(1, "slots");
    int64_t C = a.integer(2, "latentDim", 1, int64_t(1) << 20);
    int64_t dr = a.integer(3, "ropeDim", 0, int64_t(1) << 20);
    DType type = a.dtype(4, "dtype");
    if (type != DType::bf16 && type != DType::f32)
      throwType(op, ": dtype must be bf16 or f32 but received ", dtypeName(type));
    LatentCacheLayout layout = latentLayout(op, a, *cache, C, dr, type);
    a.expectDtype(*slots, "slots", {DType::i32});
    a.expectRank(*slots, "slots", 1);
    a.expectSameDevice(*cache, "cache", *slots, "slots");
    expectKernelFor(kLatentCacheRead, cache->device, "cache");
    TensorRef out = newTensor(type, {slots->dim(0), C + dr}, cache->device);
    LatentCacheReadParams p;
    p.layout = layout; p.cache = cache->ptr<uint8_t>(); p.numSlots = cache->dim(0) * cpu::kBlockTokens;
    p.slots = slots->ptr<int32_t>(); p.count = slots->dim(0); p.out = out->data();
    launch(kLatentCacheRead, cache->device, p, {cache, slots, out});
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("pagedWrite", PagedWrite);
DSN_OP("latentCacheWrite", LatentCacheWrite);
DSN_OP("latentCacheRead", LatentCacheRead);
DSN_OP("pagedGather", PagedGather);

}  // namespace dsn
