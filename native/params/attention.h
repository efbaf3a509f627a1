// Params of the MLA attention family (mlaPrefill, mlaDecode): used by native/cpu/attention.cc and
// cuda/attention.cu alike. Plain data (pointers are device pointers of the op's device); g++ and nvcc
// both compile this header. Numerics: native/cpu/attention.h.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"

namespace dsn {

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

struct MlaDecodeParams {
  DType type = DType::bf16;            // dtype of qLatent, qPe, cache and out (bf16 | f32)
  const void* qLatent = nullptr;       // [T, H, C]
  const void* qPe = nullptr;           // [T, H, Dr]
  const void* cache = nullptr;         // [numBlocks, 64, C + Dr] elements of type: latent, then RoPE key;
                                       // or, with fp8Cache, [numBlocks, 64, rowBytes] bytes (native/cpu/latent_cache.h)
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

  // CUDA only (the CPU kernel ignores them): the keys of each query are split into `splits` ranges
  // run by different blocks (split-KV); `workspace` holds mlaDecodeWorkspaceFloats(splits) floats.
  int64_t splits = 1;
  float* workspace = nullptr;
};

/** Heads that share one block's key rows in the CUDA kernel (cuda/attention.cu). */
constexpr int64_t kMlaDecodeHeadsPerBlock = 16;

/** The CUDA kernel's split-KV count: enough blocks (queries × head groups × splits) for about two
 *  waves of an H100/H200 (132 SMs), and at least 64 key positions a split. */
inline int64_t mlaDecodeSplits(const MlaDecodeParams& p) {
  constexpr int64_t kTargetBlocks = 264, kMinKeysPerSplit = 64;
  const int64_t maxKeys = p.indices ? p.topk : p.maxBlocks * 64;
  const int64_t blocks = p.tokens * ((p.heads + kMlaDecodeHeadsPerBlock - 1) / kMlaDecodeHeadsPerBlock);
  if (blocks <= 0 || maxKeys <= kMinKeysPerSplit) return 1;
  int64_t splits = (kTargetBlocks + blocks - 1) / blocks;
  const int64_t most = (maxKeys + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  splits = splits < most ? splits : most;
  return splits > 1 ? splits : 1;
}

/** Floats of CUDA workspace for `splits`: per (query, head, split) the max and the sum of the split's
 *  scores, and (when splits > 1) its partial P·V row of C floats. */
inline int64_t mlaDecodeWorkspaceFloats(const MlaDecodeParams& p, int64_t splits) {
  const int64_t rows = p.tokens * p.heads * splits;
  return 2 * rows + (splits > 1 ? rows * p.latent : 0);
}

}  // namespace dsn
