// CPU MLA attention over one sequence (prefill, the non-absorbed MHA form) and over the paged latent
// cache (decode, the absorbed MQA form). Scores and softmax in f32 (or, with bf16Scores, the scores
// rounded to bf16 where the bf16 reference's einsums round them), probabilities rounded to the
// activation dtype before the product with V (as the reference's `scores.type_as(x)`), f32
// accumulation, output rounded to the activation dtype. A query that sees no key gets zeros.
#pragma once
#include <cstdint>

#include "../params/attention.h"
#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

void mlaPrefill(const MlaPrefillParams& p, ThreadPool& pool);

void mlaDecode(const MlaDecodeParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
