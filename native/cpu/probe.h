// Roofline probes of this machine, measured at run time for the benchmarks: read bandwidth and
// f32 FMA peak on all intra-op threads, with the SIMD path the kernels use.
#pragma once
#include "../runtime/threadpool.h"

namespace dsn::cpu {

/** Best-of-`reps` read bandwidth over a buffer of `bytes`, in GB/s (1e9 bytes/s). */
double probeReadBandwidth(ThreadPool& pool, size_t bytes, int reps);
/** f32 FMA peak in GFLOP/s (an FMA counts 2 flops), over all threads. */
double probeFmaPeak(ThreadPool& pool);

}  // namespace dsn::cpu
