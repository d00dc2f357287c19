#include "cfrec/server/admission.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace cfrec::server {

Status AdmissionOptions::Validate() const {
  if (threads < 1)
    return Status::InvalidArgument("handler threads must be >= 1");
  if (max_inflight < static_cast<size_t>(threads)) {
    return Status::InvalidArgument(
        "max_inflight must be at least the number of handler threads (" +
        std::to_string(threads) + ")");
  }
  if (max_queue_wait.count() < 0) {
    return Status::InvalidArgument("max_queue_wait must not be negative");
  }
  if (handler_nice < 0 || handler_nice > 19) {
    return Status::InvalidArgument("handler_nice must be in [0, 19]");
  }
  return Status::Ok();
}

std::string_view ShedReasonName(ShedReason reason) {
  switch (reason) {
    case ShedReason::kQueueFull:
      return "queue_full";
    case ShedReason::kQueueTime:
      return "queue_time";
  }
  return "unknown";
}

bool NeverShed(std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  return path == "/healthz" || path == "/readyz" || path == "/metrics";
}

AdmissionPool::AdmissionPool(const AdmissionOptions& options,
                             std::function<Clock::time_point()> now)
    : options_(options),
      now_(now ? std::move(now) : [] { return Clock::now(); }) {
  const int threads = options_.threads < 1 ? 1 : options_.threads;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

AdmissionPool::~AdmissionPool() { Stop(); }

std::optional<ShedReason> AdmissionPool::TrySubmit(std::function<void()> run,
                                                   std::function<void()> shed) {
  {
    std::lock_guard lock(mu_);
    if (stopped_ || inflight_ >= options_.max_inflight) {
      ++shed_full_;
      return ShedReason::kQueueFull;
    }
    const Clock::time_point now = now_();
    if (!queue_.empty() &&
        (now - queue_.front().queued_at > options_.max_queue_wait ||
         QueueRunTimeLocked() > options_.max_queue_wait)) {
      ++shed_time_;
      return ShedReason::kQueueTime;
    }
    ++inflight_;
    queue_.push_back({std::move(run), std::move(shed), now});
  }
  ready_.notify_one();
  return std::nullopt;
}

bool AdmissionPool::TryStartInline() {
  std::lock_guard lock(mu_);
  const size_t running = inflight_ - queue_.size();
  if (stopped_ || !queue_.empty() ||
      running >= static_cast<size_t>(std::max(1, options_.threads)) ||
      inflight_ >= options_.max_inflight) {
    return false;
  }
  ++inflight_;
  ++inline_runs_;
  return true;
}

void AdmissionPool::FinishInline(Clock::duration ran) {
  std::lock_guard lock(mu_);
  --inflight_;
  RecordRunLocked(ran);
}

void AdmissionPool::RecordRunLocked(Clock::duration ran) {
  // An average over the last ~8 requests: it follows a slowdown within a
  // few milliseconds at the rates where it matters.
  mean_run_ = mean_run_.count() == 0 ? ran : mean_run_ + (ran - mean_run_) / 8;
}

void AdmissionPool::Work() {
  // Named for profilers and `top -H`.
  pthread_setname_np(pthread_self(), "http-handler");
  if (options_.handler_nice > 0) {
    // Linux: the nice value is per thread (the calling thread's id).
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)),
                options_.handler_nice);
  }
  while (true) {
    Task task;
    bool stopped = false;
    {
      std::unique_lock lock(mu_);
      ready_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopped and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
      stopped = stopped_;
    }
    // An admitted request is served, however long it waited: it has paid
    // for its place. Only a stop sheds what is still queued.
    if (stopped) {
      if (task.shed) task.shed();
      std::lock_guard lock(mu_);
      --inflight_;
      continue;
    }
    const Clock::time_point start = now_();
    task.run();
    const Clock::duration ran = now_() - start;
    std::lock_guard lock(mu_);
    --inflight_;
    RecordRunLocked(ran);
  }
}

AdmissionPool::Clock::duration AdmissionPool::QueueRunTimeLocked() const {
  return mean_run_ * static_cast<int64_t>(queue_.size()) /
         static_cast<int64_t>(std::max(1, options_.threads));
}

void AdmissionPool::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_ && threads_.empty()) return;
    stopped_ = true;
  }
  ready_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

bool AdmissionPool::stopped() const {
  std::lock_guard lock(mu_);
  return stopped_;
}

size_t AdmissionPool::inflight() const {
  std::lock_guard lock(mu_);
  return inflight_;
}

uint64_t AdmissionPool::inline_runs() const {
  std::lock_guard lock(mu_);
  return inline_runs_;
}

uint64_t AdmissionPool::shed(ShedReason reason) const {
  std::lock_guard lock(mu_);
  return reason == ShedReason::kQueueFull ? shed_full_ : shed_time_;
}

}  // namespace cfrec::server
