#include "cast.h"

#include "convert.h"

namespace dsn::cpu {

void cast(const CastParams& p, ThreadPool& pool) {
  constexpr int64_t kBlock = 4096;
  int64_t blocks = (p.n + kBlock - 1) / kBlock;
  pool.parallelFor(blocks, [&](int64_t b0, int64_t b1) {
    float buf[kBlock];
    for (int64_t b = b0; b < b1; ++b) {
      int64_t i0 = b * kBlock, len = p.n - i0 < kBlock ? p.n - i0 : kBlock;
      loadF32(at(p.x, p.from, i0), p.from, len, buf);
      storeF32(buf, p.to, len, at(p.y, p.to, i0));
    }
  }, 4);
}

}  // namespace dsn::cpu
