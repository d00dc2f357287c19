#include "round_pipeline.h"

#include <utility>

namespace cfrec::learner {

RoundPipeline::RoundPipeline() : thread_([this] { Loop(); }) {}

RoundPipeline::~RoundPipeline() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !job_ && !running_; });
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::exception_ptr RoundPipeline::Submit(std::function<void()> job) {
  if (!sched_read_) {
    sched_ = ThisThreadSched();
    sched_read_ = true;
  }
  std::exception_ptr before;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !job_ && !running_; });
    before = std::exchange(error_, nullptr);
    job_ = std::move(job);
  }
  cv_.notify_all();
  return before;
}

void RoundPipeline::Wait() {
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !job_ && !running_; });
    error = std::exchange(error_, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

void RoundPipeline::Loop() {
  bool adopted = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || static_cast<bool>(job_); });
    if (stop_) return;
    std::function<void()> job = std::move(job_);
    job_ = nullptr;
    running_ = true;
    if (!adopted) {
      // sched_ was written before the job was published under mu_.
      const ThreadSched sched = sched_;
      lock.unlock();
      // Lowering one's own priority is always allowed; a failure leaves
      // the thread as it was.
      (void)LowerThisThreadTo(sched);
      lock.lock();
      adopted = true;
    }
    lock.unlock();
    std::exception_ptr error;
    try {
      job();
    } catch (...) {
      error = std::current_exception();
    }
    job = nullptr;
    lock.lock();
    error_ = error;
    running_ = false;
    cv_.notify_all();
  }
}

}  // namespace cfrec::learner
