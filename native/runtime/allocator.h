// A caching allocator per device: freed blocks go to a cache keyed by size and are handed out again
// for requests they fit (at most twice the size asked for), so a forward pass that allocates the
// same shapes every step stops calling the system allocator after its first step.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace dsn {

struct MemoryStats {
  uint64_t inUseBytes = 0;   // bytes in live blocks
  uint64_t cachedBytes = 0;  // bytes held in the cache, free for reuse
  uint64_t peakBytes = 0;    // largest inUseBytes seen since start or the last resetPeak()
};

class CachingAllocator {
 public:
  explicit CachingAllocator(std::string deviceName) : device_(std::move(deviceName)) {}
  virtual ~CachingAllocator() = default;
  /** Returns a block of at least `bytes` (its real size in *blockBytes); throws a RangeError naming
   *  the device and the bytes asked for when the device has no memory left. */
  void* allocate(size_t bytes, size_t* blockBytes);
  void release(void* p, size_t blockBytes);
  /** Frees every cached block back to the system. */
  void emptyCache();
  MemoryStats stats();
  void resetPeak();

  // Private pools, for captured graphs. A graph replays the kernels it captured with the addresses
  // they had, so the blocks its ops allocated while capturing must stay its own for as long as it
  // lives: no later allocation may be handed one, or a replay would overwrite that tensor.
  /** Routes every allocation into a new private pool until endPool(); returns the pool's id. Blocks
   *  released while the pool is open go back to it, so ops within the capture reuse them. */
  int beginPool();
  void endPool();
  /** The graph is gone: each of the pool's blocks returns to the shared cache once released. */
  void retirePool(int id);
  const std::string& device() const { return device_; }

 protected:
  /** nullptr when out of memory, with the system's reason in *why ("" when it gives none); throws
   *  a dsn::Error for any other failure (a CUDA context broken by an earlier kernel). */
  virtual void* rawAlloc(size_t bytes, std::string* why) = 0;
  virtual void rawFree(void* p) = 0;

 private:
  std::string device_;
  std::mutex mu_;
  std::multimap<size_t, void*> cache_;
  MemoryStats stats_;
  std::map<int, std::multimap<size_t, void*>> pools_;  // live private pools: their free blocks
  std::map<void*, int> poolOf_;  // every block a private pool owns (its pool may be retired since)
  int openPool_ = -1, nextPool_ = 1;
  /** A free block of at least `want` from `cache` (at most twice that), or nullptr. Holds mu_. */
  void* takeCached(std::multimap<size_t, void*>& cache, size_t want, size_t* blockBytes);
};

/** Rounds a request up to the allocator's granule (512 B below 1 MiB, 64 KiB above). */
size_t roundAllocation(size_t bytes);

}  // namespace dsn
