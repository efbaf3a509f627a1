// The CUDA Backend (compiled only by the cmake-js build, with DSN_WITH_CUDA): a caching allocator
// over cudaMalloc, one blocking cudaStream_t per device, and a host worker that waits on the stream
// for reads and synchronisation so the JavaScript thread never blocks.
#include <map>
#include <memory>
#include <mutex>

#include "../../cuda/runtime.cuh"
#include "device.h"

namespace dsn {

namespace {

class CudaAllocator : public CachingAllocator {
 public:
  explicit CudaAllocator(int device) : CachingAllocator("cuda:" + std::to_string(device)), device_(device) {}

 protected:
  void* rawAlloc(size_t bytes) override {
    void* p = nullptr;
    return cuda::allocate(device_, bytes, &p).empty() ? p : nullptr;
  }
  void rawFree(void* p) override { cuda::release(device_, p); }

 private:
  int device_;
};

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index), alloc_(index), host_("cuda-host-" + std::to_string(index)) {
    std::string err = cuda::createStream(index, &stream_);
    if (!err.empty()) throwError("cuda:", index, ": cannot create a stream: ", err);
  }
  DeviceId id() const override { return {DeviceType::CUDA, index_}; }
  CachingAllocator& allocator() override { return alloc_; }
  void copyFromHost(void* dst, const void* src, size_t bytes) override {
    std::string err = cuda::copyHostToDevice(index_, dst, src, bytes);
    if (!err.empty()) throwError("copy to cuda:", index_, ": ", err);
  }
  void readToHost(std::shared_ptr<Storage> keep, const void* src, size_t bytes, ReadDone done) override {
    host_.push("read", [this, keep, src, bytes, done] {
      std::vector<uint8_t> out(bytes);
      std::string err = cuda::copyDeviceToHost(index_, stream_, out.data(), src, bytes);
      if (!err.empty()) {
        StreamError e{ErrorKind::Error, "cuda:" + std::to_string(index_) + ": " + err};
        return done({}, &e);
      }
      done(std::move(out), nullptr);
    });
  }
  void synchronize(std::function<void(const StreamError*)> done) override {
    host_.push("synchronize", [this, done] {
      std::string err = cuda::synchronize(index_, stream_);
      if (!err.empty()) {
        StreamError e{ErrorKind::Error, "cuda:" + std::to_string(index_) + ": " + err};
        return done(&e);
      }
      done(nullptr);
    });
  }
  std::string description() const override {
    std::string name, cap;
    size_t total = 0;
    cuda::deviceProperties(index_, &name, &total, &cap);
    return name;
  }
  uint64_t totalMemoryBytes() const override {
    std::string name, cap;
    size_t total = 0;
    cuda::deviceProperties(index_, &name, &total, &cap);
    return total;
  }
  void* stream() const { return stream_; }

 private:
  int index_;
  CudaAllocator alloc_;
  Worker host_;
  void* stream_ = nullptr;
};

std::mutex g_mu;
std::map<int, CudaBackend*>& backends() {
  static auto* m = new std::map<int, CudaBackend*>();  // lives for the process
  return *m;
}

}  // namespace

int cudaDeviceCount() {
  static const int n = cuda::deviceCount();
  return n;
}

bool cudaCompiled() { return true; }

Backend* cudaBackend(int index) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto& m = backends();
  auto it = m.find(index);
  if (it != m.end()) return it->second;
  auto* b = new CudaBackend(index);
  m[index] = b;
  return b;
}

void* cudaStreamFor(const DeviceId& device) { return static_cast<CudaBackend*>(cudaBackend(device.index))->stream(); }

std::vector<std::string> cudaDeviceInfo(int index) {
  std::string name, cap;
  size_t total = 0;
  std::string err = cuda::deviceProperties(index, &name, &total, &cap);
  if (!err.empty()) return {"unavailable: " + err, "0", ""};
  return {name, std::to_string(total), cap};
}

std::string cudaArchitectures() { return cuda::compiledArchitectures(); }

std::string cudaCopyBandwidth(int index, size_t bytes, double* gbPerSecond) {
  return cuda::copyBandwidth(index, bytes, gbPerSecond);
}

}  // namespace dsn
