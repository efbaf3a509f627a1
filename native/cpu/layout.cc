#include "layout.h"

#include <cstring>

namespace dsn::cpu {

void transpose(const TransposeParams& p, ThreadPool& pool) {
  const int64_t rowBytes = p.inner * p.elemBytes;
  // One task per (outer, j) output slab: y[o, j, m, i, :] = x[o, i, m, j, :].
  pool.parallelFor(p.outer * p.b, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / p.b, j = t % p.b;
      for (int64_t m = 0; m < p.mid; ++m)
        for (int64_t i = 0; i < p.a; ++i) {
          const int64_t src = (((o * p.a + i) * p.mid + m) * p.b + j) * rowBytes;
          const int64_t dst = (((o * p.b + j) * p.mid + m) * p.a + i) * rowBytes;
          std::memcpy(static_cast<char*>(p.y) + dst, static_cast<const char*>(p.x) + src, size_t(rowBytes));
        }
    }
  });
}

}  // namespace dsn::cpu
