// A block-wide bitonic sort of a power-of-two list in shared memory (internal to cuda/): the index
// lists of the sparse attention kernels (ascending) and the chosen entries of topK (descending).
#pragma once
#include <cuda_runtime.h>

namespace dsn::cuda {

/** Sorts list[0, pad) in place, ascending or descending; `pad` a power of two. Every thread of the
 *  block calls it (it synchronises the block after each pass, and before returning). */
template <bool Descending, typename T>
__device__ void blockBitonicSort(T* list, int pad) {
  const int tid = threadIdx.x, threads = blockDim.x;
  for (int k = 2; k <= pad; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = tid; i < pad; i += threads) {
        const int o = i ^ j;
        if (o <= i) continue;
        const T x = list[i], y = list[o];
        // In a run whose bit k is clear the pair goes in the sort's order, else in the opposite.
        const bool inOrder = Descending ? !(x < y) : !(y < x);
        if (inOrder != ((i & k) == 0)) {
          list[i] = y;
          list[o] = x;
        }
      }
      __syncthreads();
    }
}

}  // namespace dsn::cuda
