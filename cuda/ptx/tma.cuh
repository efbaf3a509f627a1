// TMA (sm_90): cp.async.bulk.tensor 2D tile loads (global -> shared, completing bytes on an
// mbarrier) and stores (shared -> global, bulk groups), prefetch of the tensor map, and
// fence.proxy.async. The emulation reads the parameters cuTensorMapEncodeTiled stored: a box of
// box[0] x box[1] elements at coordinates (c0, c1) lands densely in shared memory (row r at
// r * box[0] * elemBytes) with the map's swizzle applied to each 16-byte chunk (see
// cuda_emu::swizzle); elements outside the tensor are filled with zeros; the mbarrier's tx-count
// is decremented by the whole box's bytes. Loads land when every thread of the block waits (the
// async proxy), so a consumer that does not wait on the mbarrier reads poison.
#pragma once
#include "common.cuh"
#if defined(__CUDA_EMU__)
#include <cuda.h>
#endif

namespace dsn::ptx {

#if defined(__CUDA_EMU__)
namespace emu {
struct TmaOp {
  cuda_emu::TensorMapDesc d;
  char* smem;
  uint64_t* bar;
  int c0, c1;
};
inline const cuda_emu::TensorMapDesc& tensorMap(const void* map, const char* what) {
  const auto* d = static_cast<const cuda_emu::TensorMapDesc*>(map);
  if (d->magic != cuda_emu::kTensorMapMagic) cuda_emu::kernelFault(cudaErrorIllegalInstruction, "%s: %p is not a tensor map made by cuTensorMapEncodeTiled", what, map);
  if (d->rank != 2) cuda_emu::kernelFault(cudaErrorIllegalInstruction, "%s: the tensor map has rank %d, the instruction is .2d", what, d->rank);
  return *d;
}
/** Global address of element (x, y), or nullptr when outside the tensor. */
inline const char* tmaElem(const cuda_emu::TensorMapDesc& d, int64_t x, int64_t y) {
  if (x < 0 || y < 0 || x >= int64_t(d.dims[0]) || y >= int64_t(d.dims[1])) return nullptr;
  return d.base + x * d.elemBytes + y * int64_t(d.strides[0]);
}
inline void tmaCheckSmem(const cuda_emu::TensorMapDesc& d, const void* smem, const char* what) {
  const size_t bytes = size_t(d.box[0]) * d.box[1] * d.elemBytes;
  if (!cuda_emu::isShared(smem, bytes)) cuda_emu::kernelFault(cudaErrorIllegalAddress, "%s: the %zu-byte box at %p is not inside shared memory", what, bytes, smem);
  const uint32_t align = d.swizzle ? cuda_emu::swizzleRepeat(d.swizzle) : 128;
  if (reinterpret_cast<uintptr_t>(smem) % align)
    cuda_emu::kernelFault(cudaErrorMisalignedAddress, "%s: shared-memory box %p must be %u-byte aligned for swizzle mode %d", what, smem, align, d.swizzle);
}
inline void tmaLoadLand(void* arg) {
  auto* op = static_cast<TmaOp*>(arg);
  const auto& d = op->d;
  const uint32_t rowBytes = uint32_t(d.box[0]) * d.elemBytes;
  for (int r = 0; r < d.box[1]; ++r)
    for (int e = 0; e < d.box[0]; ++e) {
      const uint32_t off = cuda_emu::swizzle(uint32_t(r) * rowBytes + uint32_t(e) * d.elemBytes, d.swizzle);
      const char* src = tmaElem(d, int64_t(op->c0) + e, int64_t(op->c1) + r);
      if (src) memcpy(op->smem + off, src, d.elemBytes);
      else memset(op->smem + off, 0, d.elemBytes);
    }
  cuda_emu::mbarCompleteTx(op->bar, int64_t(rowBytes) * d.box[1]);
}
}  // namespace emu
#endif

/** cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes: loads the box at
 *  (c0 = inner coordinate, c1 = row) into smem and completes its bytes on `bar`. */
__device__ __forceinline__ void tma_load_2d(void* smem, const void* tensorMap, uint64_t* bar, int c0, int c1) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::"r"(smemAddr(smem)),
      "l"(tensorMap), "r"(smemAddr(bar)), "r"(c0), "r"(c1)
      : "memory");
#elif defined(__CUDA_EMU__)
  const auto& d = emu::tensorMap(tensorMap, "cp.async.bulk.tensor.2d (load)");
  emu::tmaCheckSmem(d, smem, "cp.async.bulk.tensor.2d (load)");
  if (!cuda_emu::isShared(bar, 8)) cuda_emu::kernelFault(cudaErrorIllegalAddress, "cp.async.bulk.tensor.2d: mbarrier %p is not in shared memory", static_cast<void*>(bar));
  auto op = std::make_shared<emu::TmaOp>(emu::TmaOp{d, static_cast<char*>(smem), bar, c0, c1});
  cuda_emu::asyncProxy(emu::tmaLoadLand, op);
#endif
}

/** cp.async.bulk.tensor.2d.global.shared::cta.bulk_group: stores the box in smem to (c0, c1);
 *  elements outside the tensor are not written. (Emulated at issue.) */
__device__ __forceinline__ void tma_store_2d(const void* tensorMap, const void* smem, int c0, int c1) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];" ::"l"(tensorMap), "r"(smemAddr(smem)), "r"(c0), "r"(c1)
               : "memory");
#elif defined(__CUDA_EMU__)
  const auto& d = emu::tensorMap(tensorMap, "cp.async.bulk.tensor.2d (store)");
  emu::tmaCheckSmem(d, smem, "cp.async.bulk.tensor.2d (store)");
  const uint32_t rowBytes = uint32_t(d.box[0]) * d.elemBytes;
  for (int r = 0; r < d.box[1]; ++r)
    for (int e = 0; e < d.box[0]; ++e) {
      const char* dst = emu::tmaElem(d, int64_t(c0) + e, int64_t(c1) + r);
      if (dst) memcpy(const_cast<char*>(dst), static_cast<const char*>(smem) + cuda_emu::swizzle(uint32_t(r) * rowBytes + uint32_t(e) * d.elemBytes, d.swizzle), d.elemBytes);
    }
#endif
}

__device__ __forceinline__ void tma_store_commit_group() {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
#endif
}

template <int kPending>
__device__ __forceinline__ void tma_store_wait_group_read() {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(kPending) : "memory");
#endif
}

__device__ __forceinline__ void tma_prefetch_descriptor(const void* tensorMap) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("prefetch.tensormap [%0];" ::"l"(tensorMap) : "memory");
#endif
}

/** Orders generic-proxy shared-memory writes before later async-proxy (TMA, wgmma) accesses. */
__device__ __forceinline__ void fence_proxy_async_shared() {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#elif defined(__CUDA_EMU__)
  __threadfence_block();
#endif
}

}  // namespace dsn::ptx
