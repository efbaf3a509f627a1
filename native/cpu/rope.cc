#include "rope.h"

#include <vector>

#include "../runtime/errors.h"
#include "convert.h"
#include "simd.h"
#include "vec.h"

namespace dsn::cpu {

namespace {

/** Rotates the pairs of one row held in f32 (the reference's complex product). Plain C++ that GCC
 *  vectorises for the target it is compiled for (runOn: one body per SIMD path). */
struct Rotate {
  template <class V>
  static void run(float* x, const float* c, const float* s, int64_t half, bool interleaved) {
    if (interleaved) {
      for (int64_t i = 0; i < half; ++i) {
        float a = x[2 * i], b = x[2 * i + 1];
        float ac = a * c[i], bs = b * s[i], as = a * s[i], bc = b * c[i];
        x[2 * i] = ac - bs;
        x[2 * i + 1] = as + bc;
      }
    } else {
      float* y = x + half;
      for (int64_t i = 0; i < half; ++i) {
        float a = x[i], b = y[i];
        float ac = a * c[i], bs = b * s[i], as = a * s[i], bc = b * c[i];
        x[i] = ac - bs;
        y[i] = as + bc;
      }
    }
  }
};

}  // namespace

void rope(const RopeParams& p, ThreadPool& pool) {
  for (int64_t t = 0; t < p.tokens; ++t)
    if (p.positions[t] < 0 || p.positions[t] >= p.tableRows)
      throwRange("positions[", t, "] = ", p.positions[t], " is out of range [0, ", p.tableRows, ")");
  const Simd level = simdLevel();
  int64_t rows = p.tokens * p.heads;
  pool.parallelFor(rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> buf(size_t(p.dim));
    for (int64_t r = r0; r < r1; ++r) {
      int64_t pos = p.positions[r / p.heads];
      loadF32(at(p.x, p.type, r * p.dim), p.type, p.dim, buf.data());
      runOn<Rotate>(level, buf.data() + p.offset, p.cos + pos * p.half, p.sin + pos * p.half, p.half, p.interleaved);
      storeF32(buf.data(), p.type, p.dim, at(p.out, p.type, r * p.dim));
    }
  }, 16);
}

}  // namespace dsn::cpu
