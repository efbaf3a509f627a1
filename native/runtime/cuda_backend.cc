// The CUDA Backend (compiled only by the cmake-js builds, with DSN_WITH_CUDA): a caching allocator
// over cudaMalloc, one non-blocking cudaStream_t per device, pinned staging for host copies, and a
// host worker that waits on events for reads and synchronisation.
//
// Everything that touches the stream is queued by the JavaScript thread, so the stream's order is
// the order of the calls: a read() sees the ops queued before it and none after it. The JavaScript
// thread never waits on the GPU: host data is copied into pinned memory and the device copy is
// queued; a read's bytes land in pinned memory and an event tells the host worker when.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "../../cuda/runtime.cuh"
#include "../ops/dispatch.h"
#include "../params/launch.h"
#include "cuda_arch.h"
#include "device.h"

namespace dsn {

namespace {

class CudaAllocator : public CachingAllocator {
 public:
  explicit CudaAllocator(int device) : CachingAllocator("cuda:" + std::to_string(device)), device_(device) {}

 protected:
  void* rawAlloc(size_t bytes, std::string* why) override {
    void* p = nullptr;
    std::string err = cuda::allocate(device_, bytes, &p);
    if (err.empty()) return p;
    if (err.rfind("cudaErrorMemoryAllocation", 0) == 0) {
      *why = err;
      return nullptr;
    }
    throwError("cuda:", device_, ": cannot allocate ", bytes, " bytes: ", err);
  }
  void rawFree(void* p) override { cuda::release(device_, p); }

 private:
  int device_;
};

/** Page-locked host memory for staging copies, shared by every device (pinned memory is portable). */
class PinnedAllocator : public CachingAllocator {
 public:
  PinnedAllocator() : CachingAllocator("pinned host memory") {}

