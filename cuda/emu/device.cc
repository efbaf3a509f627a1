// cuda-emu: the device model. A launch runs on its stream's host thread: blocks one after another
// in a seeded-random order, each CUDA thread a fiber (hand-rolled x86-64 context switch, 64 KiB
// mmap'd stacks with a guard page, reused). Fibers run until they block (barrier, warp collective,
// mbarrier wait) or exit, in a fresh random order each round. Collectives complete eagerly when
// their last participant arrives; asynchronous copies (TMA) land only when every fiber of the
// block waits, so a consumer that does not wait for them reads poison (0xff bytes: NaN).
//
// Faults: SIGSEGV/SIGBUS inside a fiber (an access past a cudaMalloc allocation, which ends at a
// guard page; past the block's dynamic shared memory, which ends at a guard page; into freed
// memory; a fiber stack overflow) are turned into a launch error naming the kernel, block, thread
// and address: the faulting fiber is resumed in faultExit() on a fresh frame of its own stack.
#undef _FORTIFY_SOURCE
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda_emu.h"
#include "emu_internal.h"

extern "C" void dsn_emu_switch(void** save, void* load);
extern "C" void dsn_emu_fiber_start();
asm(R"(
.text
.globl dsn_emu_switch
.hidden dsn_emu_switch
.type dsn_emu_switch,@function
dsn_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size dsn_emu_switch,.-dsn_emu_switch
.globl dsn_emu_fiber_start
.hidden dsn_emu_fiber_start
.type dsn_emu_fiber_start,@function
dsn_emu_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
.size dsn_emu_fiber_start,.-dsn_emu_fiber_start
)");

