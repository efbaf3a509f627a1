// cuda/ptx: one wrapper per PTX instruction the kernels use, each with two bodies: the inline PTX
// (under __CUDA_ARCH__; Hopper-only instructions also under __CUDA_ARCH_FEAT_SM90_ALL) and the
// CPU emulation (under __CUDA_EMU__, the cuda-emu build). Each emulation follows the PTX ISA's own
// tables (fragment ownership per lane, swizzle patterns, descriptor fields) and is unit-tested
// against them in test/cuda-emu/; none uses a kernel's layout helpers.
#pragma once
#include <cstdint>
#if defined(__CUDA_EMU__)
#include <cuda_runtime.h>
#endif

namespace dsn::ptx {

#if defined(__CUDA_ARCH__)
__device__ __forceinline__ uint32_t smemAddr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
#endif

}  // namespace dsn::ptx