 protected:
  void* rawAlloc(size_t bytes, std::string* why) override {
    void* p = nullptr;
    std::string err = cuda::allocateHost(bytes, &p);
    if (err.empty()) return p;
    if (err.rfind("cudaErrorMemoryAllocation", 0) == 0) {
      *why = err;
      return nullptr;
    }
    throwError("cannot allocate ", bytes, " bytes of pinned host memory: ", err);
  }
  void rawFree(void* p) override { cuda::releaseHost(p); }
};

PinnedAllocator& pinned() {
  static auto* a = new PinnedAllocator();  // lives for the process: callbacks may run late
  return *a;
}

/** A pinned block returned to the pool by a stream callback once the copy using it has run. */
struct PinnedBlock {
  void* data = nullptr;
  size_t blockBytes = 0;
  size_t bytes = 0;
};

// Uploads staged but not yet copied by the GPU. Above the cap, the JavaScript thread waits for the
// oldest to land rather than pin without bound (a checkpoint larger than host memory).
constexpr size_t kStageChunk = size_t(32) << 20;
constexpr size_t kStageCap = size_t(1) << 30;
std::mutex g_stageMu;
std::condition_variable g_stageCv;
size_t g_staged = 0;

void releaseStaged(void* arg) {
  auto* b = static_cast<PinnedBlock*>(arg);
  pinned().release(b->data, b->blockBytes);
  {
    std::lock_guard<std::mutex> lock(g_stageMu);
    g_staged -= b->bytes;
  }
  g_stageCv.notify_all();
  delete b;
}

std::string versionString(int v) { return v ? std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) : "none"; }

}  // namespace

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index), alloc_(index), host_("cuda-host-" + std::to_string(index)) {
    std::string err = cuda::createStream(index, &stream_);
    if (err.empty()) err = cuda::allocate(index, sizeof(DeviceErrorWord), reinterpret_cast<void**>(&errorWord_));
    if (err.empty()) err = cuda::memsetAsync(index, stream_, errorWord_, 0, sizeof(DeviceErrorWord));
    if (!err.empty()) throwError("cuda:", index, ": cannot create its stream: ", err);
  }
  DeviceId id() const override { return {DeviceType::CUDA, index_}; }
  CachingAllocator& allocator() override { return alloc_; }

  void copyFromHost(void* dst, const void* src, size_t bytes) override {
    refuseWhileCapturing("tensor: a copy from the host");
    for (size_t done = 0; done < bytes;) {
      const size_t n = std::min(kStageChunk, bytes - done);
      {
        std::unique_lock<std::mutex> lock(g_stageMu);
        g_stageCv.wait(lock, [&] { return g_staged == 0 || g_staged + n <= kStageCap; });
        g_staged += n;
      }
      auto* b = new PinnedBlock();
      b->bytes = n;
      try {
        b->data = pinned().allocate(n, &b->blockBytes);
      } catch (...) {
        unstage(b);
        throw;
      }
      std::memcpy(b->data, static_cast<const char*>(src) + done, n);
      std::string err = cuda::copyHostToDeviceAsync(index_, stream_, static_cast<char*>(dst) + done, b->data, n);
      if (!err.empty()) {
        unstage(b);
        throwError("tensor: copy to cuda:", index_, ": ", err);
      }
      err = cuda::hostCallback(index_, stream_, releaseStaged, b);
      if (!err.empty()) {
        // The copy may still read the block: leave it pinned (lost), but stop counting it as staged.
        {
          std::lock_guard<std::mutex> lock(g_stageMu);
          g_staged -= n;
        }
        g_stageCv.notify_all();
        delete b;
        throwError("tensor: copy to cuda:", index_, ": ", err);
      }
      noteOp("tensor");
      done += n;
    }
  }

  void fill(std::shared_ptr<Storage>, void* dst, int value, size_t bytes) override {
    std::string err = cuda::memsetAsync(index_, stream_, dst, value, bytes);
    if (!err.empty()) throwError("zeros: cuda:", index_, ": ", err);
    noteOp("zeros");
  }

  // Stream-ordered already: the staged copy runs after every op queued before it.
  void writeFromHost(std::shared_ptr<Storage>, void* dst, const void* src, size_t bytes) override { copyFromHost(dst, src, bytes); }

  void readToHost(std::shared_ptr<Storage> keep, const void* src, size_t bytes, ReadDone done) override {
    refuseWhileCapturing("read");
    queueSyncPoint("read", src, bytes, [done](std::vector<uint8_t>&& b, const StreamError* e) { done(std::move(b), e); });
  }

  void synchronize(std::function<void(const StreamError*)> done) override {
    refuseWhileCapturing("synchronize");
    queueSyncPoint("synchronize", nullptr, 0, [done](std::vector<uint8_t>&&, const StreamError* e) { done(e); });
  }

  std::string description() const override {
    cuda::DeviceProps p;
    std::string err = cuda::deviceProperties(index_, &p);
    return err.empty() ? p.name : "unknown CUDA device (" + err + ")";
  }
  uint64_t totalMemoryBytes() const override {
    cuda::DeviceProps p;
    return cuda::deviceProperties(index_, &p).empty() ? p.totalBytes : 0;
  }

  /** The launch context of an op, after making the device current and taking any error an earlier
   *  call left, which is reported as that, not as this op's. */
  CudaLaunch beginLaunch(const char* op) {
    std::string err = cuda::useDevice(index_);
    if (err.empty()) err = cuda::takeError();
    if (!err.empty())
      throwError(op, ": cannot launch on cuda:", index_, ": an earlier CUDA call or kernel failed (the last op queued was ",
                 lastOp(), "): ", err);
    CudaLaunch l;
    l.stream = stream_;
    l.error = errorWord_;
    l.op = opId(op);
    l.device = index_;
    return l;
  }
  void noteOp(const char* op) {
    lastOp_.store(op);
    std::lock_guard<std::mutex> lock(launchesMu_);
    ++launches_[op];
  }
  const char* lastOp() const { return lastOp_.load(); }

  // Graphs: the ops queued between beginCapture() and endCapture() are recorded, not run, into an
  // executable CUDA graph that launchGraph() replays with the same kernels, arguments and
  // addresses. What the captured ops allocated stays the graph's (a private pool of the allocator)
  // until destroyGraph(). Only the JavaScript thread queues work, so no other op slips in.
  void beginCapture() {
    if (capturePool_ >= 0) throwError("graph: cuda:", index_, " is already capturing a graph");
    const int pool = alloc_.beginPool();
    std::string err = cuda::beginCapture(index_, stream_);
    if (!err.empty()) {
      alloc_.retirePool(pool);
      throwError("graph: cannot begin a capture on cuda:", index_, ": ", err);
    }
    capturePool_ = pool;
  }
  /** Ends the capture; returns the graph's id (> 0). Throws when the capture failed (an op that
   *  cannot be captured was queued), after leaving capture mode and giving the memory back. */
  int endCapture() {
    if (capturePool_ < 0) throwError("graph: cuda:", index_, " is not capturing a graph");
    const int pool = capturePool_;
    capturePool_ = -1;
    alloc_.endPool();
    void* exec = nullptr;
    std::string err = cuda::endCapture(index_, stream_, &exec);
    if (!err.empty()) {
      alloc_.retirePool(pool);
      throwError("graph: the capture on cuda:", index_, " failed: ", err);
    }
    std::lock_guard<std::mutex> lock(launchesMu_);
    const int id = nextGraph_++;
    graphs_[id] = {exec, pool};
    return id;
  }
  void launchGraph(int id) {
    refuseWhileCapturing("graph launch");
    void* exec = nullptr;
    {
      std::lock_guard<std::mutex> lock(launchesMu_);
      auto it = graphs_.find(id);
      if (it == graphs_.end()) throwError("graph: no graph ", id, " on cuda:", index_, " (disposed?)");
      exec = it->second.first;
    }
    std::string err = cuda::launchGraph(index_, exec, stream_);
    if (!err.empty()) throwError("graph: cannot launch on cuda:", index_, ": ", err);
    noteOp("graph");
  }
  void destroyGraph(int id) {
    std::pair<void*, int> g;
    {
      std::lock_guard<std::mutex> lock(launchesMu_);
      auto it = graphs_.find(id);
      if (it == graphs_.end()) return;
      g = it->second;
      graphs_.erase(it);
    }
    cuda::destroyGraph(index_, g.first);  // replays already queued still run
    alloc_.retirePool(g.second);          // later ops are queued after them: the blocks are free
  }
  /** How many times each op (and "tensor" uploads, "zeros" fills, "read" and "synchronize" sync
   *  points) was queued on this device's stream since the last reset: a decode step's launch count. */
  std::map<std::string, uint64_t> launches(bool reset) {
    std::lock_guard<std::mutex> lock(launchesMu_);
    auto out = launches_;
    if (reset) launches_.clear();
    return out;
  }

 private:
  void refuseWhileCapturing(const char* what) {
    if (capturePool_ >= 0)
      throwError(what, ": cuda:", index_, " is capturing a graph; a captured step may only queue kernels (no host copies, reads or synchronize)");
  }

  void unstage(PinnedBlock* b) {
    if (b->data) pinned().release(b->data, b->blockBytes);
    {
      std::lock_guard<std::mutex> lock(g_stageMu);
      g_staged -= b->bytes;
    }
    g_stageCv.notify_all();
    delete b;
  }

  /** Queues, on the stream and in call order: the copy of `bytes` at `src` into pinned memory, the
   *  copy of the error word next to it, clearing the word, and an event. The host worker waits for
   *  the event and calls done exactly once. */
  void queueSyncPoint(const char* what, const void* src, size_t bytes, ReadDone done) {
    {
      std::lock_guard<std::mutex> lock(launchesMu_);
      ++launches_[what];  // "read" / "synchronize": a forward step should queue one, at its end
    }
    const size_t wordAt = (bytes + 15) / 16 * 16;
    PinnedBlock block;
    block.data = pinned().allocate(wordAt + sizeof(DeviceErrorWord), &block.blockBytes);
    // Queuing a copy fails only with a sticky error, which work queued earlier raised (a kernel
    // that faulted before this point was queued): reported exactly as if waiting had found it.
    auto fail = [&](const std::string& err) {
      pinned().release(block.data, block.blockBytes);
      throwError("cuda:", index_, ": ", err, " (raised by work queued before this ", what, "; the last op queued was ", lastOp(), ")");
    };
    char* host = static_cast<char*>(block.data);
    std::string err;
    if (bytes) err = cuda::copyDeviceToHostAsync(index_, stream_, host, src, bytes);
    if (err.empty()) err = cuda::copyDeviceToHostAsync(index_, stream_, host + wordAt, errorWord_, sizeof(DeviceErrorWord));
    if (err.empty()) err = cuda::memsetAsync(index_, stream_, errorWord_, 0, sizeof(DeviceErrorWord));
    void* event = nullptr;
    if (err.empty()) err = cuda::createEvent(index_, &event);
    if (err.empty()) err = cuda::recordEvent(index_, event, stream_);
    if (!err.empty()) {
      cuda::destroyEvent(index_, event);
      fail(err);
    }
    const char* last = lastOp();
    host_.push(what, [this, what, block, wordAt, bytes, event, last, done] {
      std::string err = cuda::waitEvent(index_, event);
      cuda::destroyEvent(index_, event);
      StreamError e;
      bool failed = false;
      std::vector<uint8_t> out;
      if (!err.empty()) {
        failed = true;
        e = {ErrorKind::Error, cat("cuda:", index_, ": ", err, " (raised by work queued before this ", what,
                                   "; the last op queued was ", last, ")")};
      } else {
        DeviceErrorWord w;
        std::memcpy(&w, static_cast<char*>(block.data) + wordAt, sizeof w);
        if (w.raised) {
          failed = true;
          e = {ErrorKind::Range, deviceErrorText(opName(w.op).c_str(), w.what, w.value, w.bound)};
        } else {
          try {  // done runs on every path: a host allocation failure rejects the read
            if (takeHostAllocationFailure()) throw std::bad_alloc();
            out.resize(bytes);
            std::memcpy(out.data(), block.data, bytes);
          } catch (const std::bad_alloc&) {
            failed = true;
            e = {ErrorKind::Range, cat("read: out of host memory: cannot allocate ", bytes, " bytes for the result")};
          }
        }
      }
      pinned().release(block.data, block.blockBytes);
      if (failed) return done({}, &e);
      done(std::move(out), nullptr);
    });
  }

  int index_;
  CudaAllocator alloc_;
  Worker host_;
  void* stream_ = nullptr;
  DeviceErrorWord* errorWord_ = nullptr;
  std::atomic<const char*> lastOp_{"(none)"};
  std::mutex launchesMu_;
  std::map<std::string, uint64_t> launches_;
  int capturePool_ = -1;                        // the allocator pool of the capture under way
  int nextGraph_ = 1;
  std::map<int, std::pair<void*, int>> graphs_;  // id -> (executable graph, its pool)
};

