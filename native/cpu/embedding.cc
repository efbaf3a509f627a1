#include "embedding.h"

#include "../runtime/errors.h"
#include "convert.h"

namespace dsn::cpu {

void embedding(const EmbeddingParams& p, ThreadPool& pool) {
  for (int64_t t = 0; t < p.count; ++t)
    if (p.ids[t] < 0 || p.ids[t] >= p.vocab)
      throwRange("token id ", p.ids[t], " at position ", t, " is outside the table of ", p.vocab, " rows");
  // Rows of a few KiB each: group enough of them per task to amortise scheduling.
  const int64_t grain = (16384 + p.dim - 1) / (p.dim > 0 ? p.dim : 1);
  const bool stream = p.count * p.dim * int64_t(dtypeSize(p.outType)) >= kStreamBytes;
  pool.parallelFor(p.count, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      convert(at(p.table, p.tableType, int64_t(p.ids[t]) * p.dim), p.tableType, at(p.out, p.outType, t * p.dim), p.outType, p.dim, stream);
  }, grain);
}

}  // namespace dsn::cpu
