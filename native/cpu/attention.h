// CPU MLA attention over one sequence (prefill, the non-absorbed MHA form) and over the paged latent
// cache (decode, the absorbed MQA form). Scores and softmax in f32 (or, with bf16Scores, the scores
// rounded to bf16 where the bf16 reference's einsums round them), probabilities rounded to the
// activation dtype before the product with V (as the reference's `scores.type_as(x)`), f32
// accumulation, output rounded to the activation dtype. A query that sees no key gets zeros.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct MlaPrefillParams {
  DType type = DType::bf16;         // dtype of q, kv, kPe and out (bf16 | f32)
  const void* q = nullptr;          // [T, H, Dn + Dr]: no-PE part, then RoPE part
  const void* kv = nullptr;         // [S, H, Dn + Dv]: k_nope, then v, per head
  const void* kPe = nullptr;        // [S, Dr]: RoPE key shared by the heads
  const int32_t* qPos = nullptr;    // [T]: query t sees keys s <= qPos[t] (checked: 0 <= qPos[t] < S)
  const int32_t* indices = nullptr; // optional [T, topk], -1 padded: only these keys are visible (checked: -1 <= i < S)
  void* out = nullptr;              // [T, H, Dv]
  int64_t tokens = 0, keys = 0, heads = 0;  // T, S, H
  int64_t dn = 0, dr = 0, dv = 0;
  int64_t topk = 0;                 // columns of indices
  float scale = 1;
  bool bf16Scores = false;          // round the scores as the bf16 reference does (attn::ScoreRounding::once); type bf16 only
};
void mlaPrefill(const MlaPrefillParams& p, ThreadPool& pool);

struct MlaDecodeParams {
  DType type = DType::bf16;            // dtype of qLatent, qPe, cache and out (bf16 | f32)
  const void* qLatent = nullptr;       // [T, H, C]
  const void* qPe = nullptr;           // [T, H, Dr]
  const void* cache = nullptr;         // [numBlocks, 64, C + Dr] elements of type: latent, then RoPE key;
                                       // or, with fp8Cache, [numBlocks, 64, rowBytes] bytes (latent_cache.h)
  bool fp8Cache = false;               // the cache holds FP8 latent rows (FlashMLA's format), dequantised
                                       // to `type` as they are read: the same scores as a cache of those values
  const int32_t* blockTable = nullptr; // [B, maxBlocks] (block ids checked when used: 0 <= id < numBlocks)
  const int32_t* seqIdx = nullptr;     // [T]: row of blockTable (checked: 0 <= seqIdx < B)
  const int32_t* qPos = nullptr;       // [T]: keys 0..qPos[t] visible (checked: 0 <= qPos < maxBlocks * 64)
  const int32_t* indices = nullptr;    // optional [T, topk], -1 padded logical key positions (checked: -1 <= i < maxBlocks * 64)
  void* out = nullptr;                 // [T, H, C]
  int64_t tokens = 0, heads = 0, latent = 0, dr = 0;  // T, H, C, Dr
  int64_t numBlocks = 0, batch = 0, maxBlocks = 0;
  int64_t topk = 0;
  float scale = 1;
  bool bf16Scores = false;             // round the scores as the bf16 reference does (attn::ScoreRounding::perSegment); type bf16 only
};
void mlaDecode(const MlaDecodeParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
