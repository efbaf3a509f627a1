// Every cuda/ptx wrapper instantiated once, for nvcc + ptxas (sm_90a): the inline-PTX bodies must assemble.
// Compiled by test/cuda-emu/ptx-nvcc.test.ts when nvcc is present (not part of any build).
#include <cuda.h>
#include "ptx/barrier.cuh"
#include "ptx/cp_async.cuh"
#include "ptx/ldmatrix.cuh"
#include "ptx/mbarrier.cuh"
#include "ptx/mma.cuh"
#include "ptx/tma.cuh"
#include "ptx/wgmma.cuh"
using namespace dsn::ptx;
__global__ void k(const __grid_constant__ CUtensorMap map, float* out, const float* in) {
  __shared__ __align__(1024) uint16_t tile[4096];
  __shared__ __align__(8) uint64_t bar;
  if (threadIdx.x == 0) { mbarrier_init(&bar, 1); fence_mbarrier_init(); }
  __syncthreads();
  if (threadIdx.x == 0) { mbarrier_arrive_expect_tx(&bar, 2048); tma_load_2d(tile, &map, &bar, 0, 0); }
  mbarrier_wait_parity(&bar, 0);
  mbarrier_expect_tx(&bar, 0);
  cp_async_ca<16>(tile + 2048 + threadIdx.x * 8, in + threadIdx.x * 4);
  cp_async_cg16(tile + 3072 + threadIdx.x * 8, in + threadIdx.x * 4);
  cp_async_commit_group(); cp_async_wait_group<0>(); cp_async_wait_all();
  bar_sync(1, 128); bar_arrive(2, 64);
  uint32_t a1[1], a2[2], a4[4], b[2] = {1, 2};
  ldmatrix<1>(a1, tile + threadIdx.x * 8); ldmatrix<2, true>(a2, tile + threadIdx.x * 8); ldmatrix<4>(a4, tile + threadIdx.x * 8);
  float c[4] = {0, 0, 0, 0}, d[4];
  mma_m16n8k16_bf16(d, a4, b, c);
  mma_m16n8k32_e4m3(c, a4, b, d);
  fence_proxy_async_shared();
  tma_store_2d(&map, tile, 0, 0); tma_store_commit_group(); tma_store_wait_group_read<0>(); tma_prefetch_descriptor(&map);
  mbarrier_arrive(&bar); mbarrier_inval(&bar);
  float w64[32] = {}, w128[64] = {};
  const uint64_t da = wgmma_desc(tile, 16, 1024, WgmmaSwizzle::bytes128), db = wgmma_desc(tile + 512, 128, 256, WgmmaSwizzle::none);
  setmaxnreg<232, true>();
  wgmma_fence();
  wgmma_m64k32_e4m3<64>(w64, da, db, false);
  wgmma_m64k32_e4m3<128>(w128, da, db, true);
  wgmma_commit_group(); wgmma_wait_group<0>();
  wgmma_fence_operand(w64[0]);
  setmaxnreg<40, false>();
  out[threadIdx.x] = c[0] + a1[0] + a2[1] + w64[0] + w128[63];
}
