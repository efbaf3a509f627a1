#include "gemm.h"

#include <vector>

#include "../runtime/errors.h"
#include "gemm_engine.h"

namespace dsn::cpu {

namespace {

/** Throws unless offsets (E + 1 entries) start at 0, never decrease and end at R. */
void checkOffsets(const int32_t* off, int64_t E, int64_t R) {
  if (off[0] != 0) throwRange("offsets[0] must be 0 but received ", off[0]);
  for (int64_t e = 0; e < E; ++e)
    if (off[e + 1] < off[e])
      throwRange("offsets must be non-decreasing but received offsets[", e + 1, "] = ", off[e + 1], " after offsets[", e, "] = ", off[e]);
  if (off[E] != R) throwRange("offsets[", E, "] must equal the rows of a (", R, ") but received ", off[E]);
}

/** The FP8 product of rows [r0, r0 + rows) of a with one weight [N, K] (ldw = K), written to columns
 *  [col0, col0 + N) of y (ldy columns). */
gemmk::Problem fp8Problem(const uint8_t* a, const float* aScales, int64_t r0, int64_t rows, const uint8_t* w, const float* wScales,
                          int64_t N, int64_t K, void* y, DType yType, int64_t ldy, int64_t col0, bool exact) {
  const int64_t kBlocks = K / gemmk::kBlockK;
  gemmk::Problem q;
  q.M = rows; q.N = N; q.K = K;
  q.a = a + r0 * K; q.aType = DType::f8e4m3; q.lda = K;
  q.aScales = aScales + r0 * kBlocks; q.ldas = kBlocks;
  q.w = w; q.wType = DType::f8e4m3; q.ldw = K;
  q.wScales = wScales; q.ldws = kBlocks;
  q.y = static_cast<char*>(y) + (r0 * ldy + col0) * int64_t(dtypeSize(yType)); q.yType = yType; q.ldy = ldy;
  q.exactBlockSums = exact;
  return q;
}

}  // namespace

void fp8Gemm(const Fp8GemmParams& p, ThreadPool& pool) {
  const gemmk::Problem q = fp8Problem(p.a, p.aScales, 0, p.M, p.w, p.wScales, p.N, p.K, p.y, p.yType, p.N, 0, p.exactBlockSums);
  gemmk::run(&q, 1, pool);
}

void groupedFp8Gemm(const GroupedFp8GemmParams& p, ThreadPool& pool) {
  checkOffsets(p.offsets, p.E, p.R);
  const int64_t kBlocks = p.K / gemmk::kBlockK, nBlocks = (p.N + gemmk::kBlockK - 1) / gemmk::kBlockK;
  std::vector<gemmk::Problem> problems;
  for (int64_t e = 0; e < p.E; ++e) {
    const int64_t r0 = p.offsets[e], rows = p.offsets[e + 1] - p.offsets[e];
    if (rows == 0) continue;
    problems.push_back(fp8Problem(p.a, p.aScales, r0, rows, p.w + e * p.N * p.K, p.wScales + e * nBlocks * kBlocks, p.N, p.K, p.y, p.yType,
                                  p.N, 0, p.exactBlockSums));
  }
  gemmk::run(problems.data(), int64_t(problems.size()), pool);
}

void fp8GemmParts(const Fp8GemmPartsParams& p, ThreadPool& pool) {
  const Fp8WeightParts& w = p.w;
  if (p.offsets) checkOffsets(p.offsets, w.E, p.M);
  std::vector<gemmk::Problem> problems;
  for (int64_t e = 0; e < w.E; ++e) {
    const int64_t r0 = p.offsets ? p.offsets[e] : 0, rows = p.offsets ? p.offsets[e + 1] - p.offsets[e] : p.M;
    if (rows == 0) continue;
    for (int64_t part = 0, col0 = 0; part < w.P; col0 += w.rows[part], ++part)
      problems.push_back(fp8Problem(p.a, p.aScales, r0, rows, w.w[e * w.P + part], w.scales[e * w.P + part], w.rows[part], w.K, p.y,
                                    p.yType, w.N, col0, p.exactBlockSums));
  }
  gemmk::run(problems.data(), int64_t(problems.size()), pool);
}

void maskedGroupedFp8Gemm(const MaskedGroupedFp8GemmParams& p, ThreadPool& pool) {
  for (int64_t e = 0; e < p.E; ++e)
    if (p.counts[e] < 0 || p.counts[e] > p.M) throwRange("counts[", e, "] = ", p.counts[e], " is out of range [0, ", p.M, "]");
  const int64_t kBlocks = p.K / gemmk::kBlockK, nBlocks = (p.N + gemmk::kBlockK - 1) / gemmk::kBlockK;
  std::vector<gemmk::Problem> problems;
  for (int64_t e = 0; e < p.E; ++e) {
    if (p.counts[e] == 0) continue;
    // Expert e's slots are rows e·M … of a and y.
    problems.push_back(fp8Problem(p.a, p.aScales, e * p.M, p.counts[e], p.w + e * p.N * p.K, p.wScales + e * nBlocks * kBlocks, p.N, p.K,
                                  p.y, p.yType, p.N, 0, p.exactBlockSums));
  }
  gemmk::run(problems.data(), int64_t(problems.size()), pool);
}

void gemm(const GemmParams& p, ThreadPool& pool) {
  gemmk::Problem q;
  q.M = p.M; q.N = p.N; q.K = p.K;
  q.a = p.x; q.aType = p.xType; q.lda = p.K;
  q.w = p.w; q.wType = p.wType; q.ldw = p.K;
  q.y = p.y; q.yType = p.yType; q.ldy = p.N;
  gemmk::run(&q, 1, pool);
}

void bmmHeads(const BmmHeadsParams& p, ThreadPool& pool) {
  std::vector<gemmk::Problem> problems(size_t(p.H));
  const size_t xs = dtypeSize(p.xType), ws = dtypeSize(p.wType), ys = dtypeSize(p.yType);
  for (int64_t h = 0; h < p.H; ++h) {
    gemmk::Problem& q = problems[size_t(h)];
    q.M = p.T; q.N = p.B; q.K = p.A;
    q.a = static_cast<const char*>(p.x) + h * p.A * xs; q.aType = p.xType; q.lda = p.H * p.A;
    q.w = static_cast<const char*>(p.w) + h * p.A * p.B * ws; q.wType = p.wType; q.ldw = p.B; q.wKN = true;
    q.y = static_cast<char*>(p.y) + h * p.B * ys; q.yType = p.yType; q.ldy = p.H * p.B;
  }
  gemmk::run(problems.data(), p.H, pool);
}

bool setGemmBf16Dot(bool enabled) { return gemmk::setBf16Dot(enabled); }
bool setGemmBatchInvariant(bool enabled) { return gemmk::setBatchInvariant(enabled); }

}  // namespace dsn::cpu
