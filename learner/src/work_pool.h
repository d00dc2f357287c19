// WorkPool: a fixed set of threads that run one function together, for the
// fused training kernels' phases (a batch split by samples or by rows).
// Run(fn) calls fn(0) on the caller's thread and fn(1) .. fn(n-1) on the
// pool's workers, and returns when every call has returned. A pool of one
// thread starts no worker.
//
// Waiting spins briefly, then sleeps on the atomic (futex), so idle workers
// cost nothing between training rounds.
//
// Thread-safety: Run is called by one thread at a time (the Learner's).
#ifndef CFREC_LEARNER_SRC_WORK_POOL_H_
#define CFREC_LEARNER_SRC_WORK_POOL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace cfrec::learner {

class WorkPool {
 public:
  explicit WorkPool(int threads);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  int threads() const { return threads_; }
  // fn(t) for t in [0, threads()); fn must not throw.
  void Run(const std::function<void(int)>& fn);

 private:
  void Worker(int t);

  const int threads_;
  const std::function<void(int)>* fn_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_WORK_POOL_H_
