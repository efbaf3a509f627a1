// CPU layout copies: transpose of two dimensions of a contiguous tensor (any dtype).
#pragma once
#include <cstdint>

#include "../params/elementwise.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The params (native/params/elementwise.h) are the ones cuda/elementwise.cu takes.
using dsn::TransposeParams;

void transpose(const TransposeParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
