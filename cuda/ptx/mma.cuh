// mma.sync (warp-wide tensor-core MMA), D = A * B + C with f32 accumulators:
//   m16n8k16 .row.col .f32.bf16.bf16.f32   (sm_80+)
//   m16n8k32 .row.col .f32.e4m3.e4m3.f32   (sm_89+)
// Fragments per the PTX ISA ("Matrix Fragments for mma.m16n8k16 / mma.m16n8k32"), with
// groupID = lane >> 2 and tig = lane % 4 (threadID_in_group):
//   C/D (f32, 4 per lane): c[i] at row groupID + 8 * (i >= 2), col tig * 2 + (i & 1).
//   bf16 A (8 halves in 4 regs, a[i] = bits of reg i/2, low half first):
//       row groupID + 8 * (i in {2,3,6,7}), col tig * 2 + (i & 1) + 8 * (i >= 4).
//   bf16 B (4 halves in 2 regs): row tig * 2 + (i & 1) + 8 * (i >= 2), col groupID.
//   e4m3 A (16 bytes in 4 regs, byte 0 lowest): row groupID + 8 * (i in 4..7 or 12..15),
//       col tig * 4 + (i & 3) + 16 * (i >= 8).
//   e4m3 B (8 bytes in 2 regs): row tig * 4 + (i & 3) + 16 * (i >= 4), col groupID.
// The emulation gathers the whole A, B, C from the 32 lanes with exactly these maps, computes the
// product in double (exact for these inputs) and scatters D; test/cuda-emu checks it against a
// plain matmul with the maps written out again from the tables.
#pragma once
#include "common.cuh"

namespace dsn::ptx {

#if defined(__CUDA_EMU__)
namespace emu {
struct MmaShape {
  int k;
  bool fp8;
};
inline float elemA(const uint32_t* a, int i, bool fp8) {
  if (fp8) return cuda_emu::fp::fromE4m3(uint8_t(a[i / 4] >> (8 * (i % 4))));
  return cuda_emu::fp::fromBf16(uint16_t(a[i / 2] >> (16 * (i % 2))));
}
template <bool kFp8>
inline void resolveMma(cuda_emu::WarpSlot* const* s, uint32_t) {
  constexpr int K = kFp8 ? 32 : 16;
  double A[16][K], B[K][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    const auto* a = static_cast<const uint32_t*>(s[lane]->p0);
    const auto* b = static_cast<const uint32_t*>(s[lane]->p2);
    const auto* c = static_cast<const float*>(s[lane]->p3);
    if (kFp8) {
      for (int i = 0; i < 16; ++i) A[g + 8 * ((i >> 2) & 1)][t * 4 + (i & 3) + 16 * (i >= 8)] = elemA(a, i, true);
      for (int i = 0; i < 8; ++i) B[t * 4 + (i & 3) + 16 * (i >= 4)][g] = elemA(b, i, true);
    } else {
      for (int i = 0; i < 8; ++i) A[g + 8 * ((i >> 1) & 1)][t * 2 + (i & 1) + 8 * (i >= 4)] = elemA(a, i, false);
      for (int i = 0; i < 4; ++i) B[t * 2 + (i & 1) + 8 * (i >= 2)][g] = elemA(b, i, false);
    }
    for (int i = 0; i < 4; ++i) C[g + 8 * (i >= 2)][t * 2 + (i & 1)] = c[i];
  }
  // D[r][col] = C[r][col] + A[r][0]·B[0][col] + … in k order; the 8 columns of a row are summed
  // side by side so the compiler can vectorise across them (each column's order is unchanged).
  double D[16][8];
  for (int r = 0; r < 16; ++r) {
    double acc[8];
    for (int col = 0; col < 8; ++col) acc[col] = C[r][col];
    for (int k = 0; k < K; ++k) {
      const double a = A[r][k];
      for (int col = 0; col < 8; ++col) acc[col] += a * B[k][col];
    }
    for (int col = 0; col < 8; ++col) D[r][col] = acc[col];
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    auto* d = static_cast<float*>(s[lane]->p1);
    for (int i = 0; i < 4; ++i) d[i] = float(D[g + 8 * (i >= 2)][t * 2 + (i & 1)]);
  }
}
}  // namespace emu
#endif

/** mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32; d may alias c. */
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#elif defined(__CUDA_EMU__)
  float out[4];
  cuda_emu::WarpSlot s;
  s.p0 = a;
  s.p2 = b;
  s.p3 = c;
  s.p1 = out;
  cuda_emu::warpCollective("mma.sync.m16n8k16.bf16", emu::resolveMma<false>, 0xffffffffu, &s);
  for (int i = 0; i < 4; ++i) d[i] = out[i];
#endif
}

/** mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32; d may alias c. */
__device__ __forceinline__ void mma_m16n8k32_e4m3(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#elif defined(__CUDA_EMU__)
  float out[4];
  cuda_emu::WarpSlot s;
  s.p0 = a;
  s.p2 = b;
  s.p3 = c;
  s.p1 = out;
  cuda_emu::warpCollective("mma.sync.m16n8k32.e4m3", emu::resolveMma<true>, 0xffffffffu, &s);
  for (int i = 0; i < 4; ++i) d[i] = out[i];
#endif
}

}  // namespace dsn::ptx
