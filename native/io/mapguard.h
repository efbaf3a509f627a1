// Survives a memory-mapped file that shrinks under us. A checkpoint shard truncated on disk while
// the model is loaded makes every read of its lost pages raise SIGBUS, which would kill the process.
// Mappings registered here are guarded by one SIGBUS handler: a fault inside one maps a zero page
// over the faulting page (so the kernel that touched it finishes), and flags the mapping. The CPU
// stream then fails the op that ran into it, naming the file ("changed on disk while loaded; reload
// the model"), and the model asks faulted() before each step. A SIGBUS anywhere else goes to the
// handler that was there before (the default: the process dies as it would have).
//
// Cost: nothing per access (no copy, no check on the hot path); one atomic load per queued op on the
// stream; the handler runs only on a fault.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dsn::io {

/** Guards [base, base + bytes) for `path`; returns a slot for unguard(), or -1 when every slot is
 *  taken (the mapping is then unguarded, as before). Installs the handler on first use. */
int guardMapping(const void* base, size_t bytes, const std::string& path);
/** Stops guarding a mapping (before it is unmapped). */
void unguardMapping(int slot);
/** Whether the mapping in `slot` has faulted since it was guarded. */
bool mappingFaulted(int slot);
/** How many guarded faults there have been in this process (cheap: one atomic load). */
uint64_t guardedFaults();
/** "<path>: changed on disk while loaded (truncated); reload the model" for every guarded mapping
 *  that has faulted, joined by "; " (empty when none has). */
std::string faultReport();
/** For a stream task that reported a guarded fault itself (a read): the stream then does not record
 *  it a second time. takeFaultsReported() reads and clears the mark (per thread). */
void markFaultsReported();
bool takeFaultsReported();

}  // namespace dsn::io
