// Admission control for the HTTP server: a fixed pool of handler threads
// behind a bounded queue, so that an overloaded server refuses the excess
// at once (503 with Retry-After) instead of letting every request wait.
//
// A request is refused on the spot, before any work is done for it, when
// max_inflight requests are queued or running (kQueueFull), or (kQueueTime)
// when the oldest queued request has waited longer than max_queue_wait (the
// threads are not keeping up, and a new request would wait at least as
// long), or when the requests queued ahead of it would take longer than
// max_queue_wait to run: their number times the recent mean time a handler
// runs (a moving average, which grows when the handlers are slowed down by
// other work on the machine), divided by the threads. The last rule keeps
// the wait of an admitted request near max_queue_wait even when the queue
// fills faster than its head ages.
//
// With a delay target (target_delay > 0) the pool also counts the time a
// request spent before it was read: the caller passes when it arrived (its
// first bytes' wait unread in the socket, by the kernel's receive time,
// before the moment it was read in full), and the delay the request would see
// when a handler starts it is that wait plus the queue's run time. As in
// CoDel, a standing queue is told from a burst by the minimum of that delay
// over an interval; and, as CoDel does not drop while its queue holds less
// than a packet, overload is judged on requests, not on stalls of the
// machine: an interval counts only if it was loaded, that is it saw at least
// kMinRequestsPerInterval requests per target_interval, counted over the
// longer of the interval and the span of their arrival times without the
// oldest eighth (a stall that held
// a low-rate stream and let it be read at once does not crowd the interval;
// a deep backlog read in order does, however long it waited; a few very old
// requests do not stretch the span). When every request of a whole
// loaded interval would start later than target_delay, the pool is
// overloaded, and from then on refuses (kLate) every request that would
// start later than target_delay, while every one of at least
// kMinRequestsPerInterval requests of an interval would start later (the
// queue stands), or the interval is loaded and more than a quarter of its
// requests would start later; otherwise the state ends (the queue is gone;
// a few late ones are stalls of a busy machine). Outside the overload state a
// request is refused as late only if its delay exceeds max_queue_wait and
// the previous interval was loaded: a lone or low-rate request stream is
// never shed for a stall, however long it waited (max_queue_wait still
// bounds the queue). So bursts shorter than an interval are absorbed (up to
// max_queue_wait), and
// under sustained overload the requests it admits start within target_delay
// of their arrival. Otherwise a request is admitted, and an admitted
// request is always served: dropping it after it waited would waste its wait
// (an earlier version shed late requests at the head of the queue; after a
// stall of the threads it dropped whole queues and goodput collapsed). So the
// queue stays short and requests that are served keep a latency close to the
// unloaded one. Probes, metrics and the model's metadata bypass the pool
// (HttpServer runs them on its I/O threads), so they are never shed.
//
// Thread-safety: TrySubmit and the accessors may be called from any thread.
// Stop (also run by the destructor) must not be called from a worker.
#ifndef CFREC_SERVER_ADMISSION_H_
#define CFREC_SERVER_ADMISSION_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "cfrec/schemas/status.h"

namespace cfrec::server {

struct AdmissionOptions {
  // Threads running handlers. Default 2 (one per core of the target
  // machine; handlers are CPU-bound).
  int threads = 2;
  // Most requests queued or running at once; one more is refused at once.
  // Default 64.
  size_t max_inflight = 64;
  // While the oldest queued request has waited longer than this, or the
  // queue ahead would take longer than this to run, new requests are
  // refused. Default 20 ms.
  std::chrono::milliseconds max_queue_wait{20};
  // Nice value added to the handler threads (Linux, per thread; 0-19).
  // Above 0, the I/O threads, which read requests and answer the refused
  // ones, win the CPU over the handlers when the machine is saturated, so
  // a request is seen (and admitted or refused) soon after it arrives
  // instead of waiting unread in the socket. Default 0.
  int handler_nice = 0;
  // Delay target (see above): 0 turns the rule off (only max_queue_wait
  // and max_inflight refuse). Default 0.
  std::chrono::microseconds target_delay{0};
  // The interval over which a standing queue is told from a burst.
  // Default 100 ms.
  std::chrono::milliseconds target_interval{100};

  // InvalidArgument when threads < 1, max_inflight < threads,
  // max_queue_wait or target_delay is negative, target_interval is not
  // positive or handler_nice is outside 0-19.
  Status Validate() const;
};

enum class ShedReason { kQueueFull, kQueueTime, kLate };
// "queue_full", "queue_time", "late" (the metric's label values).
std::string_view ShedReasonName(ShedReason reason);

// True for the routes that are never shed: GET /healthz, /readyz, /metrics
// and /v1/model (a few fields of the published snapshot, which deployments
// poll to see the model's age), whatever the query string. `target` is the
// request target.
bool NeverShed(std::string_view target);

class AdmissionPool {
 public:
  using Clock = std::chrono::steady_clock;
  // The fewest requests per target_interval (by their arrival times) in an
  // interval that can start or hold the overload state: 16, i.e. 160/s at
  // the default 100 ms. Fewer are too few for the interval's minimum delay
  // to tell a standing queue from a stall (a dashboard or a poller sends a
  // few a second), and far below what a standing queue needs on the
  // handlers this pool runs (thousands a second at sub-millisecond runs).
  static constexpr uint64_t kMinRequestsPerInterval = 16;
  // The most requests per interval whose arrival times are kept to judge
  // the interval's rate (a sample of it beyond that: 64k requests per
  // interval is far above what the handlers can serve).
  static constexpr size_t kMaxTimedArrivals = 65536;
  // `now` is the clock (tests fix it); null means Clock::now.
  explicit AdmissionPool(const AdmissionOptions& options,
                         std::function<Clock::time_point()> now = nullptr);
  // Stop().
  ~AdmissionPool();

