// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16 (sm_75+). Per the PTX ISA: lanes
// 8m .. 8m+7 supply the row addresses (16 bytes each, 16-byte aligned, shared memory) of matrix m;
// every lane receives, for each matrix m, one 32-bit register holding two b16 elements: without
// .trans row lane/4, columns 2*(lane%4) and 2*(lane%4)+1 (low half first); with .trans the matrix
// is transposed: elements (row 2*(lane%4), col lane/4) and (row 2*(lane%4)+1, col lane/4).
#pragma once
#include "common.cuh"

namespace dsn::ptx {

#if defined(__CUDA_EMU__)
namespace emu {
template <int kNum, bool kTrans>
inline void resolveLdmatrix(cuda_emu::WarpSlot* const* s, uint32_t) {
  uint16_t M[kNum][8][8];
  for (int m = 0; m < kNum; ++m)
    for (int r = 0; r < 8; ++r) {
      const void* row = s[m * 8 + r]->p0;
      if (!cuda_emu::isShared(row, 16) || reinterpret_cast<uintptr_t>(row) % 16)
        cuda_emu::kernelFault(cudaErrorMisalignedAddress, "ldmatrix: row address %p of matrix %d (lane %d) is not a 16-byte aligned shared-memory address", row, m, m * 8 + r);
      memcpy(M[m][r], row, 16);
    }
  for (int lane = 0; lane < 32; ++lane) {
    auto* d = static_cast<uint32_t*>(s[lane]->p1);
    const int g = lane >> 2, t = lane & 3;
    for (int m = 0; m < kNum; ++m) {
      uint16_t lo = kTrans ? M[m][2 * t][g] : M[m][g][2 * t];
      uint16_t hi = kTrans ? M[m][2 * t + 1][g] : M[m][g][2 * t + 1];
      d[m] = uint32_t(lo) | (uint32_t(hi) << 16);
    }
  }
}
}  // namespace emu
#endif

/** ldmatrix .x1/.x2/.x4 (kNum matrices), optionally .trans; rowAddr: this lane's row address. */
template <int kNum, bool kTrans = false>
__device__ __forceinline__ void ldmatrix(uint32_t (&d)[kNum], const void* rowAddr) {
  static_assert(kNum == 1 || kNum == 2 || kNum == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(__CUDA_ARCH__)
  const uint32_t a = smemAddr(rowAddr);
  if constexpr (kNum == 1) {
    if constexpr (kTrans) asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(d[0]) : "r"(a));
    else asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(d[0]) : "r"(a));
  } else if constexpr (kNum == 2) {
    if constexpr (kTrans) asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];" : "=r"(d[0]), "=r"(d[1]) : "r"(a));
    else asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(d[0]), "=r"(d[1]) : "r"(a));
  } else {
    if constexpr (kTrans)
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3]) : "r"(a));
    else
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3]) : "r"(a));
  }
#elif defined(__CUDA_EMU__)
  uint32_t out[4] = {};
  cuda_emu::WarpSlot s;
  s.p0 = rowAddr;
  s.p1 = out;
  cuda_emu::warpCollective(kTrans ? "ldmatrix.trans" : "ldmatrix", emu::resolveLdmatrix<kNum, kTrans>, 0xffffffffu, &s);
  for (int m = 0; m < kNum; ++m) d[m] = out[m];
#endif
}

}  // namespace dsn::ptx
