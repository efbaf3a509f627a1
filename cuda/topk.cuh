// CUDA topK: the k largest scores of each row, by radix select. One block per row: four 8-bit
// histogram passes over the scores' order-preserving keys find the k-th largest key (the threshold),
// then one pass gathers every score above it and, of those equal to it, as many as are still needed.
//
// Tie rule (deterministic): among scores equal to the threshold the LOWEST INDICES are chosen. +0 and
// -0 are equal; every NaN ranks above +inf and NaNs are equal to each other. The CPU op instead
// reproduces torch.topk's implementation-defined choice among ties, so the two choose the same set
// whenever the k-th and (k+1)-th largest scores of a row differ (the usual case, except where relu
// cuts every head and many keys score exactly 0). The chosen indices are listed as the CPU lists them:
// descending score, then ascending index; -1 pads a row with fewer than k entries.
// k is limited to kTopKMaxK (the selection is sorted in shared memory).
#pragma once
#include <string>

#include "../native/params/indexer.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

constexpr int64_t kTopKMaxK = 16384;

std::string topKLaunch(const TopKParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
