// Named barriers: bar.sync / bar.arrive (PTX ISA "bar, barrier"). id 0..15; `threads` a multiple
// of 32 (0 or omitted in bar.sync: every thread of the block).
#pragma once
#include "common.cuh"

namespace dsn::ptx {

__device__ __forceinline__ void bar_sync(int id, int threads) {
#if defined(__CUDA_ARCH__)
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::barrierSync(id, unsigned(threads), "bar.sync");
#endif
}

__device__ __forceinline__ void bar_arrive(int id, int threads) {
#if defined(__CUDA_ARCH__)
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
#elif defined(__CUDA_EMU__)
  cuda_emu::barrierArrive(id, unsigned(threads));
#endif
}

}  // namespace dsn::ptx
