#include "work_pool.h"

namespace cfrec::learner {
namespace {

constexpr int kSpins = 2000;

// Waits until `a` no longer holds `old`: spins a little, then sleeps.
template <typename T>
void AwaitChange(const std::atomic<T>& a, T old) {
  for (int k = 0; k < kSpins; ++k) {
    if (a.load(std::memory_order_acquire) != old) return;
  }
  while (a.load(std::memory_order_acquire) == old) {
    a.wait(old, std::memory_order_acquire);
  }
}

}  // namespace

WorkPool::WorkPool(int threads) : threads_(threads < 1 ? 1 : threads) {
  for (int t = 1; t < threads_; ++t)
    workers_.emplace_back([this, t] { Worker(t); });
}

WorkPool::~WorkPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void WorkPool::Run(const std::function<void(int)>& fn) {
  if (threads_ == 1) {
    fn(0);
    return;
  }
  fn_ = &fn;
  pending_.store(threads_ - 1, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  fn(0);
  for (int left = pending_.load(std::memory_order_acquire); left != 0;
       left = pending_.load(std::memory_order_acquire)) {
    AwaitChange(pending_, left);
  }
  fn_ = nullptr;
}

void WorkPool::Worker(int t) {
  uint64_t seen = 0;
  while (true) {
    AwaitChange(generation_, seen);
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    (*fn_)(t);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      pending_.notify_one();
    }
  }
}

}  // namespace cfrec::learner
