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
    queue_.push_back({op, std::move(fn), nullptr});
    profile_[op].queued += 1;  // counted when queued: a sync point's count is in before it settles
  }
  cv_.notify_one();
}

void Worker::pushRecorded(std::shared_ptr<const RecordedTasks> tasks) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({"graph", nullptr, std::move(tasks)});
    profile_["graph"].queued += 1;
  }
  cv_.notify_one();
}

bool Worker::runOp(const char* op, const std::function<void()>& fn, StreamError* err) {
  const uint64_t faults0 = io::guardedFaults();
  io::takeFaultsReported();
  try {
    fn();
  } catch (const Error& e) {
    *err = {e.kind, std::string(op) + ": " + e.what()};
    return false;
  } catch (const std::exception& e) {
    *err = {ErrorKind::Error, std::string(op) + ": " + e.what()};
    return false;
  } catch (...) {
    *err = {ErrorKind::Error, std::string(op) + ": unknown error"};
    return false;
  }
  if (io::guardedFaults() != faults0 && !io::takeFaultsReported()) {
    // The op read a memory-mapped file that shrank on disk: it read zeros there, so it failed.
    *err = {ErrorKind::Error, std::string(op) + ": " + io::faultReport()};
    return false;
  }
  return true;
}

namespace {
uint64_t nanosSince(std::chrono::steady_clock::time_point t0) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
}
}  // namespace

