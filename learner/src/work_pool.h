// WorkPool: a fixed set of threads that share the tasks of one call, for
// the fused training kernels' phases (a batch split into parts by samples
// or by rows). Run(tasks, fn) calls fn(0) .. fn(tasks - 1), each once; the
// caller and the workers claim tasks from a shared counter, and Run returns
// when every task has returned. A task's index, not the thread that runs
// it, decides its work, so results do not depend on scheduling.
//
// On a busy machine a worker may be woken late: the caller then runs the
// remaining tasks itself instead of waiting for the worker to start, so a
// second thread never costs more than the tasks it actually took. Waiting
// spins (with pause) for up to 200 us, longer than the gaps between a
// training step's phases, then sleeps on the atomic (futex).
//
// Workers run under the scheduling of the thread that calls Run (policy and
// nice value, read at the first Run that hands them work): the pool is
// created wherever its owner is, often on a thread of normal priority, but
// its work is the caller's (the trainer's background thread).
//
// Thread-safety: Run is called by one thread at a time (the Learner's).
#ifndef CFREC_LEARNER_SRC_WORK_POOL_H_
#define CFREC_LEARNER_SRC_WORK_POOL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "cfrec/schemas/thread_sched.h"

namespace cfrec::learner {

class WorkPool {
 public:
  explicit WorkPool(int threads);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  int threads() const { return threads_; }
  // fn(task) for task in [0, tasks); fn must not throw.
  void Run(int tasks, const std::function<void(int)>& fn);

 private:
  void Worker();
  // Claims and runs tasks of generation `gen` until none is left.
  void Drain(uint32_t gen);

  const int threads_;
  const std::function<void(int)>* fn_ = nullptr;
  std::atomic<int> tasks_{0};
  // (generation << 32) | next unclaimed task.
  std::atomic<uint64_t> ticket_{0};
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> stop_{false};
  // The first caller's scheduling, which workers adopt; written once by
  // Run before it publishes the generation that workers then read.
  ThreadSched caller_sched_;
  bool caller_sched_read_ = false;  // Run's thread only
  std::vector<std::thread> workers_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_WORK_POOL_H_
