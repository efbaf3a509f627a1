// CUDA paged cache: pagedWrite / pagedGather (rows by slot) and the FP8 latent cache
// (latentCacheWrite / latentCacheRead, the layout of native/cpu/latent_cache.h). The same params and
// contracts as the CPU ops (native/cpu/cache.h, native/cpu/latent_cache.h), bit for bit: a repeated
// slot keeps the last row written to it; a slot outside the cache raises the stream's error word
// (slotOutOfRange) and a write with one writes nothing, as on the CPU.
#pragma once
#include <string>

#include "../native/params/cache.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

/** Each launches on l.stream and returns "" or the launch error. */
std::string pagedWriteLaunch(const PagedWriteParams& p, const CudaLaunch& l);
std::string pagedGatherLaunch(const PagedGatherParams& p, const CudaLaunch& l);
std::string latentCacheWriteLaunch(const LatentCacheWriteParams& p, const CudaLaunch& l);
std::string latentCacheReadLaunch(const LatentCacheReadParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
