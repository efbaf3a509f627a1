#include "device.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "../io/mapguard.h"

namespace dsn {

// ---------------- Worker ----------------

Worker::Worker(std::string name) : name_(std::move(name)), thread_([this] { loop(); }) {}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Worker::push(const char* op, std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({op, std::move(fn)});
  }
  cv_.notify_one();
}

void Worker::loop() {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    StreamError err;
    bool failed = false;
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t faults0 = io::guardedFaults();
    io::takeFaultsReported();
    try {
      task.fn();
    } catch (const Error& e) {
      failed = true;
      err = {e.kind, std::string(task.op) + ": " + e.what()};
    } catch (const std::exception& e) {
      failed = true;
      err = {ErrorKind::Error, std::string(task.op) + ": " + e.what()};
    } catch (...) {
      failed = true;
      err = {ErrorKind::Error, std::string(task.op) + ": unknown error"};
    }
    if (!failed && io::guardedFaults() != faults0 && !io::takeFaultsReported()) {
      // The op read a memory-mapped file that shrank on disk: it read zeros there, so it failed.
      failed = true;
      err = {ErrorKind::Error, std::string(task.op) + ": " + io::faultReport()};
    }
    task.fn = nullptr;  // drop captured storage before reporting idle
    const uint64_t ns = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& entry = profile_[task.op];
      entry.first += 1;
      entry.second += ns;
      if (failed && !hasError_) {
        hasError_ = true;
        error_ = err;
      }
      busy_ = false;
      if (queue_.empty()) idle_.notify_all();
    }
  }
}

bool Worker::takeError(StreamError* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!hasError_) return false;
  *out = error_;
  hasError_ = false;
  return true;
}

std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> Worker::profile(bool reset) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> out(profile_.begin(), profile_.end());
  if (reset) profile_.clear();
  return out;
}

void Worker::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

// ---------------- Storage ----------------

Storage::~Storage() {
  if (data && !owner && backend) backend->allocator().release(data, blockBytes);
}

std::shared_ptr<Storage> Backend::allocate(size_t bytes) {
  auto s = std::make_shared<Storage>();
  s->backend = this;
  s->bytes = bytes;
  s->data = allocator().allocate(bytes, &s->blockBytes);
  return s;
}

// ---------------- CPU backend ----------------

namespace {
class CpuAllocator : public CachingAllocator {
 public:
  CpuAllocator() : CachingAllocator("cpu") {}
  ~CpuAllocator() override { emptyCache(); }

 protected:
  void* rawAlloc(size_t bytes, std::string* why) override {
    void* p = nullptr;
    if (posix_memalign(&p, 64, bytes) != 0) {
      *why = "";
      return nullptr;
    }
    return p;
  }
  void rawFree(void* p) override { std::free(p); }
};

CpuAllocator& cpuAllocator() {
  static CpuAllocator* a = new CpuAllocator();  // never destroyed: storages may outlive statics
  return *a;
}
}  // namespace

CpuBackend::CpuBackend() : pool_(configuredThreads()), worker_("cpu-stream") {}

CpuBackend& CpuBackend::get() {
  static CpuBackend* b = new CpuBackend();  // lives for the process, like the addon
  return *b;
}

CachingAllocator& CpuBackend::allocator() { return cpuAllocator(); }

void CpuBackend::copyFromHost(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

void CpuBackend::fill(std::shared_ptr<Storage> keep, void* dst, int value, size_t bytes) {
  worker_.push("zeros", [keep, dst, value, bytes] { std::memset(dst, value, bytes); });
}

void CpuBackend::writeFromHost(std::shared_ptr<Storage> keep, void* dst, const void* src, size_t bytes) {
  auto copy = std::make_shared<std::vector<uint8_t>>(static_cast<const uint8_t*>(src), static_cast<const uint8_t*>(src) + bytes);
  worker_.push("write", [keep, dst, copy] { std::memcpy(dst, copy->data(), copy->size()); });
}

namespace {
std::atomic<int> g_failHostAllocations{0};
}  // namespace

void failHostAllocations(int n) { g_failHostAllocations.store(n < 0 ? 0 : n); }

bool takeHostAllocationFailure() {
  int n = g_failHostAllocations.load();
  while (n > 0)
    if (g_failHostAllocations.compare_exchange_weak(n, n - 1)) return true;
  return false;
}

void CpuBackend::readToHost(std::shared_ptr<Storage> keep, const void* src, size_t bytes, ReadDone done) {
  worker_.push("read", [this, keep, src, bytes, done] {
    StreamError err;
    if (worker_.takeError(&err)) {
      done({}, &err);
      return;
    }
    std::vector<uint8_t> out;
    try {  // done runs on every path: a read whose host buffer cannot be allocated rejects
      if (takeHostAllocationFailure()) throw std::bad_alloc();
      out.resize(bytes);
    } catch (const std::bad_alloc&) {
      StreamError e{ErrorKind::Range, cat("read: out of host memory: cannot allocate ", bytes, " bytes for the result")};
      done({}, &e);
      return;
    }
    const uint64_t faults0 = io::guardedFaults();
    std::memcpy(out.data(), src, bytes);
    if (io::guardedFaults() != faults0) {  // the bytes came from a mapped file that shrank: zeros
      io::markFaultsReported();
      err = {ErrorKind::Error, "read: " + io::faultReport()};
      done({}, &err);
      return;
    }
    done(std::move(out), nullptr);
  });
}

void CpuBackend::synchronize(std::function<void(const StreamError*)> done) {
  worker_.push("synchronize", [this, done] {
    StreamError err;
    bool failed = worker_.takeError(&err);
    done(failed ? &err : nullptr);
  });
}

std::string CpuBackend::description() const {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) return line.substr(pos + 2);
    }
  }
  return "CPU";
}

uint64_t CpuBackend::totalMemoryBytes() const {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? uint64_t(pages) * uint64_t(size) : 0;
}

// ---------------- lookup ----------------

#ifndef DSN_WITH_CUDA
int cudaDeviceCount() { return 0; }
bool cudaCompiled() { return false; }
Backend* cudaBackend(int) { return nullptr; }
CudaStatus cudaStatus() {
  CudaStatus s;
  s.why = "this addon was built without CUDA";
  return s;
}
std::vector<CudaDeviceInfo> cudaDevices() { return {}; }
#else
Backend* cudaBackend(int index);  // native/runtime/cuda_backend.cc; throws for an unsupported device
#endif

DeviceId parseDevice(const std::string& s) {
  if (s == "cpu") return {DeviceType::CPU, 0};
  if (s == "cuda") return {DeviceType::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9) {
    int idx = 0;
    for (size_t i = 5; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') throwType("Expected device 'cpu', 'cuda' or 'cuda:N' but received '", s, "'");
      idx = idx * 10 + (s[i] - '0');
    }
    return {DeviceType::CUDA, idx};
  }
  throwType("Expected device 'cpu', 'cuda' or 'cuda:N' but received '", s, "'");
}

Backend& backendFor(const DeviceId& id) {
  if (id.type == DeviceType::CPU) return CpuBackend::get();
  if (!cudaCompiled()) throwRange("device ", id.name(), " is not available: this addon was built without CUDA");
  int n = cudaDeviceCount();
  if (id.index < 0 || id.index >= n) {
    std::string why = n == 0 ? cudaStatus().why : "";
    throwRange("device ", id.name(), " is not available: ", n, " CUDA device(s) found", why.empty() ? "" : " (" + why + ")");
  }
  return *cudaBackend(id.index);
}

}  // namespace dsn