void Worker::loop() {
  std::vector<uint64_t> opNs;  // a graph launch's per-op times, merged into the profile at its end
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
    StreamError err, opErr;
    bool failed = false;
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t insideNs = 0;
    if (task.recorded) {
      opNs.assign(task.recorded->size(), 0);
      for (size_t i = 0; i < task.recorded->size(); ++i) {
        const StreamTask& op = (*task.recorded)[i];
        const auto o0 = std::chrono::steady_clock::now();
        if (!runOp(op.op, op.fn, &opErr) && !failed) {
          failed = true;
          err = opErr;
        }
        opNs[i] = nanosSince(o0);
        insideNs += opNs[i];
      }
    } else {
      failed = !runOp(task.op, task.fn, &err);
      task.fn = nullptr;  // drop captured storage before reporting idle
    }
    const uint64_t ns = nanosSince(t0);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& entry = profile_[task.op];
      entry.runs += 1;
      entry.ns += ns > insideNs ? ns - insideNs : 0;
      if (task.recorded)
        for (size_t i = 0; i < opNs.size(); ++i) {
          auto& e = profile_[(*task.recorded)[i].op];
          e.runs += 1;
          e.ns += opNs[i];
        }
      if (failed && !hasError_) {
        hasError_ = true;
        error_ = err;
      }
    }
    task.recorded = nullptr;  // a disposed graph's storages go back before this reports idle
    {
      std::lock_guard<std::mutex> lock(mu_);
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

std::vector<std::pair<std::string, OpProfile>> Worker::profile(bool reset) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, OpProfile>> out(profile_.begin(), profile_.end());
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

void CpuBackend::copyFromHost(void* dst, const void* src, size_t bytes) {
  refuseWhileCapturing("tensor: a copy from the host");
  std::memcpy(dst, src, bytes);
}

void CpuBackend::fill(std::shared_ptr<Storage> keep, void* dst, int value, size_t bytes) {
  enqueue("zeros", [keep, dst, value, bytes] { std::memset(dst, value, bytes); });
}

void CpuBackend::writeFromHost(std::shared_ptr<Storage> keep, void* dst, const void* src, size_t bytes) {
  refuseWhileCapturing("Tensor.write");
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
  refuseWhileCapturing("read");
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
  refuseWhileCapturing("synchronize");
  worker_.push("synchronize", [this, done] {
    StreamError err;
    bool failed = worker_.takeError(&err);
    done(failed ? &err : nullptr);
  });
}

void CpuBackend::enqueue(const char* op, std::function<void()> fn) { enqueue(op, std::move(fn), {}); }

void CpuBackend::enqueue(const char* op, std::function<void()> fn, std::vector<std::shared_ptr<Storage>> keep) {
  if (capturing_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(graphMu_);
    if (capturing_.load(std::memory_order_relaxed) && captureThread_ == std::this_thread::get_id()) {
      recording_.push_back({op, std::move(fn)});
      for (auto& s : keep) {
        if (!s) continue;
        for (auto& a : captureAllocations_)
          if (a.first == s) ++a.second;
        recordingKeep_.push_back(std::move(s));
      }
      return;
    }
  }
  if (keep.empty()) {
    worker_.push(op, std::move(fn));
    return;
  }
  worker_.push(op, [keep = std::move(keep), fn = std::move(fn)] { fn(); });
}

std::shared_ptr<Storage> CpuBackend::allocate(size_t bytes) {
  if (capturing_.load(std::memory_order_acquire) && bytes > 0) {
    std::lock_guard<std::mutex> lock(graphMu_);
    if (capturing_.load(std::memory_order_relaxed) && captureThread_ == std::this_thread::get_id()) {
      for (auto& a : captureAllocations_)
        if (a.first->bytes == bytes && a.first.use_count() == a.second + 1) return a.first;  // dead: reuse
      auto s = Backend::allocate(bytes);
      captureAllocations_.emplace_back(s, 0);
      return s;
    }
  }
  return Backend::allocate(bytes);
}

bool CpuBackend::capturingHere() const {
  if (!capturing_.load(std::memory_order_acquire)) return false;
  std::lock_guard<std::mutex> lock(graphMu_);
  return capturing_.load(std::memory_order_relaxed) && captureThread_ == std::this_thread::get_id();
}

void CpuBackend::refuseWhileCapturing(const char* what) {
  if (!capturingHere()) return;
  std::string message = cat(what, ": cpu is capturing a graph; a captured step may only queue kernels (no host copies, reads or synchronize)");
  {
    std::lock_guard<std::mutex> lock(graphMu_);
    if (captureFailure_.empty()) captureFailure_ = message;
  }
  throwError(message);
}

void CpuBackend::beginCapture() {
  std::lock_guard<std::mutex> lock(graphMu_);
  if (capturing_.load()) throwError("graph: cpu is already capturing a graph");
  recording_.clear();
  recordingKeep_.clear();
  captureAllocations_.clear();
  captureFailure_.clear();
  captureThread_ = std::this_thread::get_id();
  capturing_.store(true, std::memory_order_release);
}

int CpuBackend::endCapture() {
  auto graph = std::make_shared<Graph>();
  std::string failure;
  {
    std::lock_guard<std::mutex> lock(graphMu_);
    if (!capturing_.load() || captureThread_ != std::this_thread::get_id()) throwError("graph: cpu is not capturing a graph");
    capturing_.store(false, std::memory_order_release);
    graph->tasks.swap(recording_);
    graph->keep.swap(recordingKeep_);
    captureAllocations_.clear();
    failure.swap(captureFailure_);
  }
  // A failed capture's closures (and the storages they hold) are dropped here: nothing ran.
  if (!failure.empty()) throwError("graph: the capture on cpu failed: ", failure);
  std::lock_guard<std::mutex> lock(graphMu_);
  const int id = nextGraph_++;
  graphs_[id] = std::move(graph);
  return id;
}

void CpuBackend::launchGraph(int id) {
  refuseWhileCapturing("graph launch");
  std::shared_ptr<const RecordedTasks> tasks;
  {
    std::lock_guard<std::mutex> lock(graphMu_);
    auto it = graphs_.find(id);
    if (it == graphs_.end()) throwError("graph: no graph ", id, " on cpu (disposed?)");
    tasks = std::shared_ptr<const RecordedTasks>(it->second, &it->second->tasks);  // holds the whole graph
  }
  worker_.pushRecorded(std::move(tasks));
}

void CpuBackend::destroyGraph(int id) {
  std::shared_ptr<const Graph> graph;
  {
    std::lock_guard<std::mutex> lock(graphMu_);
    auto it = graphs_.find(id);
    if (it == graphs_.end()) return;
    graph = std::move(it->second);
    graphs_.erase(it);
  }
  // Dropped outside the lock: when no launch is queued, the storages go back to the allocator now.
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
