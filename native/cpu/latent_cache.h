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

#include "../params/cache.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The group size, the row layout and the params (native/params/cache.h) are the ones cuda/cache.cu takes.
using dsn::kLatentGroup;
using dsn::LatentCacheLayout;
using dsn::LatentCacheReadParams;
using dsn::LatentCacheWriteParams;

/** Quantises each latent row (actQuant, bit for bit) and writes it with its RoPE key to its slot,
 *  in order of t (a later row wins a repeated slot). */
void latentCacheWrite(const LatentCacheWriteParams& p, ThreadPool& pool);

/** out[s] = the dequantised latent of slot slots[s], then its RoPE key. */
void latentCacheRead(const LatentCacheReadParams& p, ThreadPool& pool);

/** One row: out[c] = type(f32(code[c]) · scale[c / 128]) for c < C, then the RoPE key copied
 *  (C + Dr elements of layout.ropeType). */
void latentRowDequant(const LatentCacheLayout& layout, const uint8_t* row, void* out);

}  // namespace dsn::cpu
