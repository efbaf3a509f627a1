#include "cast.h"

#include "convert.h"

namespace dsn::cpu {

void cast(const CastParams& p, ThreadPool& pool) {
  // Blocks of 64 KiB of f32 keep each thread streaming through contiguous memory.
  constexpr int64_t kBlock = 16384;
  int64_t blocks = (p.n + kBlock - 1) / kBlock;
  const bool stream = p.n * int64_t(dtypeSize(p.to)) >= kStreamBytes;
  pool.parallelFor(blocks, [&](int64_t b0, int64_t b1) {
    int64_t i0 = b0 * kBlock, i1 = b1 * kBlock < p.n ? b1 * kBlock : p.n;
    convert(at(p.x, p.from, i0), p.from, at(p.y, p.to, i0), p.to, i1 - i0, stream);
  }, 4);
}

}  // namespace dsn::cpu