namespace {

std::mutex g_mu;
std::map<int, CudaBackend*>& backends() {
  static auto* m = new std::map<int, CudaBackend*>();  // lives for the process
  return *m;
}

CudaBackend& backendOf(const DeviceId& device) { return *static_cast<CudaBackend*>(&backendFor(device)); }

}  // namespace

int cudaDeviceCount() {
  static const int n = cuda::deviceCount(nullptr);
  return n;
}

bool cudaCompiled() { return true; }

CudaStatus cudaStatus() {
  CudaStatus s;
  s.compiled = true;
  s.driverVersion = cuda::driverVersion();
  s.runtimeVersion = cuda::runtimeVersion();
  s.deviceCount = cuda::deviceCount(&s.why);
  s.archs = cuda::compiledArchitectures();
  return s;
}

std::vector<CudaDeviceInfo> cudaDevices() {
  std::vector<CudaDeviceInfo> out;
  for (int i = 0; i < cudaDeviceCount(); ++i) {
    CudaDeviceInfo d;
    d.name = "cuda:" + std::to_string(i);
    cuda::DeviceProps p;
    std::string err = cuda::deviceProperties(i, &p);
    if (!err.empty()) {
      d.description = "unavailable: " + err;
      d.unsupported = "its properties cannot be read: " + err;
    } else {
      d.description = p.name;
      d.memoryBytes = p.totalBytes;
      d.capability = std::to_string(p.major) + "." + std::to_string(p.minor);
      d.multiprocessors = p.multiprocessors;
      d.unsupported = cudaArchMismatch(cuda::compiledArchitectures(), p.major, p.minor);
    }
    out.push_back(d);
  }
  return out;
}

