#include "threadpool.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <utility>

namespace dsn {

ThreadPool::ThreadPool(int threads) : threads_(threads < 1 ? 1 : threads) {
  for (int i = 1; i < threads_; ++i) helpers_.emplace_back([this] { helperLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : helpers_) t.join();
}

void ThreadPool::runChunks() {
  for (;;) {
    int64_t begin = next_.fetch_add(chunk_);
    if (begin >= n_) return;
    int64_t end = begin + chunk_ < n_ ? begin + chunk_ : n_;
    try {
      (*fn_)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_);
    }
  }
}

namespace {
// About 50 µs of polling (a pause is ~40-140 cycles) before a thread blocks.
constexpr int kSpinIterations = 4000;
inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

void ThreadPool::helperLoop() {
  uint64_t seen = 0;
  for (;;) {
    for (int i = 0; i < kSpinIterations && published_.load(std::memory_order_acquire) == seen; ++i) cpuRelax();
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    runChunks();
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.fetch_sub(1, std::memory_order_release);
      if (--active_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::parallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (threads_ == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  // About 4 chunks per thread balances uneven rows without much scheduling cost.
  int64_t chunk = (n + int64_t(threads_) * 4 - 1) / (int64_t(threads_) * 4);
  if (chunk < grain) chunk = grain;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    chunk_ = chunk;
    next_.store(0);
    error_ = nullptr;
    active_ = threads_ - 1;
    running_.store(threads_ - 1, std::memory_order_relaxed);
    ++generation_;
    published_.store(generation_, std::memory_order_release);
  }
  wake_.notify_all();
  runChunks();
  for (int i = 0; i < kSpinIterations && running_.load(std::memory_order_acquire) != 0; ++i) cpuRelax();
  std::exception_ptr err;
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return active_ == 0; });
    err = std::exchange(error_, nullptr);
    fn_ = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

int physicalCores() {
  std::set<std::pair<std::string, std::string>> cores;
  for (int cpu = 0; cpu < 4096; ++cpu) {
    std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream core(base + "core_id"), pkg(base + "physical_package_id");
    if (!core) {
      if (cpu > 0) break;
      continue;
    }
    std::string c, p;
    core >> c;
    pkg >> p;
    cores.insert({p, c});
  }
  unsigned logical = std::thread::hardware_concurrency();
  int n = cores.empty() ? int(logical) : int(cores.size());
  return n < 1 ? 1 : n;
}

int configuredThreads() {
  if (const char* env = std::getenv("DEEPSEEK_NATIVE_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 1024) return int(v);
  }
  return physicalCores();
}

}  // namespace dsn
