#include "mapguard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>

namespace dsn::io {

namespace {

constexpr int kSlots = 4096;

/** One guarded range. The handler reads begin/end and sets faultedAt without locks. */
struct Slot {
  std::atomic<uintptr_t> begin{0}, end{0};
  std::atomic<uint64_t> faultedAt{0};  // the fault count when this mapping first faulted; 0: never
};

Slot g_slots[kSlots];
std::atomic<uint64_t> g_faults{0};
std::mutex g_mu;                     // guards g_paths and slot allocation (never taken by the handler)
std::vector<std::string> g_paths(kSlots);
struct sigaction g_previous;
std::once_flag g_installed;

void onSigbus(int sig, siginfo_t* info, void* ctx) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (int i = 0; i < kSlots; ++i) {
    uintptr_t b = g_slots[i].begin.load(std::memory_order_acquire);
    if (b == 0 || addr < b || addr >= g_slots[i].end.load(std::memory_order_acquire)) continue;
    const uintptr_t page = addr & ~uintptr_t(sysconf(_SC_PAGESIZE) - 1);
    // A zero page over the lost one: the faulting load is retried and reads zeros.
    void* p = mmap(reinterpret_cast<void*>(page), size_t(sysconf(_SC_PAGESIZE)), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) break;
    uint64_t n = g_faults.fetch_add(1, std::memory_order_acq_rel) + 1;
    uint64_t zero = 0;
    g_slots[i].faultedAt.compare_exchange_strong(zero, n, std::memory_order_acq_rel);
    return;
  }
  // Not ours: whoever handled SIGBUS before us, else the default action (the load faults again).
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) return g_previous.sa_sigaction(sig, info, ctx);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    return g_previous.sa_handler(sig);
  }
  signal(SIGBUS, SIG_DFL);
}

void install() {
  struct sigaction sa {};
  sa.sa_sigaction = onSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &g_previous);
}

}  // namespace

int guardMapping(const void* base, size_t bytes, const std::string& path) {
  if (!base || bytes == 0) return -1;
  std::call_once(g_installed, install);
  std::lock_guard<std::mutex> lock(g_mu);
  for (int i = 0; i < kSlots; ++i) {
    if (g_slots[i].begin.load(std::memory_order_relaxed) != 0) continue;
    g_paths[i] = path;
    g_slots[i].faultedAt.store(0, std::memory_order_relaxed);
    g_slots[i].end.store(reinterpret_cast<uintptr_t>(base) + bytes, std::memory_order_release);
    g_slots[i].begin.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
    return i;
  }
  return -1;
}

void unguardMapping(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  std::lock_guard<std::mutex> lock(g_mu);
  g_slots[slot].begin.store(0, std::memory_order_release);
  g_slots[slot].end.store(0, std::memory_order_release);
}

bool mappingFaulted(int slot) {
  return slot >= 0 && slot < kSlots && g_slots[slot].faultedAt.load(std::memory_order_acquire) != 0;
}

namespace {
thread_local bool tl_reported = false;
}
void markFaultsReported() { tl_reported = true; }
bool takeFaultsReported() {
  bool r = tl_reported;
  tl_reported = false;
  return r;
}

uint64_t guardedFaults() { return g_faults.load(std::memory_order_acquire); }

std::string faultReport() {
  std::lock_guard<std::mutex> lock(g_mu);
  std::string out;
  for (int i = 0; i < kSlots; ++i) {
    uint64_t at = g_slots[i].faultedAt.load(std::memory_order_acquire);
    if (at == 0 || g_slots[i].begin.load(std::memory_order_acquire) == 0) continue;
    if (!out.empty()) out += "; ";
    out += g_paths[i] + ": changed on disk while loaded (truncated); reload the model";
  }
  return out;
}

}  // namespace dsn::io
