#include "work_pool.h"

#include <chrono>

namespace cfrec::learner {
namespace {

// How long a waiting thread spins before it sleeps: longer than the gaps
// between a training step's phases (tens of microseconds of one thread's
// work, e.g. the Adam scalars or the shuffle), so a worker is not put to
// sleep and woken by a system call at every phase, whose wake-up on a
// virtual machine took longer than the gap.
constexpr auto kSpinFor = std::chrono::microseconds(200);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waits until `a` no longer holds `old`: spins up to kSpinFor, then sleeps.
template <typename T>
void AwaitChange(const std::atomic<T>& a, T old) {
  const auto until = std::chrono::steady_clock::now() + kSpinFor;
  do {
    for (int k = 0; k < 64; ++k) {
      if (a.load(std::memory_order_acquire) != old) return;
      CpuRelax();
    }
  } while (std::chrono::steady_clock::now() < until);
  while (a.load(std::memory_order_acquire) == old) {
    a.wait(old, std::memory_order_acquire);
  }
}

}  // namespace

WorkPool::WorkPool(int threads) : threads_(threads < 1 ? 1 : threads) {
  for (int t = 1; t < threads_; ++t)
    workers_.emplace_back([this] { Worker(); });
}

WorkPool::~WorkPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void WorkPool::Run(int tasks, const std::function<void(int)>& fn) {
  if (threads_ == 1 || tasks <= 1) {
    for (int t = 0; t < tasks; ++t) fn(t);
    return;
  }
  if (!caller_sched_read_) {
    caller_sched_ = ThisThreadSched();
    caller_sched_read_ = true;
  }
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  fn_ = &fn;
  tasks_.store(tasks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  ticket_.store(uint64_t{gen} << 32, std::memory_order_release);
  generation_.store(gen, std::memory_order_release);
  generation_.notify_all();
  Drain(gen);
  for (int d = done_.load(std::memory_order_acquire); d != tasks;
       d = done_.load(std::memory_order_acquire)) {
    AwaitChange(done_, d);
  }
}

void WorkPool::Drain(uint32_t gen) {
  uint64_t ticket = ticket_.load(std::memory_order_acquire);
  while (true) {
    if (static_cast<uint32_t>(ticket >> 32) != gen) return;
    const int tasks = tasks_.load(std::memory_order_relaxed);
    const int task = static_cast<int>(ticket & 0xffffffffu);
    if (task >= tasks) return;
    // A successful claim means the call of `gen` is still running (its
    // tasks are not all done), so fn_ and tasks_ are that call's.
    if (!ticket_.compare_exchange_weak(ticket, ticket + 1,
                                       std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
      continue;
    }
    (*fn_)(task);
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == tasks) {
      done_.notify_all();
    }
    ticket = ticket_.load(std::memory_order_acquire);
  }
}

void WorkPool::Worker() {
  uint32_t seen = 0;
  bool adopted = false;
  while (true) {
    AwaitChange(generation_, seen);
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    if (!adopted) {
      // Lowering one's own priority is always allowed; a failure leaves
      // the worker as it was, which only costs the server CPU.
      (void)LowerThisThreadTo(caller_sched_);
      adopted = true;
    }
    Drain(seen);
  }
}

}  // namespace cfrec::learner
