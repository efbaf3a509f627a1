// Devices, their storage and their streams.
//
// Each device has a Backend: a caching allocator and an ordered stream. The CPU stream is a worker
// thread that runs queued ops in order, each op on the intra-op ThreadPool. The CUDA stream is a
// cudaStream_t: copies, fills and reads are queued on it by the JavaScript thread, in stream order,
// and its Backend owns a host worker that waits on events for reads, so no wait ever happens on the
// JavaScript thread.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "allocator.h"
#include "errors.h"
#include "threadpool.h"

namespace dsn {

enum class DeviceType { CPU, CUDA };

struct DeviceId {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  std::string name() const { return type == DeviceType::CPU ? "cpu" : "cuda:" + std::to_string(index); }
  bool operator==(const DeviceId& o) const { return type == o.type && index == o.index; }
  bool operator!=(const DeviceId& o) const { return !(*this == o); }
};

/** An error raised while a queued op ran, kept until the next sync point reports it. */
struct StreamError {
  ErrorKind kind = ErrorKind::Error;
  std::string message;  // "<op>: <what went wrong>"
};

/** One op queued on the CPU stream: its name (for errors and the profile) and its body, which holds
 *  the storages it touches. */
struct StreamTask {
  const char* op;
  std::function<void()> fn;
};

/** A recorded op sequence (a CPU graph): run in order by one worker task per launch. Each task keeps
 *  its storages, so the recording holds every tensor the step read or wrote until it is dropped. */
using RecordedTasks = std::vector<StreamTask>;

/** What the profile keeps per op name. */
struct OpProfile {
  uint64_t runs = 0;    // times the op ran (inside a graph launch too)
  uint64_t ns = 0;      // time spent running it; for "graph", the launch's time outside its ops
  uint64_t queued = 0;  // times it was queued on its own (0 for ops that ran inside a graph launch)
};

/** A thread that runs tasks in the order they were pushed. A task that throws records the first
 *  error (with the op's name); later tasks still run, and takeError() hands the error to a sync. */
class Worker {
 public:
  explicit Worker(std::string name);
  ~Worker();
  void push(const char* op, std::function<void()> fn);
  /** Queues ONE task, profiled as "graph", that runs `tasks` in order: each timed and profiled
   *  under its own name and with the first-error semantics of tasks pushed one by one. The
   *  recording is not consumed: its closures stay (with their storages) for the next launch. */
  void pushRecorded(std::shared_ptr<const RecordedTasks> tasks);
  bool takeError(StreamError* out);
  /** Blocks until every task pushed so far has run. Not for the JavaScript thread's hot paths. */
  void drain();
  /** Time spent running each op name since the start or the last reset. */
  std::vector<std::pair<std::string, OpProfile>> profile(bool reset);

 private:
  struct Task {
    const char* op;
    std::function<void()> fn;
    std::shared_ptr<const RecordedTasks> recorded;  // set for a graph launch (op "graph", no fn)
  };
  /** Runs one op body; false with `*err` set when it failed (its error named after `op`). */
  static bool runOp(const char* op, const std::function<void()>& fn, StreamError* err);
  void loop();
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::deque<Task> queue_;
  bool busy_ = false, stop_ = false;
  bool hasError_ = false;
  StreamError error_;
  std::map<std::string, OpProfile> profile_;
  std::thread thread_;
};

class Backend;

/** Device memory: a block from the device's caching allocator, or memory owned by someone else
 *  (a memory-mapped checkpoint) kept alive by `owner`. */
struct Storage {
  Backend* backend = nullptr;
  void* data = nullptr;
  size_t bytes = 0;
  size_t blockBytes = 0;
  std::shared_ptr<void> owner;  // set for borrowed memory; the allocator is not involved then
  bool readOnly = false;        // memory no op may write (a read-only file mapping)
  ~Storage();
};

using ReadDone = std::function<void(std::vector<uint8_t>&& bytes, const StreamError* error)>;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceId id() const = 0;
  virtual CachingAllocator& allocator() = 0;
  /** Allocates `bytes` on this device. */
  virtual std::shared_ptr<Storage> allocate(size_t bytes);
  /** Copies host bytes into device memory that no queued op uses yet. `src` may be reused as soon
   *  as this returns (CUDA: staged through pinned memory, then copied on the device's stream). */
  virtual void copyFromHost(void* dst, const void* src, size_t bytes) = 0;
  /** Queues, in stream order, setting `bytes` bytes at `dst` to `value` (zeros() without a host
   *  buffer). `keep` holds the storage until it has run. */
  virtual void fill(std::shared_ptr<Storage> keep, void* dst, int value, size_t bytes) = 0;
  /** Queues, in stream order, overwriting `bytes` bytes at `dst` with host bytes (copied now: `src`
   *  may be reused as soon as this returns). Ops queued before it read the old bytes, ops queued
   *  after it the new ones; `keep` holds the storage until it has run. */
  virtual void writeFromHost(std::shared_ptr<Storage> keep, void* dst, const void* src, size_t bytes) = 0;
  /** Queues, in stream order at the time of the call, a copy of device bytes to the host: the
   *  read sees every op queued before it and none queued after. `done` runs exactly once, on a
   *  worker thread, with the bytes or with the first error the stream recorded since the last
   *  sync (a host allocation failure included). Throws only when nothing could be queued. */
  virtual void readToHost(std::shared_ptr<Storage> keep, const void* src, size_t bytes, ReadDone done) = 0;
  /** Runs `done` on a worker thread once all queued work has finished. */
  virtual void synchronize(std::function<void(const StreamError*)> done) = 0;
  /** Human-readable name of the hardware. */
  virtual std::string description() const = 0;
  virtual uint64_t totalMemoryBytes() const = 0;
};

