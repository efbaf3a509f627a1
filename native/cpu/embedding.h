// CPU embedding lookup: rows of a table gathered by token id, converted to the output dtype.
#pragma once
#include <cstdint>

#include "../params/moe.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

using dsn::EmbeddingParams;  // native/params/moe.h, shared with cuda/embedding.cu

/** out[t] = table[ids[t]]; throws (before writing anything) when an id is outside the table. */
void embedding(const EmbeddingParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
