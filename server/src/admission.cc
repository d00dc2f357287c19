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
  if (target_delay.count() < 0) {
    return Status::InvalidArgument("target_delay must not be negative");
  }
  if (target_interval.count() <= 0) {
    return Status::InvalidArgument("target_interval must be positive");
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
    case ShedReason::kLate:
      return "late";
  }
  return "unknown";
}

bool NeverShed(std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  return path == "/healthz" || path == "/readyz" || path == "/metrics" ||
         path == "/v1/model";
}

AdmissionPool::AdmissionPool(const AdmissionOptions& options,
                             std::function<Clock::time_point()> now)
    : options_(options),
      now_(now ? std::move(now) : [] { return Clock::now(); }) {
  const int threads = options_.threads < 1 ? 1 : options_.threads;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

AdmissionPool::~AdmissionPool() { Stop(); }

std::optional<ShedReason> AdmissionPool::TrySubmit(
    std::function<void()> run, std::function<void()> shed,
    std::optional<Clock::time_point> arrived) {
  {
    std::lock_guard lock(mu_);
    const Clock::time_point now = now_();
    const Clock::duration waited =
        arrived.has_value() ? std::max(now - *arrived, Clock::duration::zero())
                            : Clock::duration::zero();
    // The delay it would see: its wait so far, then the queue ahead, by
    // the queue's run time or, when the handlers are slowed down (by other
    // work on the machine), by what the oldest queued request has waited
    // already, whichever is longer.
    Clock::duration ahead = QueueRunTimeLocked();
    if (!queue_.empty())
      ahead = std::max(ahead, now - queue_.front().queued_at);
    const bool late = LateLocked(now, waited + ahead, arrived.value_or(now));
    if (stopped_ || inflight_ >= options_.max_inflight) {
      ++shed_full_;
      return ShedReason::kQueueFull;
    }
    if (late) {
      ++shed_late_;
      return ShedReason::kLate;
    }
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

bool AdmissionPool::TryStartInline(std::optional<Clock::time_point> arrived) {
  std::lock_guard lock(mu_);
  const size_t running = inflight_ - queue_.size();
  if (stopped_ || !queue_.empty() ||
      running >= static_cast<size_t>(std::max(1, options_.threads)) ||
      inflight_ >= options_.max_inflight) {
    return false;  // TrySubmit takes it (and counts it)
  }
  if (arrived.has_value() && options_.target_delay.count() > 0) {
    // It would run at once: its delay is its wait so far. A late one is
    // left to TrySubmit, which refuses it and counts it then (so it is
    // counted once).
    const Clock::time_point now = now_();
    const Clock::duration waited =
        std::max(now - *arrived, Clock::duration::zero());
    CloseIntervalLocked(now);
    if (waited > BudgetLocked()) return false;
    CountLocked(waited, *arrived);
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

bool AdmissionPool::LateLocked(Clock::time_point now, Clock::duration delay,
                               Clock::time_point arrived) {
  if (options_.target_delay.count() <= 0) return false;
  CloseIntervalLocked(now);
  CountLocked(delay, arrived);
  return delay > BudgetLocked();
}

AdmissionPool::Clock::duration AdmissionPool::BudgetLocked() const {
  if (overloaded_) return options_.target_delay;
  // Outside the overload state a burst may wait up to max_queue_wait, but
  // only while the previous interval was loaded: a wait that no load of
  // requests explains is a stall of the machine (or of the client's
  // network), and a lone or low-rate request is never refused as late for
  // it, however long it waited. max_queue_wait still bounds the queue.
  if (last_loaded_) {
    return std::max<Clock::duration>(options_.max_queue_wait,
                                     options_.target_delay);
  }
  return Clock::duration::max();
}

bool AdmissionPool::IntervalLoadedLocked(Clock::time_point now) {
  // The requests' own rate, over the longer of the interval's own length
  // and the span of their arrival times (from the oldest after the oldest
  // eighth to the newest): a stall that held a low-rate stream and then let
  // it be read at once spreads its requests over the stall; a backlog read
  // in order bunches them however long they waited; a few very old
  // requests (held behind a slow write, or a step of the real-time clock)
  // cannot stretch the span; and a burst (a page's requests) followed by a
  // pause counts over the pause.
  const uint64_t n = interval_arrivals_.size();
  if (n < kMinRequestsPerInterval) return false;
  const uint64_t trimmed = n / 8;
  std::nth_element(interval_arrivals_.begin(),
                   interval_arrivals_.begin() + trimmed,
                   interval_arrivals_.end());
  const Clock::time_point oldest = interval_arrivals_[trimmed];
  const Clock::time_point newest = *std::max_element(
      interval_arrivals_.begin() + trimmed, interval_arrivals_.end());
  const Clock::duration span = std::max<Clock::duration>(
      {newest - oldest, now - interval_start_, std::chrono::milliseconds(1)});
  // Only the stored arrivals are timed (at most kMaxTimedArrivals of them):
  // the rate is theirs.
  const double per_interval =
      static_cast<double>(n - trimmed) *
      std::chrono::duration<double>(options_.target_interval).count() /
      std::chrono::duration<double>(span).count();
  return per_interval >= static_cast<double>(kMinRequestsPerInterval);
}

void AdmissionPool::CloseIntervalLocked(Clock::time_point now) {
  if (now - interval_start_ < options_.target_interval) return;
  // The interval is over. It makes the pool overloaded only if it was
  // loaded (above) and, as in CoDel, none of its requests would have
  // started within the target (a standing queue, not a burst); the state
  // holds while intervals stay loaded and more than a quarter of their
  // requests are late (a few late ones are stalls of a busy machine, which
  // must not hold the short budget for long). An interval without enough
  // requests ends it.
  const bool loaded = IntervalLoadedLocked(now);
  last_loaded_ = loaded;
  // A standing queue: every one of enough requests would have started late,
  // in an interval that requests kept closing (one that lasted two or more
  // had a pause in it: an idle gap ends the state).
  const bool standing = interval_requests_ >= kMinRequestsPerInterval &&
                        interval_min_ > options_.target_delay &&
                        now - interval_start_ < 2 * options_.target_interval;
  if (!overloaded_) {
    overloaded_ = loaded && standing;
  } else {
    // Held while the queue stands (whatever the requests' spread: reading a
    // deep backlog must not end it) or more than a quarter are late.
    overloaded_ =
        standing || (loaded && interval_late_ * 4 > interval_requests_);
  }
  interval_start_ = now;
  interval_arrivals_.clear();
  interval_min_ = Clock::duration::max();
  interval_requests_ = 0;
  interval_late_ = 0;
}

void AdmissionPool::CountLocked(Clock::duration delay,
                                Clock::time_point arrived) {
  interval_min_ = std::min(interval_min_, delay);
  if (interval_arrivals_.size() < kMaxTimedArrivals) {
    interval_arrivals_.push_back(arrived);
  }
  ++interval_requests_;
  if (delay > options_.target_delay) ++interval_late_;
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

bool AdmissionPool::overloaded() const {
  std::lock_guard lock(mu_);
  return overloaded_;
}

uint64_t AdmissionPool::shed(ShedReason reason) const {
  std::lock_guard lock(mu_);
  switch (reason) {
    case ShedReason::kQueueFull:
      return shed_full_;
    case ShedReason::kQueueTime:
      return shed_time_;
    case ShedReason::kLate:
      return shed_late_;
  }
  return 0;
}

}  // namespace cfrec::server
