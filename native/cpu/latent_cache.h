// The MLA latent cache as DeepSeek deploys it (FlashMLA's FP8 KV format; the corrected V3.2 reference
// simulates it by an act_quant / dequantise round trip before caching). One row of bytes per token
// and layer:
//
//   bytes [0, C)                 the normalised latent, C E4M3 codes quantised per 1×128 group
//                                exactly as actQuant does it (same amax floor, scale, ue8m0 option)
//   bytes [C, C + 4·C/128)       the C/128 group scales, f32
//   bytes [.., + Dr·size(rope))  the RoPE key, Dr values in the activation dtype
//
// DeepSeek-V3.2 (C = 512, Dr = 64, bf16): 512 + 16 + 128 = 656 bytes a token, against 1152 for a
// bf16 latent. With f32 activations (the accuracy yardstick) the RoPE key stays f32 (784 bytes), so
// that mode still computes the reference's f32 function. Reading a row gives
// f32(code) · scale rounded once to the activation dtype: the reference's dequantised latent.
// Plain data only: the CPU kernels and the CUDA kernels read the same layout.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

/** Elements per quantisation group of the latent (1×128, as actQuant). */
constexpr int64_t kLatentGroup = 128;

/** Where each part of a latent-cache row lies. */
struct LatentCacheLayout {
  int64_t latent = 0;            // C, the kv_lora_rank (a multiple of 128)
  int64_t dr = 0;                // Dr, the RoPE key dims (qk_rope_head_dim)
  DType ropeType = DType::bf16;  // dtype of the RoPE key: the activation dtype (bf16 | f32)

  int64_t groups() const { return latent / kLatentGroup; }
  int64_t scalesOffset() const { return latent; }
  int64_t ropeOffset() const { return latent + 4 * groups(); }
  int64_t rowBytes() const { return ropeOffset() + dr * int64_t(dtypeSize(ropeType)); }
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
/** Quantises each latent row (actQuant, bit for bit) and writes it with its RoPE key to its slot,
 *  in order of t (a later row wins a repeated slot). */
void latentCacheWrite(const LatentCacheWriteParams& p, ThreadPool& pool);

struct LatentCacheReadParams {
  LatentCacheLayout layout;
  const uint8_t* cache = nullptr;  // [numSlots, rowBytes]
  int64_t numSlots = 0;
  const int32_t* slots = nullptr;  // [S] (checked: 0 <= slot < numSlots)
  int64_t count = 0;               // S
  void* out = nullptr;             // [S, C + Dr] in layout.ropeType
};
/** out[s] = the dequantised latent of slot slots[s], then its RoPE key. */
void latentCacheRead(const LatentCacheReadParams& p, ThreadPool& pool);

/** One row: out[c] = type(f32(code[c]) · scale[c / 128]) for c < C, then the RoPE key copied
 *  (C + Dr elements of layout.ropeType). */
void latentRowDequant(const LatentCacheLayout& layout, const uint8_t* row, void* out);

}  // namespace dsn::cpu
