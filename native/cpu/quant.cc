#include "quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "convert.h"
#include "simd.h"

namespace dsn::cpu {

namespace {

constexpr float kFp8Max = 448.0f;
constexpr float kInvFp8Max = 1.0f / 448.0f;  // the f32 constant the reference multiplies by
constexpr float kAmaxFloor = 1e-4f;

/** The group scale from the group's amax (see actQuant). */
inline float groupScale(float amax, bool ue8m0) {
  amax = std::max(amax, kAmaxFloor);
  float s = amax * kInvFp8Max;
  if (ue8m0) {
    uint32_t b = f32Bits(s);
    uint32_t e = (b >> 23) & 0xffu;
    if (b & 0x7fffffu) ++e;
    s = bitsF32(e << 23);
  }
  return s;
}

/** Rows [r0, r1) of actQuant, one body for every path (blockSize a multiple of the lanes): the
 *  group's amax (|x| first: max returns its second operand for a NaN, so NaN elements are skipped, as
 *  the reference's fmaxf reduction does), its scale, then each x / s clamped to ±448 as the
 *  reference's kernel lowers it (fmaxf then fminf, which return the operand that is not NaN, so a NaN
 *  quotient becomes −448: max(q, lo) returns lo for a NaN q) and rounded to E4M3 as dtype.h rounds. */
template <DType XT>
struct QuantRows {
  template <class V>
  static void run(const ActQuantParams& p, int64_t r0, int64_t r1) {
    using F = typename V::F;
    constexpr int L = V::kLanes;
    const int64_t groups = p.K / p.blockSize;
    const F lo = V::set1(-kFp8Max), hi = V::set1(kFp8Max);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t base = r * p.K + g * p.blockSize;
        F m = V::zero();
        for (int64_t i = 0; i < p.blockSize; i += L) m = V::max(V::abs(load<V, XT>(p.x, base + i)), m);
        alignas(64) float lanes[L];
        V::toArray(lanes, m);
        float amax = 0.0f;
        for (int l = 0; l < L; ++l) amax = lanes[l] > amax ? lanes[l] : amax;
        const float s = groupScale(amax, p.ue8m0);
        p.scales[r * groups + g] = s;
        const F sv = V::set1(s);
        for (int64_t i = 0; i < p.blockSize; i += L)
          store<V, DType::f8e4m3>(p.codes, base + i, V::min(V::max(load<V, XT>(p.x, base + i) / sv, lo), hi));
      }
  }
};

}  // namespace

void actQuantRows(const ActQuantParams& p, int64_t r0, int64_t r1, Simd level) {
  // The widest path whose lanes divide the group.
  if (level == Simd::Avx512 && p.blockSize % Avx512::kLanes != 0) level = Simd::Avx2;
  if (level == Simd::Avx2 && p.blockSize % Avx2::kLanes != 0) level = Simd::Scalar;
  withFloatType(p.xType, [&](auto xt) { runOn<QuantRows<decltype(xt)::value>>(level, p, r0, r1); });
}

void actQuant(const ActQuantParams& p, ThreadPool& pool) {
  if (p.rows <= 0 || p.K <= 0) return;
  Simd level = simdLevel();
  int64_t grain = std::max<int64_t>(1, 16384 / p.K);
  pool.parallelFor(p.rows, [&](int64_t r0, int64_t r1) { actQuantRows(p, r0, r1, level); }, grain);
}

const float* e4m3Values() {
  static const std::vector<float> lut = [] {
    std::vector<float> t(256);
    for (int c = 0; c < 256; ++c) t[size_t(c)] = f8e4m3ToF32(uint8_t(c));
    return t;
  }();
  return lut.data();
}

void fp8Dequant(const Fp8DequantParams& p, ThreadPool& pool) {
  if (p.N <= 0 || p.K <= 0) return;
  const float* lut = e4m3Values();
  const int64_t kBlocks = (p.K + 127) / 128;
  int64_t grain = std::max<int64_t>(1, 16384 / p.K);
  pool.parallelFor(p.N, [&](int64_t n0, int64_t n1) {
    std::vector<float> row(p.K);
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* w = p.w + n * p.K;
      const float* s = p.scales + (n / 128) * kBlocks;
      for (int64_t k = 0; k < p.K; ++k) row[k] = lut[w[k]] * s[k >> 7];
      storeF32(row.data(), p.outType, p.K, at(p.out, p.outType, n * p.K));
    }
  }, grain);
}

}  // namespace dsn::cpu
