// CPU embedding lookup: rows of a table gathered by token id, converted to the output dtype.
#pragma once
#include <cstdint>

#include "../runtime/dtype.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct EmbeddingParams {
  const void* table = nullptr;  // [vocab, dim], dtype tableType (f32, bf16)
  DType tableType = DType::bf16;
  int64_t vocab = 0, dim = 0;
  const int32_t* ids = nullptr; // [count] i32, each in [0, vocab) (checked here)
  int64_t count = 0;
  void* out = nullptr;          // [count, dim], dtype outType (f32, bf16)
  DType outType = DType::bf16;
};
/** out[t] = table[ids[t]]; throws (before writing anything) when an id is outside the table. */
void embedding(const EmbeddingParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
