#include "latent_cache.h"

#include <cstring>
#include <vector>

#include "cache.h"
#include "convert.h"
#include "quant.h"

namespace dsn::cpu {

void latentCacheWrite(const LatentCacheWriteParams& p, ThreadPool& pool) {
  checkSlots(p.slots, p.tokens, p.numSlots);
  if (p.tokens == 0) return;
  const LatentCacheLayout& L = p.layout;
  // Quantise with actQuant itself, so the cached codes are bit for bit what it gives on every path.
  std::vector<uint8_t> codes(size_t(p.tokens * L.latent));
  std::vector<float> scales(size_t(p.tokens * L.groups()));
  ActQuantParams q;
  q.x = p.latent; q.xType = L.ropeType; q.codes = codes.data(); q.scales = scales.data();
  q.rows = p.tokens; q.K = L.latent; q.blockSize = kLatentGroup; q.ue8m0 = p.ue8m0;
  actQuant(q, pool);
  // One thread, in order of t (a repeated slot keeps the last row, as pagedWrite).
  const int64_t ropeBytes = L.dr * int64_t(dtypeSize(L.ropeType));
  for (int64_t t = 0; t < p.tokens; ++t) {
    uint8_t* row = p.cache + int64_t(p.slots[t]) * L.rowBytes();
    std::memcpy(row, codes.data() + t * L.latent, size_t(L.latent));
    std::memcpy(row + L.scalesOffset(), scales.data() + t * L.groups(), size_t(4 * L.groups()));
    std::memcpy(row + L.ropeOffset(), static_cast<const char*>(p.kPe) + t * ropeBytes, size_t(ropeBytes));
  }
}

void latentRowDequant(const LatentCacheLayout& L, const uint8_t* row, void* out) {
  const float* lut = e4m3Values();
  float buf[kLatentGroup];
  const size_t es = dtypeSize(L.ropeType);
  for (int64_t g = 0; g < L.groups(); ++g) {
    float s;
    std::memcpy(&s, row + L.scalesOffset() + 4 * g, 4);
    const uint8_t* c = row + g * kLatentGroup;
    for (int64_t i = 0; i < kLatentGroup; ++i) buf[i] = lut[c[i]] * s;
    storeF32(buf, L.ropeType, kLatentGroup, static_cast<char*>(out) + g * kLatentGroup * es);
  }
  std::memcpy(static_cast<char*>(out) + L.latent * es, row + L.ropeOffset(), size_t(L.dr) * es);
}

void latentCacheRead(const LatentCacheReadParams& p, ThreadPool& pool) {
  checkSlots(p.slots, p.count, p.numSlots);
  const LatentCacheLayout& L = p.layout;
  const int64_t outBytes = (L.latent + L.dr) * int64_t(dtypeSize(L.ropeType));
  pool.parallelFor(p.count, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
      latentRowDequant(L, p.cache + int64_t(p.slots[s]) * L.rowBytes(), static_cast<char*>(p.out) + s * outBytes);
  }, 64);
}

}  // namespace dsn::cpu
