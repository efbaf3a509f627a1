#include "gemm.h"

#include <vector>

#include "../runtime/errors.h"
#include "gemm_engine.h"

namespace dsn::cpu {

void fp8Gemm(const Fp8GemmParams& p, ThreadPool& pool) {
  gemmk::Problem q;
  q.M = p.M; q.N = p.N; q.K = p.K;
  q.a = p.a; q.aType = DType::f8e4m3; q.lda = p.K;
  q.aScales = p.aScales; q.ldas = p.K / gemmk::kBlockK;
  q.w = p.w; q.wType = DType::f8e4m3; q.ldw = p.K;
  q.wScales = p.wScales; q.ldws = p.K / gemmk::kBlockK;
  q.y = p.y; q.yType = p.yType; q.ldy = p.N;
  q.exactBlockSums = p.exactBlockSums;
  gemmk::run(&q, 1, pool);
}

void groupedFp8Gemm(const GroupedFp8GemmParams& p, ThreadPool& pool) {
  const int32_t* off = p.offsets;
  if (off[0] != 0) throwRange("offsets[0] must be 0 but received ", off[0]);
  for (int64_t e = 0; e < p.E; ++e)
    if (off[e + 1] < off[e])
      throwRange("offsets must be non-decreasing but received offsets[", e + 1, "] = ", off[e + 1], " after offsets[", e, "] = ", off[e]);
  if (off[p.E] != p.R) throwRange("offsets[", p.E, "] must equal the rows of a (", p.R, ") but received ", off[p.E]);
  const int64_t kBlocks = p.K / gemmk::kBlockK, nBlocks = (p.N + gemmk::kBlockK - 1) / gemmk::kBlockK;
  std::vector<gemmk::Problem> problems;
  for (int64_t e = 0; e < p.E; ++e) {
    const int64_t r0 = off[e], rows = off[e + 1] - off[e];
    if (rows == 0) continue;
    gemmk::Problem q;
    q.M = rows; q.N = p.N; q.K = p.K;
    q.a = p.a + r0 * p.K; q.aType = DType::f8e4m3; q.lda = p.K;
    q.aScales = p.aScales + r0 * kBlocks; q.ldas = kBlocks;
    q.w = p.w + e * p.N * p.K; q.wType = DType::f8e4m3; q.ldw = p.K;
    q.wScales = p.wScales + e * nBlocks * kBlocks; q.ldws = kBlocks;
    q.y = static_cast<char*>(p.y) + r0 * p.N * int64_t(dtypeSize(p.yType)); q.yType = p.yType; q.ldy = p.N;
    q.exactBlockSums = p.exactBlockSums;
    problems.push_back(q);
  }
  gemmk::run(problems.data(), int64_t(problems.size()), pool);
}

void maskedGroupedFp8Gemm(const MaskedGroupedFp8GemmParams& p, ThreadPool& pool) {
  for (int64_t e = 0; e < p.E; ++e)
    if (p.counts[e] < 0 || p.counts[e] > p.M) throwRange("counts[", e, "] = ", p.counts[e], " is out of range [0, ", p.M, "]");
  const int64_t kBlocks = p.K / gemmk::kBlockK, nBlocks = (p.N + gemmk::kBlockK - 1) / gemmk::kBlockK;
  const int64_t ySize = int64_t(dtypeSize(p.yType));
  std::vector<gemmk::Problem> problems;
  for (int64_t e = 0; e < p.E; ++e) {
    if (p.counts[e] == 0) continue;
    gemmk::Problem q;
    q.M = p.counts[e]; q.N = p.N; q.K = p.K;
    q.a = p.a + e * p.M * p.K; q.aType = DType::f8e4m3; q.lda = p.K;
    q.aScales = p.aScales + e * p.M * kBlocks; q.ldas = kBlocks;
    q.w = p.w + e * p.N * p.K; q.wType = DType::f8e4m3; q.ldw = p.K;
    q.wScales = p.wScales + e * nBlocks * kBlocks; q.ldws = kBlocks;
    q.y = static_cast<char*>(p.y) + e * p.M * p.N * ySize; q.yType = p.yType; q.ldy = p.N;
    q.exactBlockSums = p.exactBlockSums;
    problems.push_back(q);
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