/** The CPU backend: its stream worker and intra-op pool.
 *
 *  Graphs: between beginCapture() and endCapture(), the ops the capturing thread queues are recorded
 *  into a graph instead of run; launchGraph() queues ONE worker task that runs them in order, with
 *  the same closures, so the same arguments and addresses. The graph holds the storages its ops
 *  touch until destroyGraph(). While capturing, a storage the capture allocated that nothing but the
 *  recorded ops holds any more (its tensors were disposed) is dead for the rest of the capture: the
 *  next allocation of the same size reuses it, since a replay runs the ops that used it before the
 *  ops that will. So a graph holds about the memory an eager step peaks at, not every temporary.
 *  While capturing, that thread's host copies, writes, reads, synchronize and graph launches throw
 *  and fail the capture; ops other threads (other Node environments) queue run as usual. */
class CpuBackend : public Backend {
 public:
  static CpuBackend& get();
  DeviceId id() const override { return {DeviceType::CPU, 0}; }
  CachingAllocator& allocator() override;
  void copyFromHost(void* dst, const void* src, size_t bytes) override;
  void fill(std::shared_ptr<Storage> keep, void* dst, int value, size_t bytes) override;
  void writeFromHost(std::shared_ptr<Storage> keep, void* dst, const void* src, size_t bytes) override;
  void readToHost(std::shared_ptr<Storage> keep, const void* src, size_t bytes, ReadDone done) override;
  void synchronize(std::function<void(const StreamError*)> done) override;
  std::string description() const override;
  uint64_t totalMemoryBytes() const override;
  Worker& worker() { return worker_; }
  /** Queues an op on the CPU stream, or records it when this thread is capturing a graph. */
  void enqueue(const char* op, std::function<void()> fn);
  /** The same for an op whose body holds no storage: `keep` holds what it touches until it has run
   *  (recorded: as long as the graph lives, counted so that the capture sees which are dead). */
  void enqueue(const char* op, std::function<void()> fn, std::vector<std::shared_ptr<Storage>> keep);
  /** While this thread captures, reuses a dead storage of the capture of exactly `bytes`. */
  std::shared_ptr<Storage> allocate(size_t bytes) override;
  ThreadPool& pool() { return pool_; }

  /** Starts recording the ops this thread queues. Throws when a capture is under way. */
  void beginCapture();
  /** Ends the capture; returns the graph's id (> 0). Throws, dropping the recording, when it
   *  failed (a refused call was made while capturing) or when no capture is under way. */
  int endCapture();
  /** Queues one replay of graph `id`. Throws when there is no such graph or while capturing. */
  void launchGraph(int id);
  /** Forgets graph `id` (none: nothing happens); launches already queued still run, and its
   *  storages go back once they have. */
  void destroyGraph(int id);

 private:
  CpuBackend();
  /** True when this thread is capturing a graph. */
  bool capturingHere() const;
  /** Throws (and fails the capture) when this thread is capturing a graph. */
  void refuseWhileCapturing(const char* what);
  ThreadPool pool_;
  Worker worker_;
  std::atomic<bool> capturing_{false};  // read on every enqueue; the rest is under graphMu_
  mutable std::mutex graphMu_;
  std::thread::id captureThread_;
  RecordedTasks recording_;
  /** The storages the recorded ops hold (one entry per hold). */
  std::vector<std::shared_ptr<Storage>> recordingKeep_;
  /** The storages the capture allocated, and how many holds of recordingKeep_ are theirs: one whose
   *  use count is that plus this entry's is held by nothing else, so it is dead. */
  std::vector<std::pair<std::shared_ptr<Storage>, long>> captureAllocations_;
  std::string captureFailure_;  // the first refused call of the capture under way
  int nextGraph_ = 1;
  /** A graph: its ops and the storages they hold. */
  struct Graph {
    RecordedTasks tasks;
    std::vector<std::shared_ptr<Storage>> keep;
  };
  std::map<int, std::shared_ptr<const Graph>> graphs_;
};

/** Backend of a device by id: throws a RangeError when the device does not exist here. */
Backend& backendFor(const DeviceId& id);
/** Parses "cpu", "cuda", "cuda:N"; throws a TypeError on anything else. */
DeviceId parseDevice(const std::string& s);
/** CUDA devices visible to this build (0 when CUDA is not compiled in or no driver/GPU). */
int cudaDeviceCount();
/** True when this addon was compiled with the CUDA backend. */
bool cudaCompiled();

/** The CUDA side of this process, for devices() and info. */
struct CudaStatus {
  bool compiled = false;
  int driverVersion = 0;   // 13000 for CUDA 13.0; 0 without a driver
  int runtimeVersion = 0;  // the CUDA runtime this build links
  int deviceCount = 0;
  std::string why;         // why there is no device ("" when there is one)
  std::string archs;       // architectures this build has code for ("sm_90a")
};
CudaStatus cudaStatus();

struct CudaDeviceInfo {
  std::string name;         // "cuda:0"
  std::string description;  // "NVIDIA H200", or why its properties could not be read
  uint64_t memoryBytes = 0;
  std::string capability;   // "9.0"
  int multiprocessors = 0;
  std::string unsupported;  // "" when this build can run on it; else why not
};
std::vector<CudaDeviceInfo> cudaDevices();

/** Test hook: the next `n` host allocations of reads fail as if the host had no memory left. */
void failHostAllocations(int n);
/** True (and counts one down) when a read's host allocation must fail (failHostAllocations). */
bool takeHostAllocationFailure();

}  // namespace dsn
