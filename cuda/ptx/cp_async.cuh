// cp.async (sm_80+): per-thread asynchronous global -> shared copies of 4, 8 or 16 bytes, grouped
// by commit_group and waited for with wait_group N (all but the N most recent groups complete).
// The emulation lands a copy only at the wait that covers it, so reading the destination before
// waiting reads poison.
#pragma once
#include "common.cuh"

namespace dsn::ptx {

/** Copies kBytes (4, 8, 16) from global src to shared dst; bytes past srcBytes are zero-filled. */
template <int kBytes>
__device__ __forceinline__ void cp_async_ca(void* dst, const void* src, int srcBytes = kBytes) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;" ::"r"(smemAddr(dst)), "l"(src), "n"(kBytes), "r"(srcBytes) : "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::cpAsyncQueue(dst, src, kBytes, srcBytes);
#endif
}

/** The L2-only variant (16 bytes). */
__device__ __forceinline__ void cp_async_cg16(void* dst, const void* src, int srcBytes = 16) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smemAddr(dst)), "l"(src), "r"(srcBytes) : "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::cpAsyncQueue(dst, src, 16, srcBytes);
#endif
}

__device__ __forceinline__ void cp_async_commit_group() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;" ::: "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::cpAsyncCommit();
#endif
}

template <int kPending>
__device__ __forceinline__ void cp_async_wait_group() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::cpAsyncWait(kPending);
#endif
}

__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_all;" ::: "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::cpAsyncCommit();
  cuda_emu::cpAsyncWait(0);
#endif
}

}  // namespace dsn::ptx
