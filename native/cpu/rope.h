// CPU rotary position embedding (the reference's apply_rotary_emb): pairs of dims rotated by the
// angle of the token's position, in f32, rounded to x's dtype; the dims outside the rotary range
// are copied.
#pragma once
#include <cstdint>

#include "../params/rope.h"
#include "../runtime/threadpool.h"

namespace dsn::cpu {

// The params (native/params/rope.h) are the ones cuda/rope.cu takes.
using dsn::RopeParams;

void rope(const RopeParams& p, ThreadPool& pool);

}  // namespace dsn::cpu
