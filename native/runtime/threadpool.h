// The intra-op thread pool: the CPU stream's worker thread calls parallelFor, which splits
// [0, n) into chunks taken by the caller and (threads - 1) helper threads.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dsn {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  int threads() const { return threads_; }
  /** Runs fn(begin, end) over [0, n) in chunks of at least `grain`; rethrows the first error. */
  void parallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

 private:
  void helperLoop();
  void runChunks();
  int threads_;
  std::vector<std::thread> helpers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  // The job in flight.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  int active_ = 0;
  // Mirrors of generation_ and active_ read without the lock: helpers and the caller spin on them
  // briefly before sleeping, since a futex wake-up costs more than most ops of a decode step.
  std::atomic<uint64_t> published_{0};
  std::atomic<int> running_{0};
  std::exception_ptr error_;
};

/** Physical cores of this machine (hyper-threads not counted), at least 1. */
int physicalCores();
/** Threads the CPU backend uses: DEEPSEEK_NATIVE_THREADS when set, else physicalCores(). */
int configuredThreads();

}  // namespace dsn
