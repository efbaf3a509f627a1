// Params of the paged cache family (pagedWrite, pagedGather, latentCacheWrite, latentCacheRead) and
// the layout of the FP8 latent cache: used by native/cpu/cache.cc, native/cpu/latent_cache.cc and
// cuda/cache.cu alike. Plain data (pointers are device pointers of the op's device); g++ and nvcc
// both compile this header. The latent cache row layout is described in native/cpu/latent_cache.h.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"

namespace dsn {

/** Tokens per cache block (the paged KV cache's page size); a slot is block * 64 + row in block. */
constexpr int64_t kBlockTokens = 64;

/** Elements per quantisation group of the latent (1×128, as actQuant). */
constexpr int64_t kLatentGroup = 128;

/** Where each part of a latent-cache row lies (host side: the launchers pass the offsets on). */
struct LatentCacheLayout {
  int64_t latent = 0;            // C, the kv_lora_rank (a multiple of 128)
  int64_t dr = 0;                // Dr, the RoPE key dims (qk_rope_head_dim)
  DType ropeType = DType::bf16;  // dtype of the RoPE key: the activation dtype (bf16 | f32)

  int64_t groups() const { return latent / kLatentGroup; }
  int64_t scalesOffset() const { return latent; }
  int64_t ropeOffset() const { return latent + 4 * groups(); }
  int64_t rowBytes() const { return ropeOffset() + dr * int64_t(dtypeSize(ropeType)); }
};

struct PagedWriteParams {
  void* cache = nullptr;           // [numBlocks, 64, W], rowBytes bytes a row
  const void* rows = nullptr;      // [T, W], same dtype
  const int32_t* slots = nullptr;  // [T] (checked: 0 <= slot < numSlots)
  int64_t tokens = 0;              // T
  int64_t rowBytes = 0;            // W * element size
  int64_t numSlots = 0;            // numBlocks * 64
};

struct PagedGatherParams {
  const void* cache = nullptr;     // [numBlocks, 64, W]
  const int32_t* slots = nullptr;  // [S] (checked: 0 <= slot < numSlots)
  void* out = nullptr;             // [S, W]
  int64_t count = 0;               // S
  int64_t rowBytes = 0;
  int64_t numSlots = 0;
};

struct LatentCacheWriteParams {
  LatentCacheLayout layout;
  uint8_t* cache = nullptr;        // [numSlots, rowBytes]
  int64_t numSlots = 0;            // numBlocks * 64
  const void* latent = nullptr;    // [T, C] in layout.ropeType (the activation dtype)
  const void* kPe = nullptr;       // [T, Dr] in layout.ropeType
  const int32_t* slots = nullptr;  // [T] (checked: 0 <= slot < numSlots)
  int64_t tokens = 0;              // T
  bool ue8m0 = false;              // group scales rounded up to powers of two (scale_fmt ue8m0)
};

struct LatentCacheReadParams {
  LatentCacheLayout layout;
  const uint8_t* cache = nullptr;  // [numSlots, rowBytes]
  int64_t numSlots = 0;
  const int32_t* slots = nullptr;  // [S] (checked: 0 <= slot < numSlots)
  int64_t count = 0;               // S
  void* out = nullptr;             // [S, C + Dr] in layout.ropeType
};

}  // namespace dsn
