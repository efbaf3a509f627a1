// CPU layout copies: transpose of two dimensions of a contiguous tensor (any dtype).
#pragma once
#include <cstdint>

#include "../runtime/threadpool.h"

namespace dsn::cpu {

struct TransposeParams {
  const void* x = nullptr;  // [outer, a, mid, b, inner] elements of elemBytes
  void* y = nullptr;        // [outer, b, mid, a, inner]
  int64_t outer = 1, a = 1, mid = 1, b = 1, inner = 1;
  int64_t elemBytes = 4;
};
void transpose(const TransposeParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
