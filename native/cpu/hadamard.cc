#include "hadamard.h"

#include <cmath>
#include <vector>

#include "convert.h"
#include "simd.h"
#include "vec.h"

namespace dsn::cpu {

namespace {

/** In-place butterflies: after the stage of width h, x holds H_{2h} applied to each block of 2h. Plain
 *  C++ that GCC vectorises for the target it is compiled for (runOn: one body per SIMD path). */
struct Fwht {
  template <class V>
  static void run(float* x, int64_t n, float scale) {
    // The first three stages inside blocks of 8 (short strides the vectoriser cannot use).
    int64_t h = 1;
    if (n >= 8) {
      for (int64_t i = 0; i < n; i += 8) {
        float* b = x + i;
        float a0 = b[0] + b[1], a1 = b[0] - b[1], a2 = b[2] + b[3], a3 = b[2] - b[3];
        float a4 = b[4] + b[5], a5 = b[4] - b[5], a6 = b[6] + b[7], a7 = b[6] - b[7];
        float c0 = a0 + a2, c1 = a1 + a3, c2 = a0 - a2, c3 = a1 - a3;
        float c4 = a4 + a6, c5 = a5 + a7, c6 = a4 - a6, c7 = a5 - a7;
        b[0] = c0 + c4; b[1] = c1 + c5; b[2] = c2 + c6; b[3] = c3 + c7;
        b[4] = c0 - c4; b[5] = c1 - c5; b[6] = c2 - c6; b[7] = c3 - c7;
      }
      h = 8;
    }
    for (; h < n; h *= 2) {
      for (int64_t i = 0; i < n; i += 2 * h) {
        float* lo = x + i;
        float* hi = x + i + h;
        for (int64_t j = 0; j < h; ++j) {
          float a = lo[j], b = hi[j];
          lo[j] = a + b;
          hi[j] = a - b;
        }
      }
    }
    for (int64_t i = 0; i < n; ++i) x[i] *= scale;
  }
};

}  // namespace

void hadamard(const HadamardParams& p, ThreadPool& pool) {
  const Simd level = simdLevel();
  // The reference passes scale = dim ** -0.5 (a double) to a kernel taking a float.
  const float scale = float(1.0 / std::sqrt(double(p.dim)));
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> buf(size_t(p.dim));
    for (int64_t r = r0; r < r1; ++r) {
      loadF32(at(p.x, p.type, r * p.dim), p.type, p.dim, buf.data());
      runOn<Fwht>(level, buf.data(), p.dim, scale);
      storeF32(buf.data(), p.type, p.dim, at(p.out, p.type, r * p.dim));
    }
  }, p.dim >= 4096 ? 1 : 4096 / p.dim);
}

}  // namespace dsn::cpu