namespace cuda_emu {

thread_local ThreadCtx* tlsCtx __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kSmemLimit = 232448;           // 227 KiB: the sm_90 per-block opt-in maximum
constexpr size_t kSmemRegion = 57 * kPage;      // >= kSmemLimit, page-aligned, guard pages around
constexpr int kMaxBarriers = 16;

struct Stack {
  char* guard = nullptr;  // PROT_NONE page below the stack
  char* top = nullptr;
  size_t bytes = 0;
};

size_t stackBytes() {
  static const size_t v = [] {
    const char* e = getenv("DSN_EMU_STACK_KB");
    long kb = e ? atol(e) : 64;
    return size_t(kb < 16 ? 16 : kb) * 1024;
  }();
  return v;
}

struct Block;
struct CpCopy {
  void* dst;
  const void* src;
  int bytes, srcBytes, group;
};

struct EmuThread {
  ThreadCtx ctx;
  void* sp = nullptr;
  Stack* stack = nullptr;
  Block* block = nullptr;
  enum State { Ready, Waiting, Done } state = Ready;
  enum Kind { None, Bar, Warp, Warpgroup, Mbar } kind = None;
  int barId = 0;
  const char* what = "";
  WarpResolve resolve = nullptr;
  uint32_t mask = 0;
  WarpSlot* slot = nullptr;
  uint64_t* mbar = nullptr;
  uint32_t parity = 0;
  std::vector<CpCopy> cp;
  int cpGroup = 0;
  void* faultAddr = nullptr;
  int faultSig = 0;
};

struct MbarState {
  unsigned expected = 0, pending = 0;
  int64_t tx = 0;
  uint32_t phase = 0;
};

struct Block {
  Launch* L = nullptr;
  std::vector<EmuThread>* threads = nullptr;
  int n = 0;
  void* schedSp = nullptr;
  char* smem = nullptr;  // start of the shared-memory region
  size_t staticUsed = 0;
  char* dyn = nullptr;
  size_t dynBytes = 0;
  std::vector<std::pair<const void*, void*>> tags;
  struct Barrier {
    unsigned expected = 0, arrived = 0;
    int acc = 0, result = 0;
    const char* what = "";
  } bars[kMaxBarriers];
  // Full-mask warp (and warpgroup) collectives: how many of the group wait in one now, and how many
  // of its threads have exited. Only the last arrival scans the group (checking that every member
  // is at the same collective), so a collective costs O(32) instead of O(32²).
  int fullArrived[32] = {}, groupArrived[8] = {};
  int exitedInWarp[32] = {};
  std::unordered_map<uint64_t*, MbarState> mbars;
  std::vector<std::pair<void (*)(void*), std::shared_ptr<void>>> asyncQ;
  std::vector<int> ready;
  bool failed = false;
};

// Per host thread (each stream has one): fiber stacks, the shared-memory region, the alt stack.
struct HostResources {
  std::vector<Stack> stacks;
  char* smemMap = nullptr;
  char* smem = nullptr;
  bool altStack = false;
};
thread_local HostResources tlsRes;
thread_local EmuThread* tlsThread __attribute__((tls_model("initial-exec"))) = nullptr;
thread_local Block* tlsBlock = nullptr;

struct sigaction g_oldSegv, g_oldBus;
std::once_flag g_handlerOnce;

[[noreturn]] void faultExit(EmuThread* t);

void onFault(int sig, siginfo_t* si, void* ucv) {
  EmuThread* t = tlsThread;
  if (t) {
    t->faultAddr = si->si_addr;
    t->faultSig = sig;
    auto* uc = static_cast<ucontext_t*>(ucv);
    uintptr_t sp = (reinterpret_cast<uintptr_t>(t->stack->top) - 1024) & ~uintptr_t(15);
    uc->uc_mcontext.gregs[REG_RSP] = greg_t(sp - 8);  // as if faultExit had been called
    uc->uc_mcontext.gregs[REG_RIP] = greg_t(reinterpret_cast<uintptr_t>(&faultExit));
    uc->uc_mcontext.gregs[REG_RDI] = greg_t(reinterpret_cast<uintptr_t>(t));
    return;
  }
  struct sigaction& old = sig == SIGSEGV ? g_oldSegv : g_oldBus;
  if (old.sa_flags & SA_SIGINFO) {
    old.sa_sigaction(sig, si, ucv);
  } else if (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN) {
    signal(sig, SIG_DFL);  // returns, faults again, default action
  } else {
    old.sa_handler(sig);
  }
}

void installHandler() {
  std::call_once(g_handlerOnce, [] {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = onFault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_oldSegv);
    sigaction(SIGBUS, &sa, &g_oldBus);
  });
  if (!tlsRes.altStack) {
    stack_t ss;
    ss.ss_size = 64 * 1024;
    ss.ss_sp = mmap(nullptr, ss.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ss.ss_flags = 0;
    if (ss.ss_sp != MAP_FAILED && sigaltstack(&ss, nullptr) == 0) tlsRes.altStack = true;
  }
}

Stack* stackFor(size_t i) {
  auto& v = tlsRes.stacks;
  while (v.size() <= i) {
    Stack s;
    s.bytes = stackBytes();
    char* m = static_cast<char*>(mmap(nullptr, s.bytes + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, kPage, PROT_NONE);
    s.guard = m;
    s.top = m + kPage + s.bytes;
    v.push_back(s);
  }
  return &v[i];
}

char* smemRegion() {
  if (!tlsRes.smemMap) {
    char* m = static_cast<char*>(mmap(nullptr, kSmemRegion + 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, kPage, PROT_NONE);
    mprotect(m + kPage + kSmemRegion, kPage, PROT_NONE);
    tlsRes.smemMap = m;
    tlsRes.smem = m + kPage;
  }
  return tlsRes.smem;
}

std::string where(const EmuThread* t) {
  char b[256];
  const ThreadCtx& c = t->ctx;
  snprintf(b, sizeof b, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u)", t->block->L->name.c_str(), c.bid.x,
           c.bid.y, c.bid.z, c.tid.x, c.tid.y, c.tid.z);
  return b;
}

void failLaunch(Block* B, cudaError_t code, const std::string& msg) {
  if (B->failed) return;
  B->failed = true;
  if (B->L->code == cudaSuccess) {
    B->L->code = code;
    B->L->message = msg;
  }
}

/** Switches from the fiber back to the block's scheduler; returns when the fiber is resumed. */
void yieldFiber(EmuThread* t) { dsn_emu_switch(&t->sp, t->block->schedSp); }

[[noreturn]] void endFiber(EmuThread* t) {
  t->state = EmuThread::Done;
  ++t->block->exitedInWarp[t->ctx.warp];
  // Copies a thread issued and never waited for still land (the GPU completes them too).
  for (auto& c : t->cp) {
    memcpy(c.dst, c.src, size_t(c.srcBytes));
    if (c.bytes > c.srcBytes) memset(static_cast<char*>(c.dst) + c.srcBytes, 0, size_t(c.bytes - c.srcBytes));
  }
  t->cp.clear();
  dsn_emu_switch(&t->sp, t->block->schedSp);
  __builtin_trap();  // never resumed
}

void fiberMain(EmuThread* t) {
  t->block->L->invoke(t->block->L->data.get());
  endFiber(t);
}

std::string describeAddress(const EmuThread* t, const void* addr) {
  const char* a = static_cast<const char*>(addr);
  char b[512];
  Block* B = t->block;
  const char* guardHi = B->smem + kSmemRegion;
  if (a >= guardHi && a < guardHi + kPage) {
    snprintf(b, sizeof b, "shared memory access out of bounds at %p: %zu bytes past the end of the block's %zu bytes of dynamic shared memory", addr,
             size_t(a - guardHi), B->dynBytes);
    return b;
  }
  if (a >= B->smem - kPage && a < B->smem) {
    snprintf(b, sizeof b, "shared memory access out of bounds at %p: %zu bytes before the block's shared memory", addr, size_t(B->smem - a));
    return b;
  }
  for (auto& s : tlsRes.stacks)
    if (a >= s.guard && a < s.guard + kPage) return "stack overflow: the thread used more than its " + std::to_string(s.bytes / 1024) + " KiB fiber stack (set DSN_EMU_STACK_KB)";
  std::string near = describeGlobal(addr);
  snprintf(b, sizeof b, "illegal address %p: %s", addr, near.c_str());
  return b;
}

[[noreturn]] void faultExit(EmuThread* t) {
  tlsThread = nullptr;  // a fault in the reporting code itself must not loop
  std::string msg = where(t) + ": " + describeAddress(t, t->faultAddr);
  failLaunch(t->block, t->faultSig == SIGBUS ? cudaErrorMisalignedAddress : cudaErrorIllegalAddress, msg);
  tlsThread = t;
  endFiber(t);
}

void wake(Block* B, EmuThread& u) {
  u.state = EmuThread::Ready;
  u.kind = EmuThread::None;
  B->ready.push_back(u.ctx.linear);
}

EmuThread* self() {
  EmuThread* t = tlsThread;
  if (!t) {
    fprintf(stderr, "cuda-emu: a device function was called outside a kernel\n");
    return nullptr;
  }
  return t;
}

/** Blocks the current fiber until woken. */
void waitHere(EmuThread* t, EmuThread::Kind kind, const char* what) {
  t->state = EmuThread::Waiting;
  t->kind = kind;
  t->what = what;
  yieldFiber(t);
}

std::string mbarDescribe(Block* B, uint64_t* bar) {
  auto it = B->mbars.find(bar);
  char b[256];
  if (it == B->mbars.end()) return "uninitialised mbarrier";
  const MbarState& m = it->second;
  snprintf(b, sizeof b, "mbarrier at shared offset %zu (phase %u, %u of %u arrivals pending, tx-count %lld)",
           size_t(reinterpret_cast<char*>(bar) - B->smem), m.phase, m.pending, m.expected, (long long)m.tx);
  return b;
}

void reportDeadlock(Block* B) {
  std::string msg;
  int waiting = 0, done = 0;
  std::vector<std::pair<std::string, int>> groups;
  for (auto& t : *B->threads) {
    if (int(&t - B->threads->data()) >= B->n) break;
    if (t.state == EmuThread::Done) { ++done; continue; }
    ++waiting;
    std::string k;
    char b[256];
    switch (t.kind) {
      case EmuThread::Bar: {
        auto& bar = B->bars[t.barId];
        snprintf(b, sizeof b, "%s (barrier %d: %u of %u threads arrived)", t.what, t.barId, bar.arrived, bar.expected);
        k = b;
        break;
      }
      case EmuThread::Warp:
      case EmuThread::Warpgroup:
        snprintf(b, sizeof b, "%s (mask 0x%08x, warp %d)", t.what, t.mask, t.ctx.warp);
        k = b;
        break;
      case EmuThread::Mbar:
        k = std::string(t.what) + " parity " + std::to_string(t.parity) + " on " + mbarDescribe(B, t.mbar);
        break;
      default:
        k = "?";
    }
    bool found = false;
    for (auto& g : groups)
      if (g.first == k) { ++g.second; found = true; }
    if (!found) groups.push_back({k, 1});
  }
  const EmuThread& first = (*B->threads)[0];
  char head[256];
  snprintf(head, sizeof head, "kernel %s, block (%u,%u,%u): deadlock: %d thread(s) wait forever (%d exited): ", B->L->name.c_str(),
           first.ctx.bid.x, first.ctx.bid.y, first.ctx.bid.z, waiting, done);
  msg = head;
  for (size_t i = 0; i < groups.size() && i < 6; ++i) msg += (i ? "; " : "") + std::to_string(groups[i].second) + " in " + groups[i].first;
  failLaunch(B, cudaErrorLaunchTimeout, msg);
}

void deliverAsync(Block* B) {
  auto q = std::move(B->asyncQ);
  B->asyncQ.clear();
  tlsBlock = B;
  for (auto& [fn, arg] : q) {
    try {
      fn(arg.get());
    } catch (const std::exception&) {
      return;  // kernelFault has failed the block
    }
    if (B->failed) return;
  }
}

void runBlock(Block* B, std::mt19937_64& rng) {
  auto& threads = *B->threads;
  for (int i = 0; i < B->n; ++i) {
    EmuThread& t = threads[i];
    t.block = B;
    t.state = EmuThread::Ready;
    t.kind = EmuThread::None;
    t.cp.clear();
    t.cpGroup = 0;
    t.stack = stackFor(size_t(i));
    void** sp = reinterpret_cast<void**>(t.stack->top);
    *--sp = reinterpret_cast<void*>(&dsn_emu_fiber_start);
    *--sp = nullptr;                                      // rbp
    *--sp = nullptr;                                      // rbx
    *--sp = &t;                                           // r12: the argument
    *--sp = reinterpret_cast<void*>(&fiberMain);          // r13: the entry
    *--sp = nullptr;                                      // r14
    *--sp = nullptr;                                      // r15
    --sp;
    uint32_t csr[2];
    asm volatile("stmxcsr %0" : "=m"(csr[0]));
    uint16_t cw;
    asm volatile("fnstcw %0" : "=m"(cw));
    csr[1] = cw;
    memcpy(sp, csr, 8);
    t.sp = sp;
  }
  B->ready.clear();
  for (int i = 0; i < B->n; ++i) B->ready.push_back(i);
  std::vector<int> round;
  while (!B->failed) {
    if (B->ready.empty()) {
      if (!B->asyncQ.empty()) {
        deliverAsync(B);
        continue;
      }
      bool all = true;
      for (int i = 0; i < B->n && all; ++i) all = threads[i].state == EmuThread::Done;
      if (!all) reportDeadlock(B);
      break;
    }
    round.swap(B->ready);
    B->ready.clear();
    std::shuffle(round.begin(), round.end(), rng);
    for (int i : round) {
      EmuThread& t = threads[i];
      tlsThread = &t;
      tlsCtx = &t.ctx;
      tlsBlock = B;
      dsn_emu_switch(&B->schedSp, t.sp);
      tlsThread = nullptr;
      tlsCtx = nullptr;
      if (B->failed) break;
    }
  }
  if (!B->failed) {
    deliverAsync(B);
    for (auto& [bar, m] : B->mbars) {
      if (m.tx != 0) {
        const EmuThread& first = threads[0];
        char b[256];
        snprintf(b, sizeof b, "kernel %s, block (%u,%u,%u): exited with %s: ", B->L->name.c_str(), first.ctx.bid.x,
                 first.ctx.bid.y, first.ctx.bid.z, mbarDescribe(B, bar).c_str());
        failLaunch(B, cudaErrorLaunchFailure, std::string(b) + (m.tx < 0 ? "more bytes arrived than any expect_tx announced (an arrive without expect_tx?)"
                                                                        : "announced bytes never arrived"));
        break;
      }
    }
  }
}

std::atomic<uint64_t> g_launchCounter{0};
uint64_t seedBase() {
  static const uint64_t v = [] {
    const char* e = getenv("DSN_EMU_SEED");
    return e ? strtoull(e, nullptr, 10) : 1;
  }();
  return v;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// The launch, run on the stream's host thread
// ------------------------------------------------------------------------------------------------
void runLaunch(Launch& L) {
  installHandler();
  char* smem = smemRegion();
  if (!smem || !stackFor(size_t(L.block.x * L.block.y * L.block.z) - 1)) {
    L.code = cudaErrorMemoryAllocation;
    L.message = "kernel " + L.name + ": cannot map fiber stacks or shared memory";
    return;
  }
  const int n = int(L.block.x * L.block.y * L.block.z);
  std::vector<EmuThread> threads(static_cast<size_t>(n));
  std::mt19937_64 rng(seedBase() * 0x9e3779b97f4a7c15ull + g_launchCounter.fetch_add(1));
  const uint64_t nBlocks = uint64_t(L.grid.x) * L.grid.y * L.grid.z;
  std::vector<uint64_t> order(nBlocks);
  for (uint64_t i = 0; i < nBlocks; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  Block B;
  B.L = &L;
  B.threads = &threads;
  B.n = n;
  B.smem = smem;
  B.dynBytes = L.smem;
  B.dyn = smem + kSmemRegion - ((L.smem + 15) & ~size_t(15));
  for (uint64_t bi : order) {
    uint3 bid{unsigned(bi % L.grid.x), unsigned((bi / L.grid.x) % L.grid.y), unsigned(bi / (uint64_t(L.grid.x) * L.grid.y))};
    for (int i = 0; i < n; ++i) {
      ThreadCtx& c = threads[size_t(i)].ctx;
      c.tid = {unsigned(i % L.block.x), unsigned((i / L.block.x) % L.block.y), unsigned(i / (L.block.x * L.block.y))};
      c.bid = bid;
      c.bdim = L.block;
      c.gdim = L.grid;
      c.linear = i;
      c.lane = i & 31;
      c.warp = i >> 5;
    }
    B.staticUsed = 0;
    B.tags.clear();
    for (auto& b : B.bars) b = Block::Barrier();
    std::fill(std::begin(B.fullArrived), std::end(B.fullArrived), 0);
    std::fill(std::begin(B.groupArrived), std::end(B.groupArrived), 0);
    std::fill(std::begin(B.exitedInWarp), std::end(B.exitedInWarp), 0);
    B.mbars.clear();
    B.asyncQ.clear();
    B.failed = false;
    if (L.smem) memset(B.dyn, 0xff, L.smem);  // shared memory starts as poison (NaN)
    runBlock(&B, rng);
    if (B.failed) break;
  }
  tlsBlock = nullptr;
}

// ------------------------------------------------------------------------------------------------
// Device functions
// ------------------------------------------------------------------------------------------------
void kernelFault(cudaError_t code, const char* fmt, ...) {
  EmuThread* t = tlsThread;
  char b[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  if (!t) {
    // Outside a fiber (the async proxy delivering a copy): fail the running block.
    if (tlsBlock) failLaunch(tlsBlock, code, "kernel " + tlsBlock->L->name + ": " + b);
    throw std::runtime_error(b);  // caught by deliverAsync's caller: never in kernel code
  }
  failLaunch(t->block, code, where(t) + ": " + b);
  endFiber(t);
}

const char* kernelName() {
  EmuThread* t = tlsThread;
  return t ? t->block->L->name.c_str() : (tlsBlock ? tlsBlock->L->name.c_str() : "");
}

void barrierSync(int id, unsigned count, const char* what) {
  EmuThread* t = self();
  Block* B = t->block;
  if (id < 0 || id >= kMaxBarriers) kernelFault(cudaErrorIllegalInstruction, "%s: barrier id %d out of range 0..15", what, id);
  unsigned want = count ? count : unsigned(B->n);
  if (count && (count % 32 || count > unsigned(B->n)))
    kernelFault(cudaErrorIllegalInstruction, "%s: thread count %u must be a multiple of 32 and at most the block's %d threads", what, count, B->n);
  auto& bar = B->bars[id];
  if (bar.arrived == 0) {
    bar.expected = want;
    bar.what = what;
  } else if (bar.expected != want) {
    kernelFault(cudaErrorIllegalInstruction, "%s on barrier %d expects %u threads, but threads already waiting there expect %u (%s)", what, id, want, bar.expected, bar.what);
  }
  if (++bar.arrived == bar.expected) {
    bar.arrived = 0;
    bar.result = bar.acc;
    for (int i = 0; i < B->n; ++i) {
      EmuThread& u = (*B->threads)[i];
      if (u.state == EmuThread::Waiting && u.kind == EmuThread::Bar && u.barId == id) wake(B, u);
    }
    return;
  }
  t->barId = id;
  waitHere(t, EmuThread::Bar, what);
}

void barrierArrive(int id, unsigned count) {
  EmuThread* t = self();
  Block* B = t->block;
  if (id < 0 || id >= kMaxBarriers || count == 0 || count % 32) kernelFault(cudaErrorIllegalInstruction, "bar.arrive %d, %u: invalid operands", id, count);
  auto& bar = B->bars[id];
  if (bar.arrived == 0) {
    bar.expected = count;
    bar.what = "bar.arrive";
  } else if (bar.expected != count) {
    kernelFault(cudaErrorIllegalInstruction, "bar.arrive on barrier %d with count %u, but waiting threads expect %u", id, count, bar.expected);
  }
  if (++bar.arrived == bar.expected) {
    bar.arrived = 0;
    for (int i = 0; i < B->n; ++i) {
      EmuThread& u = (*B->threads)[i];
      if (u.state == EmuThread::Waiting && u.kind == EmuThread::Bar && u.barId == id) wake(B, u);
    }
  }
}

int barrierSyncReduce(int pred, int op) {
  EmuThread* t = self();
  Block* B = t->block;
  auto& bar = B->bars[0];
  if (bar.arrived == 0) bar.acc = op == 1 ? 1 : 0;
  if (op == 0) bar.acc += pred != 0;
  else if (op == 1) bar.acc &= pred != 0;
  else bar.acc |= pred != 0;
  static const char* names[] = {"__syncthreads_count", "__syncthreads_and", "__syncthreads_or"};
  barrierSync(0, 0, names[op]);
  return B->bars[0].result;  // set by the last arrival; stable until every thread has read it
}

void warpCollectiveImpl(EmuThread* t, const char* what, WarpResolve resolve, uint32_t mask, WarpSlot* slot, int groupSize) {
  Block* B = t->block;
  const int base = groupSize == 32 ? t->ctx.warp * 32 : (t->ctx.warp / 4) * 128;
  const int me = t->ctx.linear - base;
  if (groupSize == 32) {
    if (!(mask >> me & 1u)) kernelFault(cudaErrorIllegalInstruction, "%s: the calling lane %d is not in its mask 0x%08x", what, me, mask);
  } else {
    mask = 0xffffffffu;
  }
  t->what = what;
  t->resolve = resolve;
  t->mask = mask;
  t->slot = slot;
  const int members = groupSize == 32 ? 32 : 128;
  // Fast path for a whole warp / warpgroup that exists and has no exited thread: count arrivals and
  // let the last one run the full check below. (A group with an exited thread or missing lanes takes
  // the scan every time, which reports the fault.)
  int* arrived = groupSize == 32 ? &B->fullArrived[t->ctx.warp] : &B->groupArrived[t->ctx.warp / 4];
  bool exited = false;
  for (int w = base / 32; w < (base + members) / 32; ++w) exited |= B->exitedInWarp[w] != 0;
  const bool counted = mask == 0xffffffffu && base + members <= B->n && !exited;
  if (counted && ++*arrived < members) {
    waitHere(t, groupSize == 32 ? EmuThread::Warp : EmuThread::Warpgroup, what);
    return;
  }
  if (counted) *arrived = 0;
  bool all = true;
  for (int k = 0; k < members; ++k) {
    if (groupSize == 32 && !(mask >> k & 1u)) continue;
    if (k == me) continue;
    int idx = base + k;
    if (idx >= B->n)
      kernelFault(cudaErrorIllegalInstruction, "%s: mask 0x%08x names lane %d, which does not exist (the block has %d threads)", what, mask, k, B->n);
    EmuThread& u = (*B->threads)[idx];
    if (u.state == EmuThread::Done)
      kernelFault(cudaErrorIllegalInstruction, "%s: %s %d has exited (mask 0x%08x)", what, groupSize == 32 ? "lane" : "warpgroup thread", k, mask);
    EmuThread::Kind want = groupSize == 32 ? EmuThread::Warp : EmuThread::Warpgroup;
    if (u.state == EmuThread::Waiting && u.kind == want) {
      const bool includesMe = groupSize != 32 || (u.mask >> me & 1u);
      if (!includesMe) { all = false; continue; }  // its own collective completes first
      if (u.resolve != resolve || u.mask != mask || (u.what != what && strcmp(u.what, what) != 0))
        kernelFault(cudaErrorIllegalInstruction, "divergent warp collective: lane %d is at %s (mask 0x%08x), lane %d at %s (mask 0x%08x)", me, what, mask, k, u.what, u.mask);
    } else {
      all = false;
    }
  }
  if (!all) {
    waitHere(t, groupSize == 32 ? EmuThread::Warp : EmuThread::Warpgroup, what);
    return;
  }
  // Last to arrive: run the collective for everyone, wake the others.
  WarpSlot* slots[128] = {};
  for (int k = 0; k < members; ++k)
    if (groupSize != 32 || (mask >> k & 1u)) slots[k] = k == me ? slot : (*B->threads)[base + k].slot;
  resolve(slots, mask);
  for (int k = 0; k < members; ++k)
    if ((groupSize != 32 || (mask >> k & 1u)) && k != me) wake(B, (*B->threads)[base + k]);
}

void warpCollective(const char* what, WarpResolve resolve, uint32_t mask, WarpSlot* slot) {
  EmuThread* t = self();
  warpCollectiveImpl(t, what, resolve, mask, slot, 32);
}

void warpgroupCollective(const char* what, WarpResolve resolve, WarpSlot* slot) {
  EmuThread* t = self();
  if (t->block->n % 128) kernelFault(cudaErrorIllegalInstruction, "%s needs whole warpgroups, but the block has %d threads", what, t->block->n);
  warpCollectiveImpl(t, what, resolve, 0xffffffffu, slot, 128);
}

uint32_t activeMask() {
  EmuThread* t = self();
  Block* B = t->block;
  uint32_t m = 0;
  for (int k = 0; k < 32; ++k) {
    int idx = t->ctx.warp * 32 + k;
    if (idx < B->n && (*B->threads)[idx].state != EmuThread::Done) m |= 1u << k;
  }
  return m;
}

// shfl per the PTX ISA (shfl.sync): c = ((32 - width) << 8) | (mode == up ? 0 : 0x1f);
// segmask = c[12:8]; maxLane = (lane & segmask) | (c[4:0] & ~segmask); minLane = lane & segmask.
// up: j = lane - b, valid when j >= maxLane; down: j = lane + b, valid when j <= maxLane;
// bfly: j = lane ^ b, valid when j <= maxLane; idx: j = minLane | (b[4:0] & ~segmask), valid when
// j <= maxLane. An invalid j reads the lane's own value; a source lane outside the mask is
// undefined: the emulator returns poison (all ones).
void resolveShfl(WarpSlot* const* s, uint32_t mask) {
  uint64_t out[32];
  for (int lane = 0; lane < 32; ++lane) {
    if (!s[lane]) continue;
    int mode = s[lane]->width >> 16, width = s[lane]->width & 0xffff;
    if (width < 1 || width > 32 || (width & (width - 1))) kernelFault(cudaErrorIllegalInstruction, "shfl: width %d is not a power of two in 1..32", width);
    unsigned c = (unsigned(32 - width) << 8) | (mode == 0 ? 0u : 0x1fu);
    unsigned segmask = (c >> 8) & 0x1f;
    int maxLane = int((unsigned(lane) & segmask) | (c & 0x1f & ~segmask));
    int minLane = int(unsigned(lane) & segmask);
    int b = s[lane]->arg, j;
    bool valid;
    switch (mode) {
      case 0: j = lane - b; valid = j >= maxLane; break;
      case 1: j = lane + b; valid = j <= maxLane; break;
      case 2: j = lane ^ (b & 0x1f); valid = j <= maxLane; break;
      default: j = minLane | int(unsigned(b) & 0x1f & ~segmask); valid = j <= maxLane; break;
    }
    if (!valid) j = lane;
    out[lane] = (j >= 0 && j < 32 && (mask >> j & 1u) && s[j]) ? s[j]->in : ~uint64_t(0);
  }
  for (int lane = 0; lane < 32; ++lane)
    if (s[lane]) s[lane]->out = out[lane];
}

void resolveVote(WarpSlot* const* s, uint32_t mask) {
  uint32_t ballot = 0;
  for (int k = 0; k < 32; ++k)
    if (s[k] && s[k]->in) ballot |= 1u << k;
  for (int k = 0; k < 32; ++k)
    if (s[k]) s[k]->out = s[k]->arg == 1 ? uint64_t(ballot == mask) : ballot;
}

void resolveMatch(WarpSlot* const* s, uint32_t mask) {
  bool allSame = true;
  int first = -1;
  for (int k = 0; k < 32; ++k)
    if (s[k]) {
      if (first < 0) first = k;
      else if (s[k]->in != s[first]->in) allSame = false;
    }
  for (int k = 0; k < 32; ++k) {
    if (!s[k]) continue;
    if (s[k]->arg == 1) {
      s[k]->out = allSame ? mask : 0;
    } else {
      uint32_t m = 0;
      for (int j = 0; j < 32; ++j)
        if (s[j] && s[j]->in == s[k]->in) m |= 1u << j;
      s[k]->out = m;
    }
  }
}

void resolveSyncwarp(WarpSlot* const*, uint32_t) {}

void resolveReduce(WarpSlot* const* s, uint32_t) {
  int op = -1;
  uint32_t acc = 0;
  bool first = true;
  for (int k = 0; k < 32; ++k) {
    if (!s[k]) continue;
    op = s[k]->arg;
    uint32_t v = uint32_t(s[k]->in);
    if (first) { acc = v; first = false; continue; }
    switch (op) {
      case 0: acc += v; break;
      case 1: acc = v < acc ? v : acc; break;
      case 2: acc = v > acc ? v : acc; break;
      case 3: acc &= v; break;
      case 4: acc |= v; break;
      default: acc ^= v; break;
    }
  }
  for (int k = 0; k < 32; ++k)
    if (s[k]) s[k]->out = acc;
}

void* staticShared(const void* tag, size_t bytes, size_t align) {
  EmuThread* t = self();
  Block* B = t->block;
  for (auto& [k, p] : B->tags)
    if (k == tag) return p;
  if (align < 16) align = 16;
  size_t off = (B->staticUsed + align - 1) & ~(align - 1);
  if (off + bytes + B->dynBytes > kSmemLimit)
    kernelFault(cudaErrorLaunchOutOfResources, "shared memory exhausted: %zu bytes of static and %zu of dynamic shared memory exceed 227 KiB", off + bytes, B->dynBytes);
  B->staticUsed = off + bytes;
  void* p = B->smem + off;
  memset(p, 0xff, bytes);  // poison: a read before any write sees NaN / all ones
  B->tags.push_back({tag, p});
  return p;
}

void* dynamicShared() {
  EmuThread* t = self();
  return t->block->dynBytes ? t->block->dyn : t->block->smem + kSmemRegion;
}
size_t dynamicSharedBytes() { return self()->block->dynBytes; }

bool isShared(const void* p, size_t bytes) {
  Block* B = tlsBlock;
  if (!B) return false;
  const char* a = static_cast<const char*>(p);
  return a >= B->smem && a + bytes <= B->smem + kSmemRegion && bytes <= kSmemRegion;
}

char* sharedWindow() {
  Block* B = tlsBlock;
  return B ? B->smem : nullptr;
}

void asyncProxy(void (*fn)(void*), std::shared_ptr<void> arg) {
  Block* B = tlsBlock;
  B->asyncQ.push_back({fn, std::move(arg)});
}

void cpAsyncQueue(void* dst, const void* src, int bytes, int srcBytes) {
  EmuThread* t = self();
  if (!isShared(dst, size_t(bytes))) kernelFault(cudaErrorIllegalAddress, "cp.async: destination %p is not in shared memory", dst);
  if (reinterpret_cast<uintptr_t>(dst) % unsigned(bytes) || reinterpret_cast<uintptr_t>(src) % unsigned(bytes))
    kernelFault(cudaErrorMisalignedAddress, "cp.async of %d bytes: addresses %p <- %p are not %d-byte aligned", bytes, dst, src, bytes);
  if (srcBytes > 0 && !isGlobal(src, size_t(srcBytes))) kernelFault(cudaErrorIllegalAddress, "cp.async: source %p (%d bytes) is outside every allocation", src, srcBytes);
  t->cp.push_back({dst, src, bytes, srcBytes < 0 ? 0 : (srcBytes > bytes ? bytes : srcBytes), t->cpGroup});
}

void cpAsyncCommit() { ++self()->cpGroup; }

void cpAsyncWait(int pending) {
  EmuThread* t = self();
  int upto = t->cpGroup - pending;  // groups with index < upto must be complete
  std::vector<CpCopy> keep;
  for (auto& c : t->cp) {
    if (c.group < upto) {
      memcpy(c.dst, c.src, size_t(c.srcBytes));
      if (c.bytes > c.srcBytes) memset(static_cast<char*>(c.dst) + c.srcBytes, 0, size_t(c.bytes - c.srcBytes));
    } else {
      keep.push_back(c);
    }
  }
  t->cp.swap(keep);
}

// mbarrier per the PTX ISA: init sets the expected arrival count, pending = count, tx-count 0,
// phase 0. A phase completes when pending arrivals and tx-count are both zero; the next phase
// then starts with pending = expected. test_wait/try_wait.parity(P) succeed once the phase with
// parity P has completed, i.e. when the current phase's parity differs from P.
namespace {
MbarState& mbarGet(uint64_t* bar, const char* what) {
  EmuThread* t = tlsThread;
  Block* B = t ? t->block : tlsBlock;
  auto it = B->mbars.find(bar);
  if (it == B->mbars.end()) kernelFault(cudaErrorIllegalInstruction, "%s on %p: not an initialised mbarrier (mbarrier.init missing?)", what, static_cast<void*>(bar));
  return it->second;
}
void mbarCheckPhase(Block* B, uint64_t* bar, MbarState& m) {
  if (m.pending != 0 || m.tx != 0) return;
  uint32_t done = m.phase & 1u;
  ++m.phase;
  m.pending = m.expected;
  *bar = m.phase;  // something changes in shared memory too
  for (int i = 0; i < B->n; ++i) {
    EmuThread& u = (*B->threads)[i];
    if (u.state == EmuThread::Waiting && u.kind == EmuThread::Mbar && u.mbar == bar && u.parity == done) wake(B, u);
  }
}
}  // namespace

void mbarInit(uint64_t* bar, unsigned count) {
  EmuThread* t = self();
  if (!isShared(bar, 8) || reinterpret_cast<uintptr_t>(bar) % 8) kernelFault(cudaErrorMisalignedAddress, "mbarrier.init: %p is not an 8-byte aligned shared-memory address", static_cast<void*>(bar));
  if (count == 0 || count >= (1u << 20)) kernelFault(cudaErrorIllegalInstruction, "mbarrier.init: count %u outside 1 .. 2^20-1", count);
  MbarState m;
  m.expected = m.pending = count;
  t->block->mbars[bar] = m;
  *bar = 0;
}

void mbarInval(uint64_t* bar) { self()->block->mbars.erase(bar); }

uint64_t mbarArrive(uint64_t* bar, unsigned count, int64_t expectTx) {
  EmuThread* t = self();
  MbarState& m = mbarGet(bar, "mbarrier.arrive");
  uint64_t token = m.phase;
  m.tx += expectTx;
  if (count > m.pending)
    kernelFault(cudaErrorIllegalInstruction, "mbarrier.arrive: %u arrival(s) but only %u pending in this phase (%s)", count, m.pending, mbarDescribe(t->block, bar).c_str());
  m.pending -= count;
  mbarCheckPhase(t->block, bar, m);
  return token;
}

void mbarExpectTx(uint64_t* bar, int64_t tx) {
  EmuThread* t = self();
  MbarState& m = mbarGet(bar, "mbarrier.expect_tx");
  m.tx += tx;
  mbarCheckPhase(t->block, bar, m);
}

void mbarCompleteTx(uint64_t* bar, int64_t tx) {
  Block* B = tlsThread ? tlsThread->block : tlsBlock;
  MbarState& m = mbarGet(bar, "mbarrier complete_tx");
  m.tx -= tx;
  mbarCheckPhase(B, bar, m);
}

bool mbarTestWait(uint64_t* bar, uint32_t parity) {
  MbarState& m = mbarGet(bar, "mbarrier.test_wait");
  return (m.phase & 1u) != (parity & 1u);
}

bool mbarWait(uint64_t* bar, uint32_t parity) {
  EmuThread* t = self();
  if (mbarTestWait(bar, parity)) return true;
  t->mbar = bar;
  t->parity = parity & 1u;
  waitHere(t, EmuThread::Mbar, "mbarrier.try_wait");
  return true;
}

}  // namespace cuda_emu

long long clock64() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}