  AdmissionPool(const AdmissionPool&) = delete;
  AdmissionPool& operator=(const AdmissionPool&) = delete;

  // Queues `run` for a handler thread and returns nullopt, or refuses at
  // once and returns why (kQueueFull also once the pool is stopped); the
  // caller then answers 503 itself. `shed` runs instead of `run` only for a
  // request still queued when Stop() is called. `arrived` is when the
  // request arrived (see above; the delay target counts from it); the
  // default, now, counts only the queue.
  std::optional<ShedReason> TrySubmit(
      std::function<void()> run, std::function<void()> shed,
      std::optional<Clock::time_point> arrived = std::nullopt);

  // Run to completion: claims a handler slot for a request that the calling
  // thread (the I/O thread that read it) runs itself, when it would not
  // wait for one: not stopped, nothing queued and fewer than `threads`
  // requests running. A claimed request counts as in flight (and as
  // running) until FinishInline, so the refusal rules and the queue see it
  // like one on a handler thread; it saves the hand-off to a handler
  // thread and back (two wake-ups). False: submit it instead (also when
  // the request, which arrived at `arrived`, is late for the delay target:
  // TrySubmit then refuses it).
  bool TryStartInline(std::optional<Clock::time_point> arrived = std::nullopt);
  // Ends a request claimed by TryStartInline; `ran` is its run time (it
  // feeds the mean run time like a handler thread's).
  void FinishInline(Clock::duration ran);

  // Stops taking requests, lets the threads finish what is running, calls
  // `shed` for what is still queued, and joins the threads. Idempotent.
  void Stop();

  // True once Stop() has begun.
  bool stopped() const;
  // Requests queued or running now.
  size_t inflight() const;
  // Requests refused since the start, by reason.
  uint64_t shed(ShedReason reason) const;
  // Requests run by TryStartInline callers since the start.
  uint64_t inline_runs() const;
  // True while the delay target's overload state holds (see above).
  bool overloaded() const;

 private:
  struct Task {
    std::function<void()> run;
    std::function<void()> shed;
    Clock::time_point queued_at;
  };
  void Work();
  // Counts a finished request's run time into mean_run_.
  void RecordRunLocked(Clock::duration ran);
  // How long the queue would take to run at the recent mean run time.
  Clock::duration QueueRunTimeLocked() const;
  // Feeds the delay a request would see at its start (it arrived at
  // `arrived`) into the overload state (closing the interval first when it
  // is over); true if the pool is overloaded and that delay is over
  // target_delay. Always false without a delay target.
  bool LateLocked(Clock::time_point now, Clock::duration delay,
                  Clock::time_point arrived);
  // Closes the current interval when it is over, updating overloaded_.
  void CloseIntervalLocked(Clock::time_point now);
  // Counts a request's delay into the current interval.
  void CountLocked(Clock::duration delay, Clock::time_point arrived);
  // Whether the current interval's requests were enough to form a queue
  // (see kMinRequestsPerInterval).
  // Reorders interval_arrivals_.
  bool IntervalLoadedLocked(Clock::time_point now);
  // The most delay a request may see now: target_delay when overloaded,
  // max_queue_wait after a loaded interval, else unbounded.
  Clock::duration BudgetLocked() const;

  const AdmissionOptions options_;
  const std::function<Clock::time_point()> now_;
  mutable std::mutex mu_;
  std::condition_variable ready_;
  std::deque<Task> queue_;    // guarded by mu_
  size_t inflight_ = 0;       // guarded by mu_: queued + running
  bool stopped_ = false;      // guarded by mu_
  uint64_t shed_full_ = 0;    // guarded by mu_
  uint64_t shed_time_ = 0;    // guarded by mu_
  uint64_t inline_runs_ = 0;  // guarded by mu_
  // Moving average of a handler's run time (wall clock), 0 until the first
  // request has run; guarded by mu_.
  Clock::duration mean_run_{0};
  // Delay target state, guarded by mu_: the current interval's start, the
  // least delay seen in it, and how many requests it saw.
  bool overloaded_ = false;
  bool last_loaded_ = false;  // the previous interval was loaded
  uint64_t shed_late_ = 0;
  Clock::time_point interval_start_{};
  // The arrival times of the interval's first kMaxTimedArrivals requests.
  std::vector<Clock::time_point> interval_arrivals_;
  Clock::duration interval_min_ = Clock::duration::max();
  uint64_t interval_requests_ = 0;
  uint64_t interval_late_ = 0;  // of them, over target_delay
  std::vector<std::thread> threads_;
};

}  // namespace cfrec::server

#endif  // CFREC_SERVER_ADMISSION_H_
