// Params of the GEMM family (fp8Gemm, groupedFp8Gemm, gemm, bmmHeads): used by native/cpu/gemm*.cc,
// cuda/sm90_fp8_gemm.cu and cuda/gemm.cu alike. Plain data; g++ and nvcc both compile this header.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"

namespace dsn {

struct Fp8GemmParams {
  const uint8_t* a = nullptr;        // [M, K] f8e4m3
  const float* aScales = nullptr;    // [M, K/128] f32
  const uint8_t* w = nullptr;        // [N, K] f8e4m3
  const float* wScales = nullptr;    // [ceil(N/128), K/128] f32
  void* y = nullptr;                 // [M, N], dtype yType (f32 | bf16)
  DType yType = DType::bf16;
  int64_t M = 0, N = 0, K = 0;       // K % 128 == 0
  bool exactBlockSums = false;       // see native/cpu/gemm_engine.h (CPU only: the CUDA kernels sum each 128-block on tensor cores)
  // CUDA only (the CPU kernel ignores them): the "swapAB" decode kernel splits K into `splits`
  // ranges run by different blocks; when splits > 1 each writes its partial sums to `workspace`
  // ([splits, M, N] f32, fp8GemmDecodeSplits), and a second kernel adds them in split order.
  int64_t splits = 1;
  float* workspace = nullptr;
};

/** Which CUDA kernel fp8Gemm runs for a [M, K] x [N, K]ᵀ product:
 *  - "wgmma" when M > 64 (prefill): the Hopper pipeline of cuda/sm90_fp8_gemm.cu (TMA, mbarriers,
 *    warp-specialised wgmma, 128 x 128 tiles);
 *  - "swapAB" when 1 ≤ M ≤ 64 (decode, where W is the traffic): W's rows take the 16-row side of
 *    mma.sync m16n8k32 and the M activation rows its n = 8 side (tiles of 64 W rows x 8·⌈M/8⌉
 *    rows), a 4-stage cp.async ring, and K split across blocks (fp8GemmDecodeSplits) when the
 *    ⌈N/64⌉ tiles cannot fill the SMs, reduced in a fixed order (deterministic);
 *  - "mma.sync" otherwise (M = 0).
 *  Both need 16-byte aligned operands (tensors the ops allocate always are) and fall back to the
 *  64 x 64 mma.sync kernel without them. */
inline const char* fp8GemmCudaPath(int64_t M, int64_t N, int64_t K) {
  if (N < 1 || K < 128 || K % 128 != 0) return "mma.sync";
  return M > 64 ? "wgmma" : M >= 1 ? "swapAB" : "mma.sync";
}

/** The Hopper kernel's tile width for fp8Gemm [M, K] x [N, K]ᵀ (M > 64): 64 or 128 columns, whichever
 *  finishes in less time on 132 SMs, counting a tile's time as its width: ⌈tiles / 132⌉ · BLOCK_N
 *  with tiles = ⌈M/128⌉ · ⌈N/BLOCK_N⌉ (a persistent block takes its tiles one after another), ties to
 *  128 (twice the reuse of each A load). 64 wins where 128-wide tiles leave a wave mostly idle or
 *  waste columns (N = 2112 at M = 4096: 5 waves of 128 vs 8 of 64). The grouped layouts keep 128 (the
 *  rows per expert are on the device). DeepGEMM also has 256 and odd widths; the wgmma wrapper and
 *  its emulation have n64 and n128. */
inline int64_t fp8GemmHopperBlockN(int64_t M, int64_t N) {
  constexpr int64_t kSms = 132;
  const int64_t mTiles = (M + 127) / 128;
  const auto cost = [&](int64_t blockN) { return (mTiles * ((N + blockN - 1) / blockN) + kSms - 1) / kSms * blockN; };
  return cost(64) < cost(128) ? 64 : 128;
}

/** The swapAB kernel's K splits for fp8Gemm [M, K] x [N, K]ᵀ: enough blocks (⌈N/64⌉ tiles x splits)
 *  for about four per SM of an H100/H200 (132 SMs; a fixed count, so the result's bits do not
 *  depend on the device), at most one split per 128-wide K block, and no empty split. */
inline int64_t fp8GemmDecodeSplits(int64_t M, int64_t N, int64_t K) {
  constexpr int64_t kTargetBlocks = 4 * 132;
  const int64_t tiles = (N + 63) / 64, kBlocks = K / 128;
  if (M < 1 || tiles < 1 || kBlocks <= 1 || tiles >= kTargetBlocks) return 1;
  int64_t splits = (kTargetBlocks + tiles - 1) / tiles;
  if (splits > kBlocks) splits = kBlocks;
  const int64_t perSplit = (kBlocks + splits - 1) / splits;
  return (kBlocks + perSplit - 1) / perSplit;
}
/** The same for groupedFp8Gemm (contiguous): the routing is not known on the host, so the choice
 *  goes by the mean rows per expert: "wgmma" (128-row tiles) when R ≥ 64 · E (prefill), else
 *  "mma.sync" (64-row tiles waste less on experts with few rows). */
inline const char* groupedFp8GemmCudaPath(int64_t R, int64_t E, int64_t N, int64_t K) {
  return E > 0 && R >= 64 * E && N > 0 && K >= 128 && K % 128 == 0 ? "wgmma" : "mma.sync";
}
/** The same for maskedGroupedFp8Gemm: "wgmma" when an expert has more than 64 row slots (row tiles
 *  at or past its count cost nothing on either kernel), else "swapAB" (fp8Gemm's decode kernel, one
 *  grid slice per expert, no K split: E x ⌈N/64⌉ tiles fill the SMs). */
inline const char* maskedGroupedFp8GemmCudaPath(int64_t E, int64_t M, int64_t N, int64_t K) {
  if (E < 1 || N < 1 || K < 128 || K % 128 != 0) return "mma.sync";
  return M > 64 ? "wgmma" : M >= 1 ? "swapAB" : "mma.sync";
}

struct GroupedFp8GemmParams {
  const uint8_t* a = nullptr;        // [R, K] f8e4m3, rows grouped by expert
  const float* aScales = nullptr;    // [R, K/128] f32
  const uint8_t* w = nullptr;        // [E, N, K] f8e4m3
  const float* wScales = nullptr;    // [E, ceil(N/128), K/128] f32
  const int32_t* offsets = nullptr;  // [E + 1] i32: rows offsets[e] ≤ r < offsets[e+1] use expert e
  void* y = nullptr;                 // [R, N], dtype yType
  DType yType = DType::bf16;
  int64_t R = 0, E = 0, N = 0, K = 0;
  bool exactBlockSums = false;       // see native/cpu/gemm_engine.h (CPU only: the CUDA kernels sum each 128-block on tensor cores)
};

/** The masked layout (decode): a fixed number M of row slots per expert, counts[e] of them in use,
 *  so the launch shape does not depend on the routing (a decode step can be captured in a CUDA graph)
 *  and nothing reads the counts on the host. Rows at or past counts[e] are neither read nor written. */
struct MaskedGroupedFp8GemmParams {
  const uint8_t* a = nullptr;        // [E, M, K] f8e4m3
  const float* aScales = nullptr;    // [E, M, K/128] f32
  const uint8_t* w = nullptr;        // [E, N, K] f8e4m3
  const float* wScales = nullptr;    // [E, ceil(N/128), K/128] f32
  const int32_t* counts = nullptr;   // [E] i32, each in [0, M]
  void* y = nullptr;                 // [E, M, N], dtype yType
  DType yType = DType::bf16;
  int64_t E = 0, M = 0, N = 0, K = 0;
  bool exactBlockSums = false;       // see native/cpu/gemm_engine.h (CPU only, as above)
};

struct GemmParams {
  const void* x = nullptr;           // [M, K], dtype xType (f32 | bf16)
  DType xType = DType::f32;
  const void* w = nullptr;           // [N, K], dtype wType (f32 | bf16)
  DType wType = DType::f32;
  void* y = nullptr;                 // [M, N], dtype yType (f32 | bf16)
  DType yType = DType::f32;
  int64_t M = 0, N = 0, K = 0;
};

struct BmmHeadsParams {
  const void* x = nullptr;           // [T, H, A], dtype xType (f32 | bf16)
  DType xType = DType::f32;
  const void* w = nullptr;           // [H, A, B], dtype wType (f32 | bf16)
  DType wType = DType::f32;
  void* y = nullptr;                 // [T, H, B], dtype yType (f32 | bf16)
  DType yType = DType::f32;
  int64_t T = 0, H = 0, A = 0, B = 0;
};

}  // namespace dsn
