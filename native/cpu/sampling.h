// CPU token selection from logits: argmax and seeded sampling (temperature, top-k, top-p).
#pragma once
#include <cstdint>

#include "../params/sampling.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The params (native/params/sampling.h) are the ones cuda/sampling.cu takes.
using dsn::ArgmaxParams;
void argmax(const ArgmaxParams& p, ThreadPool& pool);

using dsn::SampleParams;
void sample(const SampleParams& p, ThreadPool& pool);

using dsn::RowSampling;
using dsn::SampleRowsParams;
/** Per-row penalties, greedy or seeded sampling with topK/topP/minP, and log-probabilities. */
void sampleRows(const SampleRowsParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
