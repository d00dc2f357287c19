// The CPU priority of the storage engine's background threads (RocksDB's
// flush and compaction pools, shared by every store in the process).
//
// A flush or compaction runs for tens of milliseconds at a time. At nice 0 it
// holds a core against the request handlers (nice 5 in `cfrec serve`): after
// a replay, the compactions took ~20 % of a 2-core machine for half a minute
// and a handler waited up to 50 ms behind one. At "low" (nice 19) they run on
// whatever CPU serving and ingest leave, and still get a share of a busy
// machine, so writes do not stall for want of a flush.
#ifndef CFREC_STATE_BACKGROUND_PRIORITY_H_
#define CFREC_STATE_BACKGROUND_PRIORITY_H_

#include <string_view>

#include "cfrec/schemas/status.h"

namespace cfrec::state {

// `priority`: "normal" (nice 0, RocksDB's default), "low" (nice 19) or
// "idle" (SCHED_IDLE: none at all while other threads want the CPU). Applies
// to threads already running (at their next job) and to later ones. A
// priority is only ever lowered: after "low", "normal" changes nothing.
// InvalidArgument for any other word.
Status SetStorageBackgroundPriority(std::string_view priority);

}  // namespace cfrec::state

#endif  // CFREC_STATE_BACKGROUND_PRIORITY_H_
