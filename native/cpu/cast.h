// CPU element-wise dtype conversion between f32, bf16, f16 and f8e4m3 (RNE, f8 saturating).
#pragma once
#include <cstdint>

#include "../params/cast.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

void cast(const CastParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
