// Scheduling of background threads (Linux): the CPU policy and nice value
// under which throughput work (training, snapshot and index builds,
// checkpoint writes, the counterfactual generator) runs, so that it takes
// the CPU only when request handling and ingest do not want it.
//
//   normal  SCHED_OTHER at `nice`: the background thread competes with the
//           rest by weight (nice 10 gets ~1/10 of a nice-0 thread's share).
//   batch   SCHED_BATCH at `nice`: the same weight, but the thread never
//           preempts a running one on wake-up, and the scheduler treats it
//           as CPU-bound.
//   idle    SCHED_IDLE: runs only on a core no other thread wants (weight 3
//           against 1,024 for nice 0; any waking thread preempts it). On a
//           machine saturated by other work it may not run at all.
//
// Raising a priority back may need privileges. So these are set once, at
// the start of a thread, and never raise: a process started at nice 19 or
// under SCHED_IDLE keeps that. The one exception is RaiseThreadTo, for
// work that must now finish (a stop waiting on a background thread).
// Threads inherit their creator's policy and nice value.
//
// Thread-safety: the functions act on the calling thread only, except
// RaiseThreadTo.
#ifndef CFREC_SCHEMAS_THREAD_SCHED_H_
#define CFREC_SCHEMAS_THREAD_SCHED_H_

#include <cstdint>
#include <string_view>

#include "cfrec/schemas/status.h"

namespace cfrec {

enum class SchedPolicy { kNormal, kBatch, kIdle };

struct ThreadSched {
  SchedPolicy policy = SchedPolicy::kNormal;
  // Nice value (0-19); with kIdle it is set too but does not change the
  // thread's weight.
  int nice = 0;

  bool operator==(const ThreadSched&) const = default;
};

// "normal", "batch", "idle".
std::string_view SchedPolicyName(SchedPolicy policy);
// The inverse of SchedPolicyName; InvalidArgument for anything else.
Result<SchedPolicy> ParseSchedPolicy(std::string_view name);

// Lowers the calling thread to `sched`: its nice value becomes the larger
// of its own and sched.nice, and its policy the lower of its own and
// sched.policy (normal > batch > idle); nothing is raised. InvalidArgument
// when sched.nice is outside 0-19; Unavailable (with the system's reason)
// when the kernel refuses.
Status LowerThisThreadTo(const ThreadSched& sched);

// The calling thread's policy and nice value. Policies other than the three
// above (real-time ones) read as kNormal.
ThreadSched ThisThreadSched();

// The calling thread's kernel id (gettid), by which another thread can
// raise it (RaiseThreadTo).
int64_t ThisThreadKernelId();

// Whether `a` is a lower policy than `b` (normal > batch > idle).
bool IsBelow(SchedPolicy a, SchedPolicy b);

// Sets the policy of thread `tid` of this process to `policy`, keeping its
// nice value: the one raise there is, for work that must now finish (a
// stop waiting on a thread under SCHED_IDLE that a busy machine never
// runs). Leaving SCHED_BATCH needs no privilege; leaving SCHED_IDLE needs
// CAP_SYS_NICE or an RLIMIT_NICE of at least 20 - nice (a container's root
// may lack both). When refused: Unavailable with the system's reason, and
// nothing changes.
Status RaiseThreadTo(int64_t tid, SchedPolicy policy);

}  // namespace cfrec

#endif  // CFREC_SCHEMAS_THREAD_SCHED_H_
