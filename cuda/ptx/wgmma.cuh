// wgmma (sm_90a): the warpgroup-wide asynchronous tensor-core MMA with both operands in shared
// memory, D[64, N] (+)= A[64, 32] · B[N, 32]ᵀ, e4m3 × e4m3 -> f32, and its ordering instructions
// (wgmma.fence, wgmma.commit_group, wgmma.wait_group); also setmaxnreg (warpgroup register
// reallocation). Everything here is .sync.aligned: all 128 threads of the warpgroup execute it.
//
// From the PTX ISA ("Asynchronous Warpgroup Level Matrix Operations"):
// - Matrix descriptor (64 bits): bits 0-13 start address >> 4 (shared state space), 16-29 leading
//   dimension byte offset (LBO) >> 4, 32-45 stride dimension byte offset (SBO) >> 4, 49-51 matrix
//   base offset, 62-63 swizzle mode (0 none, 1 128B, 2 64B, 3 32B).
// - Shared memory layout, K-major (A and B here; e4m3 has no transpose): the matrix is made of
//   swizzle atoms of 8 rows; an atom row is 16 bytes without swizzle (a "core matrix" of 8 x 16 B)
//   and 32, 64 or 128 bytes with the 32B, 64B, 128B swizzles; an atom is stored contiguously, row
//   r at r times the atom row bytes. SBO is the distance between atoms adjacent in M/N (8-row
//   groups); LBO the distance between atoms adjacent in K (no swizzle; unused when swizzled, the
//   K extent of one instruction fitting in an atom row). Swizzling permutes 16-byte chunks by the
//   absolute shared address: bits 4-6 (128B: 3 bits, 64B: 2, 32B: 1) XOR bits 7-9, which is also
//   what TMA writes (cuda_emu::swizzle), so a TMA box landed at a 1024-byte aligned address is a
//   valid 128B-swizzled operand, and a K step inside an atom row is a start address + 32 bytes.
// - Register fragment of D (m64nNk*, .f32: N/2 registers per thread): thread t of the warpgroup,
//   warp w = t / 32, lane l, groupID g = l >> 2, threadID_in_group q = l % 4:
//     d[i] is D[16 w + g + 8 ((i >> 1) & 1)][8 (i >> 2) + 2 q + (i & 1)].
// The emulation gathers A and B from shared memory with exactly these rules (it does not use a
// kernel's layout helpers), D from the 128 threads, computes each sum in double (exact for e4m3
// products) and rounds once to f32; it checks every thread passed the same descriptors. It
// completes at issue, so it cannot catch a missing wgmma.wait_group: kernels must still wait
// before reading D or reusing the operands' shared memory (test/cuda-emu checks the tables).
#pragma once
#include "common.cuh"
#if defined(__CUDA_EMU__)
#include <vector>
#endif

