// mbarrier (sm_80+, tx-count sm_90): a 64-bit shared-memory barrier with an expected arrival count,
// a transaction (byte) count and a phase. A phase completes when all expected arrivals happened
// and the tx-count is back to zero; try_wait.parity(P) succeeds once the phase of parity P has
// completed. The emulation keeps the state in a side table of the block, reports use of an
// uninitialised barrier, extra arrivals, a wait that can never complete (deadlock) and a kernel
// that exits with a non-zero tx-count (bytes arrived that no expect_tx announced, or the reverse).
#pragma once
#include "common.cuh"

namespace dsn::ptx {

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) {
#if defined(__CUDA_ARCH__)
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smemAddr(bar)), "r"(count) : "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::mbarInit(bar, count);
#endif
}

__device__ __forceinline__ void mbarrier_inval(uint64_t* bar) {
#if defined(__CUDA_ARCH__)
  asm volatile("mbarrier.inval.shared::cta.b64 [%0];" ::"r"(smemAddr(bar)) : "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::mbarInval(bar);
#endif
}

/** Makes mbarrier.init visible to the async proxy (TMA) and other threads. */
__device__ __forceinline__ void fence_mbarrier_init() {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#elif defined(__CUDA_EMU__)
  __threadfence_block();
#endif
}

__device__ __forceinline__ uint64_t mbarrier_arrive(uint64_t* bar) {
#if defined(__CUDA_ARCH__)
  uint64_t state;
  asm volatile("mbarrier.arrive.shared::cta.b64 %0, [%1];" : "=l"(state) : "r"(smemAddr(bar)) : "memory");
  return state;
#elif defined(__CUDA_EMU__)
  return cuda_emu::mbarArrive(bar, 1, 0);
#else
  return 0;
#endif
}

/** expect_tx(bytes) then arrive, atomically (sm_90). */
__device__ __forceinline__ uint64_t mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  uint64_t state;
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 %0, [%1], %2;" : "=l"(state) : "r"(smemAddr(bar)), "r"(bytes) : "memory");
  return state;
#elif defined(__CUDA_EMU__)
  return cuda_emu::mbarArrive(bar, 1, int64_t(bytes));
#else
  return 0;
#endif
}

__device__ __forceinline__ void mbarrier_expect_tx(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(smemAddr(bar)), "r"(bytes) : "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::mbarExpectTx(bar, int64_t(bytes));
#endif
}

/** True once the phase with parity `parity` has completed (may give up after a time on a GPU). */
__device__ __forceinline__ bool mbarrier_try_wait_parity(uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  uint32_t ok;
  asm volatile(
      "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
      : "=r"(ok)
      : "r"(smemAddr(bar)), "r"(parity)
      : "memory");
  return ok != 0;
#elif defined(__CUDA_EMU__)
  return cuda_emu::mbarWait(bar, parity);  // blocks the fiber until the phase completes
#else
  return true;
#endif
}

__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* bar, uint32_t parity) {
  while (!mbarrier_try_wait_parity(bar, parity)) {
  }
}

}  // namespace dsn::ptx
