#include "cfrec/schemas/thread_sched.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace cfrec {
namespace {

// The nice value is per thread on Linux: PRIO_PROCESS with the thread id.
id_t ThisThreadId() { return static_cast<id_t>(syscall(SYS_gettid)); }

int NativePolicy(SchedPolicy policy) {
  switch (policy) {
    case SchedPolicy::kBatch:
      return SCHED_BATCH;
    case SchedPolicy::kIdle:
      return SCHED_IDLE;
    case SchedPolicy::kNormal:
      break;
  }
  return SCHED_OTHER;
}

// How far a policy is below normal.
int Lowness(SchedPolicy policy) {
  switch (policy) {
    case SchedPolicy::kBatch:
      return 1;
    case SchedPolicy::kIdle:
      return 2;
    case SchedPolicy::kNormal:
      break;
  }
  return 0;
}

}  // namespace

std::string_view SchedPolicyName(SchedPolicy policy) {
  switch (policy) {
    case SchedPolicy::kBatch:
      return "batch";
    case SchedPolicy::kIdle:
      return "idle";
    case SchedPolicy::kNormal:
      break;
  }
  return "normal";
}

Result<SchedPolicy> ParseSchedPolicy(std::string_view name) {
  for (SchedPolicy p :
       {SchedPolicy::kNormal, SchedPolicy::kBatch, SchedPolicy::kIdle}) {
    if (name == SchedPolicyName(p)) return p;
  }
  return Status::InvalidArgument("unknown scheduling policy '" +
                                 std::string(name) +
                                 "' (want normal, batch or idle)");
}

Status LowerThisThreadTo(const ThreadSched& sched) {
  if (sched.nice < 0 || sched.nice > 19) {
    return Status::InvalidArgument("nice must be in [0, 19], got " +
                                   std::to_string(sched.nice));
  }
  const ThreadSched now = ThisThreadSched();
  // The nice value first: SCHED_OTHER and SCHED_BATCH weigh by it.
  if (sched.nice > now.nice &&
      setpriority(PRIO_PROCESS, ThisThreadId(), sched.nice) != 0) {
    return Status::Unavailable("setpriority(" + std::to_string(sched.nice) +
                               "): " + std::strerror(errno));
  }
  if (Lowness(sched.policy) > Lowness(now.policy)) {
    const sched_param param{};  // priority 0: the only one of these policies
    const int rc = pthread_setschedparam(pthread_self(),
                                         NativePolicy(sched.policy), &param);
    if (rc != 0) {
      return Status::Unavailable("pthread_setschedparam(" +
                                 std::string(SchedPolicyName(sched.policy)) +
                                 "): " + std::strerror(rc));
    }
  }
  return Status::Ok();
}

ThreadSched ThisThreadSched() {
  ThreadSched out;
  // The kernel's value (pid 0: the calling thread), not the copy glibc
  // keeps for pthread_getschedparam: another thread may have changed it
  // (RaiseThreadToNormal).
  const int policy = sched_getscheduler(0);
  if (policy == SCHED_BATCH) out.policy = SchedPolicy::kBatch;
  if (policy == SCHED_IDLE) out.policy = SchedPolicy::kIdle;
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, ThisThreadId());
  if (errno == 0) out.nice = nice;
  return out;
}

int64_t ThisThreadKernelId() { return static_cast<int64_t>(ThisThreadId()); }

bool IsBelow(SchedPolicy a, SchedPolicy b) { return Lowness(a) > Lowness(b); }

Status RaiseThreadTo(int64_t tid, SchedPolicy policy) {
  const sched_param param{};
  if (sched_setscheduler(static_cast<pid_t>(tid), NativePolicy(policy),
                         &param) != 0) {
    return Status::Unavailable("sched_setscheduler(" + std::to_string(tid) +
                               ", " + std::string(SchedPolicyName(policy)) +
                               "): " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace cfrec