Backend* cudaBackend(int index) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto& m = backends();
  auto it = m.find(index);
  if (it != m.end()) return it->second;
  cuda::DeviceProps p;
  std::string err = cuda::deviceProperties(index, &p);
  if (!err.empty()) throwError("device cuda:", index, " cannot be used: ", err);
  std::string mismatch = cudaArchMismatch(cuda::compiledArchitectures(), p.major, p.minor);
  if (!mismatch.empty()) throwError("device cuda:", index, " (", p.name, ") cannot be used: ", mismatch);
  auto* b = new CudaBackend(index);
  m[index] = b;
  return b;
}

CudaLaunch cudaBeginLaunch(const DeviceId& device, const char* op) { return backendOf(device).beginLaunch(op); }

void cudaEndLaunch(const DeviceId& device, const char* op, const std::string& error) {
  CudaBackend& b = backendOf(device);
  b.noteOp(op);
  if (!error.empty()) throwError(op, ": CUDA error on ", device.name(), ": ", error);
}

std::map<std::string, uint64_t> cudaLaunchCounts(const DeviceId& device, bool reset) { return backendOf(device).launches(reset); }

void cudaBeginGraph(const DeviceId& device) { backendOf(device).beginCapture(); }
int cudaEndGraph(const DeviceId& device) { return backendOf(device).endCapture(); }
void cudaLaunchGraph(const DeviceId& device, int id) { backendOf(device).launchGraph(id); }
void cudaDestroyGraph(const DeviceId& device, int id) { backendOf(device).destroyGraph(id); }

std::string cudaArchitectures() { return cuda::compiledArchitectures(); }

std::string cudaCopyBandwidth(int index, size_t bytes, double* gbPerSecond) { return cuda::copyBandwidth(index, bytes, gbPerSecond); }

std::string cudaVersionString(int v) { return versionString(v); }

}  // namespace dsn
