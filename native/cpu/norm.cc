#include "norm.h"

#include <cmath>
#include <vector>

#include "convert.h"

namespace dsn::cpu {

void rmsNorm(const RmsNormParams& p, ThreadPool& pool) {
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> x(p.dim), w(p.dim), tmp(p.dim);
    loadF32(p.weight, p.wType, p.dim, w.data());
    for (int64_t r = r0; r < r1; ++r) {
      loadF32(at(p.x, p.xType, r * p.dim), p.xType, p.dim, x.data());
      if (p.residual) {
        loadF32(at(p.residual, p.xType, r * p.dim), p.xType, p.dim, tmp.data());
        for (int64_t i = 0; i < p.dim; ++i) x[i] += tmp[i];
        storeF32(x.data(), p.xType, p.dim, at(p.residualOut, p.xType, r * p.dim));
      }
      float ss = 0;
      for (int64_t i = 0; i < p.dim; ++i) ss += x[i] * x[i];
      float inv = 1.0f / std::sqrt(ss / float(p.dim) + p.eps);
      for (int64_t i = 0; i < p.dim; ++i) tmp[i] = w[i] * (x[i] * inv);
      storeF32(tmp.data(), p.xType, p.dim, at(p.out, p.xType, r * p.dim));
    }
  }, 1);
}

}  // namespace dsn::cpu
