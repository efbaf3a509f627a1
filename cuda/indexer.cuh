// CUDA indexerScores (SIMT; mma.sync e4m3 is future work): the lightning indexer's FP8 scores over the
// paged indexer-key cache, the contract of native/cpu/indexer.h: score[t, s] = kScales[s] ·
// Σ_h weights[t, h] · relu(q[t, h] · k[s]) for s <= qPos[t], −inf for the other columns. FP8 products
// are exact in f32 and summed in f32 (over d per head, then over heads), so the result differs from
// the CPU's only by summation order. A bad id sets the stream's error word.
#pragma once
#include <string>

#include "../native/params/indexer.h"
#include "../native/params/launch.h"

namespace dsn::cuda {

std::string indexerScoresLaunch(const IndexerScoresParams& p, const CudaLaunch& l);

}  // namespace dsn::cuda