namespace dsn::ptx {

/** The swizzle-mode field (bits 62-63) of a wgmma matrix descriptor. */
enum class WgmmaSwizzle : uint32_t { none = 0, bytes128 = 1, bytes64 = 2, bytes32 = 3 };

#if defined(__CUDA_EMU__)
namespace emu {
struct WgmmaOp {
  uint64_t descA, descB;
  int n;
  bool accumulate;
};
/** The shared-memory byte holding byte `kByte` of row `row` of a K-major wgmma operand. */
inline const uint8_t* wgmmaOperandByte(uint64_t desc, int row, int kByte, const char* which) {
  const uint32_t start = uint32_t(desc & 0x3fffu) << 4;
  const uint32_t lbo = uint32_t((desc >> 16) & 0x3fffu) << 4;
  const uint32_t sbo = uint32_t((desc >> 32) & 0x3fffu) << 4;
  const uint32_t baseOffset = uint32_t((desc >> 49) & 7u);
  const uint32_t mode = uint32_t(desc >> 62);
  if (baseOffset != 0) cuda_emu::kernelFault(cudaErrorIllegalInstruction, "wgmma: %s descriptor has matrix base offset %u (not emulated)", which, baseOffset);
  uint32_t addr;
  if (mode == 0) {
    addr = start + uint32_t(row / 8) * sbo + uint32_t(kByte / 16) * lbo + uint32_t(row % 8) * 16 + uint32_t(kByte % 16);
  } else {
    const uint32_t atomRowBytes = mode == 1 ? 128 : mode == 2 ? 64 : 32;
    const uint32_t xorBits = mode == 1 ? 7 : mode == 2 ? 3 : 1;
    if (uint32_t(kByte) >= atomRowBytes) cuda_emu::kernelFault(cudaErrorIllegalInstruction, "wgmma: %s K extent exceeds the swizzle atom", which);
    const uint32_t linear = start + uint32_t(row / 8) * sbo + uint32_t(row % 8) * atomRowBytes + uint32_t(kByte);
    addr = linear ^ (((linear >> 7) & xorBits) << 4);
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(cuda_emu::sharedWindow()) + addr;
  if (!cuda_emu::isShared(p, 1))
    cuda_emu::kernelFault(cudaErrorIllegalAddress, "wgmma: %s row %d byte %d at shared address %u is outside shared memory", which, row, kByte, addr);
  return p;
}
inline void resolveWgmmaE4m3(cuda_emu::WarpSlot* const* s, uint32_t) {
  const auto& op = *static_cast<const WgmmaOp*>(s[0]->p0);
  for (int t = 1; t < 128; ++t) {
    const auto& o = *static_cast<const WgmmaOp*>(s[t]->p0);
    if (o.descA != op.descA || o.descB != op.descB || o.n != op.n || o.accumulate != op.accumulate)
      cuda_emu::kernelFault(cudaErrorIllegalInstruction, "wgmma.mma_async: thread %d of the warpgroup passed other operands than thread 0", t);
  }
  const int N = op.n;
  std::vector<double> A(64 * 32), B(size_t(N) * 32), D(size_t(64) * N, 0.0);
  for (int m = 0; m < 64; ++m)
    for (int k = 0; k < 32; ++k) A[m * 32 + k] = cuda_emu::fp::fromE4m3(*wgmmaOperandByte(op.descA, m, k, "A"));
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < 32; ++k) B[n * 32 + k] = cuda_emu::fp::fromE4m3(*wgmmaOperandByte(op.descB, n, k, "B"));
  auto rowOf = [](int t, int i) { return 16 * (t / 32) + ((t % 32) >> 2) + 8 * ((i >> 1) & 1); };
  auto colOf = [](int t, int i) { return 8 * (i >> 2) + 2 * (t % 4) + (i & 1); };
  if (op.accumulate)
    for (int t = 0; t < 128; ++t)
      for (int i = 0; i < N / 2; ++i) D[rowOf(t, i) * N + colOf(t, i)] = static_cast<const float*>(s[t]->p1)[i];
  for (int t = 0; t < 128; ++t) {
    auto* d = static_cast<float*>(s[t]->p1);
    for (int i = 0; i < N / 2; ++i) {
      const int r = rowOf(t, i), c = colOf(t, i);
      double acc = D[r * N + c];
      for (int k = 0; k < 32; ++k) acc += A[r * 32 + k] * B[c * 32 + k];
      d[i] = float(acc);
    }
  }
}
inline void resolveWarpgroupSync(cuda_emu::WarpSlot* const*, uint32_t) {}
}  // namespace emu
#endif

/** A matrix descriptor for the operand at `smem` (16-byte aligned; with a swizzle, inside an atom
 *  laid out from a 1024-, 512- or 256-byte aligned address), LBO and SBO in bytes. */
__device__ __forceinline__ uint64_t wgmma_desc(const void* smem, uint32_t leadingBytes, uint32_t strideBytes, WgmmaSwizzle swizzle) {
#if defined(__CUDA_ARCH__)
  const uint32_t addr = smemAddr(smem);
#elif defined(__CUDA_EMU__)
  const uint32_t addr = uint32_t(static_cast<const char*>(smem) - cuda_emu::sharedWindow());
#else
  const uint32_t addr = 0;
#endif
  return uint64_t((addr >> 4) & 0x3fffu) | (uint64_t((leadingBytes >> 4) & 0x3fffu) << 16) | (uint64_t((strideBytes >> 4) & 0x3fffu) << 32) |
         (uint64_t(swizzle) << 62);
}

/** wgmma.fence.sync.aligned: orders this warpgroup's register and shared-memory accesses before
 *  the wgmma.mma_async that follow (needed before the first one and after touching D). */
__device__ __forceinline__ void wgmma_fence() {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::WarpSlot s;
  cuda_emu::warpgroupCollective("wgmma.fence", emu::resolveWarpgroupSync, &s);
#endif
}

/** wgmma.commit_group.sync.aligned: the wgmma.mma_async issued since the last commit form a group. */
__device__ __forceinline__ void wgmma_commit_group() {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::WarpSlot s;
  cuda_emu::warpgroupCollective("wgmma.commit_group", emu::resolveWarpgroupSync, &s);
#endif
}

/** wgmma.wait_group.sync.aligned N: waits until at most kPending groups are still in flight. */
template <int kPending>
__device__ __forceinline__ void wgmma_wait_group() {
  static_assert(kPending >= 0 && kPending <= 7, "wgmma.wait_group takes 0..7");
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::WarpSlot s;
  cuda_emu::warpgroupCollective("wgmma.wait_group", emu::resolveWarpgroupSync, &s);
#endif
}

/** Keeps the compiler from moving accesses of an accumulator register across wgmma instructions
 *  (the asm statements do not name D as an operand). */
__device__ __forceinline__ void wgmma_fence_operand(float& r) {
#if defined(__CUDA_ARCH__)
  asm volatile("" : "+f"(r)::"memory");
#else
  (void)r;
#endif
}

/** wgmma.mma_async.sync.aligned.m64nNk32.f32.e4m3.e4m3: d (N / 2 registers per thread, the
 *  layout above) = A · Bᵀ + (accumulate ? d : 0), A [64, 32] and B [N, 32] K-major in shared
 *  memory per descA / descB. Asynchronous: commit, then wait before reading d. */
template <int N>
__device__ __forceinline__ void wgmma_m64k32_e4m3(float (&d)[N / 2], uint64_t descA, uint64_t descB, bool accumulate) {
  static_assert(N == 64 || N == 128, "wgmma m64nNk32 e4m3 is wrapped for N = 64 and 128");
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  if constexpr (N == 64) {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %34, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(descA), "l"(descB), "r"(accumulate ? 1 : 0));
  } else {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
        " wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(descA), "l"(descB), "r"(accumulate ? 1 : 0));
  }
#elif defined(__CUDA_EMU__)
  emu::WgmmaOp op{descA, descB, N, accumulate};
  cuda_emu::WarpSlot s;
  s.p0 = &op;
  s.p1 = d;
  cuda_emu::warpgroupCollective("wgmma.mma_async.m64nNk32.e4m3", emu::resolveWgmmaE4m3, &s);
#else
  (void)d, (void)descA, (void)descB, (void)accumulate;
#endif
}

/** setmaxnreg.{inc,dec}.sync.aligned.u32: moves the warpgroup's per-thread register budget to
 *  kRegisters (a multiple of 8 in 24..256). No effect in the emulation beyond the convergence check. */
template <int kRegisters, bool kIncrease>
__device__ __forceinline__ void setmaxnreg() {
  static_assert(kRegisters % 8 == 0 && kRegisters >= 24 && kRegisters <= 256, "setmaxnreg takes a multiple of 8 in 24..256");
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  if constexpr (kIncrease) asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kRegisters));
  else asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kRegisters));
#elif defined(__CUDA_EMU__)
  cuda_emu::WarpSlot s;
  cuda_emu::warpgroupCollective("setmaxnreg", emu::resolveWarpgroupSync, &s);
#endif
}

}  // namespace dsn::ptx
