#include "allocator.h"

#include <vector>

#include "errors.h"

namespace dsn {

size_t roundAllocation(size_t bytes) {
  if (bytes == 0) bytes = 1;
  size_t granule = bytes < (size_t(1) << 20) ? 512 : (size_t(64) << 10);
  return (bytes + granule - 1) / granule * granule;
}

void* CachingAllocator::takeCached(std::multimap<size_t, void*>& cache, size_t want, size_t* blockBytes) {
  auto it = cache.lower_bound(want);
  if (it == cache.end() || it->first > 2 * want) return nullptr;
  void* p = it->second;
  *blockBytes = it->first;
  stats_.cachedBytes -= it->first;
  cache.erase(it);
  stats_.inUseBytes += *blockBytes;
  if (stats_.inUseBytes > stats_.peakBytes) stats_.peakBytes = stats_.inUseBytes;
  return p;
}

void* CachingAllocator::allocate(size_t bytes, size_t* blockBytes) {
  if (bytes > (size_t(1) << 56)) throwRange("out of memory on ", device_, ": cannot allocate ", bytes, " bytes");
  size_t want = roundAllocation(bytes);
  int pool = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pool = openPool_;
    // A capture takes only its own pool's blocks (or new ones): a block of the shared cache may
    // belong to a tensor the caller still holds after the graph replays.
    if (void* p = takeCached(pool >= 0 ? pools_[pool] : cache_, want, blockBytes)) return p;
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
  if (pool >= 0) poolOf_[p] = pool;
  return p;
}

void CachingAllocator::release(void* p, size_t blockBytes) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.inUseBytes -= blockBytes;
  stats_.cachedBytes += blockBytes;
  auto owner = poolOf_.find(p);
  if (owner == poolOf_.end()) {
    cache_.emplace(blockBytes, p);
    return;
  }
  auto pool = pools_.find(owner->second);
  if (pool == pools_.end()) {  // its graph is gone: the block is everyone's again
    poolOf_.erase(owner);
    cache_.emplace(blockBytes, p);
    return;
  }
  pool->second.emplace(blockBytes, p);
}

int CachingAllocator::beginPool() {
  std::lock_guard<std::mutex> lock(mu_);
  if (openPool_ >= 0) throwError(device_, ": a graph capture is already under way");
  openPool_ = nextPool_++;
  pools_[openPool_];
  return openPool_;
}

void CachingAllocator::endPool() {
  std::lock_guard<std::mutex> lock(mu_);
  openPool_ = -1;
}

void CachingAllocator::retirePool(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto pool = pools_.find(id);
  if (pool == pools_.end()) return;
  if (openPool_ == id) openPool_ = -1;
  for (auto& [bytes, p] : pool->second) {  // released already: back to the shared cache now
    poolOf_.erase(p);
    cache_.emplace(bytes, p);
  }
  pools_.erase(pool);  // blocks still in use follow when released
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
