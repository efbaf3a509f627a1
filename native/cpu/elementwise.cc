#include "elementwise.h"

#include <cstring>

namespace dsn::cpu {

namespace {
// Elements per task: big enough that scheduling costs nothing, small enough to balance threads.
constexpr int64_t kBlock = 16384;
}  // namespace

void binary(const BinaryParams& p, ThreadPool& pool) {
  const bool stream = p.n * int64_t(dtypeSize(p.outType)) >= kStreamBytes;
  auto run = [&](auto op) {
    if (p.period == 0) {
      const int64_t blocks = (p.n + kBlock - 1) / kBlock;
      pool.parallelFor(blocks, [&](int64_t b0, int64_t b1) {
        const int64_t i0 = b0 * kBlock, i1 = b1 * kBlock < p.n ? b1 * kBlock : p.n;
        map2(at(p.a, p.aType, i0), p.aType, at(p.b, p.bType, i0), p.bType, at(p.out, p.outType, i0), p.outType, i1 - i0, op, stream);
      }, 1);
    } else {
      const int64_t rows = p.n / p.period;
      pool.parallelFor(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          map2(at(p.a, p.aType, r * p.period), p.aType, p.b, p.bType, at(p.out, p.outType, r * p.period), p.outType, p.period, op, stream);
      }, (kBlock + p.period - 1) / p.period);
    }
  };
  if (p.kind == BinaryKind::Add) run(AddOp{});
  else run(MulOp{});
}

void unary(const UnaryParams& p, ThreadPool& pool) {
  const bool stream = p.n * int64_t(dtypeSize(p.outType)) >= kStreamBytes;
  auto run = [&](auto op) {
    const int64_t blocks = (p.n + kBlock - 1) / kBlock;
    pool.parallelFor(blocks, [&](int64_t b0, int64_t b1) {
      const int64_t i0 = b0 * kBlock, i1 = b1 * kBlock < p.n ? b1 * kBlock : p.n;
      map1(at(p.x, p.xType, i0), p.xType, at(p.out, p.outType, i0), p.outType, i1 - i0, op, stream);
    }, 1);
  };
  if (p.kind == UnaryKind::Silu) run(SiluOp{});
  else run(ScaleOp{p.scale});
}

namespace {
/** n bytes (a multiple of 64) to a 64-byte-aligned d with non-temporal stores. SSE2, which every x86-64
 *  has: the write-combining buffers fill a line at a time whatever the store width. */
void streamCopy(char* d, const char* s, int64_t n) {
  for (int64_t i = 0; i < n; i += 64)
    for (int j = 0; j < 64; j += 16)
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + j), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + j)));
  _mm_sfence();
}
}  // namespace

void copyBytes(void* dst, const void* src, int64_t bytes, bool stream) {
  auto* d = static_cast<char*>(dst);
  auto* s = static_cast<const char*>(src);
  if (stream && bytes >= 256) {
    const int64_t head = (64 - int64_t(reinterpret_cast<uintptr_t>(d) & 63)) & 63;
    const int64_t body = (bytes - head) / 64 * 64;
    std::memcpy(d, s, size_t(head));
    streamCopy(d + head, s + head, body);
    std::memcpy(d + head + body, s + head + body, size_t(bytes - head - body));
    return;
  }
  std::memcpy(d, s, size_t(bytes));
}

void copyStrided(void* dst, int64_t dstStride, const void* src, int64_t srcStride, int64_t rows, int64_t rowBytes, ThreadPool& pool) {
  if (rows <= 0 || rowBytes <= 0) return;
  // Long rows are split into pieces of 256 KiB so that one big row still uses every thread.
  constexpr int64_t kPiece = 256 << 10;
  const int64_t pieces = (rowBytes + kPiece - 1) / kPiece;
  auto* d = static_cast<char*>(dst);
  auto* s = static_cast<const char*>(src);
  const bool stream = rows * rowBytes >= kStreamBytes;
  pool.parallelFor(rows * pieces, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t / pieces, off = (t % pieces) * kPiece;
      const int64_t len = rowBytes - off < kPiece ? rowBytes - off : kPiece;
      copyBytes(d + r * dstStride + off, s + r * srcStride + off, len, stream);
    }
  }, (kPiece + rowBytes - 1) / rowBytes);
}

void copyStrided(const CopyStridedParams& p, ThreadPool& pool) {
  copyStrided(p.dst, p.dstStride, p.src, p.srcStride, p.rows, p.rowBytes, pool);
}

}  // namespace dsn::cpu
