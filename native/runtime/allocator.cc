#include "allocator.h"

#include <vector>

#include "errors.h"

namespace dsn {

size_t roundAllocation(size_t bytes) {
  if (bytes == 0) bytes = 1;
  size_t granule = bytes < (size_t(1) << 20) ? 512 : (size_t(64) << 10);
  return (bytes + granule - 1) / granule * granule;
}

void* CachingAllocator::allocate(size_t bytes, size_t* blockBytes) {
  if (bytes > (size_t(1) << 56)) throwRange("out of memory on ", device_, ": cannot allocate ", bytes, " bytes");
  size_t want = roundAllocation(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.lower_bound(want);
    if (it != cache_.end() && it->first <= 2 * want) {
      void* p = it->second;
      *blockBytes = it->first;
      stats_.cachedBytes -= it->first;
      cache_.erase(it);
      stats_.inUseBytes += *blockBytes;
      if (stats_.inUseBytes > stats_.peakBytes) stats_.peakBytes = stats_.inUseBytes;
      return p;
    }
  }
  std::string why;
  void* p = rawAlloc(want, &why);
  if (!p) {
    emptyCache();  // give cached blocks back and try once more
    p = rawAlloc(want, &why);
  }
  if (!p) throwRange("out of memory on ", device_, ": cannot allocate ", bytes, " bytes", why.empty() ? "" : " (" + why + ")");
  std::lock_guard<std::mutex> lock(mu_);
  *blockBytes = want;
  stats_.inUseBytes += want;
  if (stats_.inUseBytes > stats_.peakBytes) stats_.peakBytes = stats_.inUseBytes;
  return p;
}

void CachingAllocator::release(void* p, size_t blockBytes) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.inUseBytes -= blockBytes;
  stats_.cachedBytes += blockBytes;
  cache_.emplace(blockBytes, p);
}

void CachingAllocator::emptyCache() {
  std::vector<void*> blocks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& kv : cache_) blocks.push_back(kv.second);
    cache_.clear();
    stats_.cachedBytes = 0;
  }
  for (void* p : blocks) rawFree(p);
}

MemoryStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::resetPeak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peakBytes = stats_.inUseBytes;
}

}  // namespace dsn
