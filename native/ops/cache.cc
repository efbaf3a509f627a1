// pagedWrite / pagedGather: rows in and out of a paged cache [numBlocks, 64, W] by slot
// (slot = block * 64 + row in block).
#include "../cpu/cache.h"

#include "args.h"
#include "dispatch.h"

namespace dsn {

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
    a.requireCpu(*cache, "cache");
    cpu::PagedWriteParams p;
    p.cache = cache->data(); p.rows = rows->data(); p.slots = slots->ptr<int32_t>();
    p.tokens = rows->dim(0); p.rowBytes = cache->dim(2) * int64_t(dtypeSize(cache->dtype));
    p.numSlots = cache->dim(0) * cpu::kBlockTokens;
    enqueueCpu("pagedWrite", {cache, rows, slots}, [p](ThreadPool& pool) { cpu::pagedWrite(p, pool); });
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
    a.requireCpu(*cache, "cache");
    TensorRef out = newTensor(cache->dtype, {slots->dim(0), cache->dim(2)}, cache->device);
    cpu::PagedGatherParams p;
    p.cache = cache->data(); p.slots = slots->ptr<int32_t>(); p.out = out->data();
    p.count = slots->dim(0); p.rowBytes = cache->dim(2) * int64_t(dtypeSize(cache->dtype));
    p.numSlots = cache->dim(0) * cpu::kBlockTokens;
    enqueueCpu("pagedGather", {cache, slots, out}, [p](ThreadPool& pool) { cpu::pagedGather(p, pool); });
    return NativeTensor::Wrap(info.Env(), out);
  });
}

DSN_OP("pagedWrite", PagedWrite);
DSN_OP("pagedGather", PagedGather);

}  // namespace dsn
