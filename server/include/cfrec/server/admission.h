// Admission control for the HTTP server: a fixed pool of handler threads
// behind a bounded queue, so that an overloaded server refuses the excess
// at once (503 with Retry-After) instead of letting every request wait.
//
// A request is admitted when fewer than max_inflight requests are queued or
// running; otherwise it is refused on the spot (kQueueFull). An admitted
// request that waited longer than max_queue_wait before a thread took it,
// while others still wait behind it (a standing queue), is refused then
// (kQueueTime): it would be answered late, and dropping it keeps the queue
// short, so requests that are served keep a latency close to the unloaded
// one. A request that waited alone is served: its wait came from the cores
// being busy elsewhere (the learner), not from a queue shedding would drain.
// Probes and metrics bypass the pool (HttpServer runs them on its I/O threads),
// so they are never shed.
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
  // Longest a request may wait in the queue; one that waited longer is
  // refused when a thread takes it. Default 20 ms.
  std::chrono::milliseconds max_queue_wait{20};

  // InvalidArgument when threads < 1, max_inflight < threads or
  // max_queue_wait is negative.
  Status Validate() const;
};

enum class ShedReason { kQueueFull, kQueueTime };
// "queue_full", "queue_time" (the metric's label values).
std::string_view ShedReasonName(ShedReason reason);

// True for the routes that are never shed: GET /healthz, /readyz and
// /metrics, whatever the query string. `target` is the request target.
bool NeverShed(std::string_view target);

class AdmissionPool {
 public:
  using Clock = std::chrono::steady_clock;
  // `now` is the clock (tests fix it); null means Clock::now.
  explicit AdmissionPool(const AdmissionOptions& options,
                         std::function<Clock::time_point()> now = nullptr);
  // Stop().
  ~AdmissionPool();

  AdmissionPool(const AdmissionPool&) = delete;
  AdmissionPool& operator=(const AdmissionPool&) = delete;

  // Queues `run` for a handler thread, or returns false at once when
  // max_inflight requests are queued or running (or the pool is stopped);
  // the caller then answers 503 itself. When the request waited longer than
  // max_queue_wait and others wait behind it, a thread calls `shed` instead
  // of `run`.
  bool TrySubmit(std::function<void()> run, std::function<void()> shed);

  // Stops taking requests, lets the threads finish what is running, calls
  // `shed` for what is still queued, and joins the threads. Idempotent.
  void Stop();

  // True once Stop() has begun.
  bool stopped() const;
  // Requests queued or running now.
  size_t inflight() const;
  // Requests refused since the start, by reason.
  uint64_t shed(ShedReason reason) const;

 private:
  struct Task {
    std::function<void()> run;
    std::function<void()> shed;
    Clock::time_point queued_at;
  };
  void Work();

  const AdmissionOptions options_;
  const std::function<Clock::time_point()> now_;
  mutable std::mutex mu_;
  std::condition_variable ready_;
  std::deque<Task> queue_;  // guarded by mu_
  size_t inflight_ = 0;     // guarded by mu_: queued + running
  bool stopped_ = false;    // guarded by mu_
  uint64_t shed_full_ = 0;  // guarded by mu_
  uint64_t shed_time_ = 0;  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace cfrec::server

#endif  // CFREC_SERVER_ADMISSION_H_
