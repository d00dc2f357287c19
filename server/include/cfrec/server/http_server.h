// HttpServer: HTTP/1.1 transport on Boost.Beast/Asio. One event loop per
// I/O thread; one session per connection, on one loop; keep-alive and
// pipelining; read, idle and write timeouts; a body limit; a cap on concurrent
// connections; a graceful drain; load shedding (admission.h). It knows nothing
// about routes: every request goes to a Handler, on a pool of handler threads,
// except the probes, /metrics and /v1/model, which run on the I/O threads so
// that they are never shed, and requests that would not wait for a handler
// thread, which the I/O thread that read them runs itself
// (ServerOptions::run_inline).
//
// Thread-safety: Start, Drain and the destructor must be called from one
// controlling thread (not from a handler). port() and active_connections()
// may be called from any thread. The handler runs on the handler threads
// (and for the probes on the I/O threads), concurrently for different
// connections, and must be thread-safe and not block for long (with
// run_inline it also runs on the I/O threads).
#ifndef CFREC_SERVER_HTTP_SERVER_H_
#define CFREC_SERVER_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cfrec/schemas/status.h"
#include "cfrec/server/admission.h"
#include "cfrec/server/http_types.h"
#include "cfrec/server/metrics.h"
#include "cfrec/server/service.h"

namespace cfrec::server {

struct ServerOptions {
  // Address to bind: an IP literal or a name resolved once by Start().
  // Default "127.0.0.1" (loopback only).
  std::string host = "127.0.0.1";
  // TCP port; 0 picks a free one (tests), read it back with port().
  // Default 8080.
  uint16_t port = 8080;
  // I/O threads, each running an event loop of its own; connections are
  // spread over them in turn. Default 2.
  int io_threads = 2;
  // Longest time to receive one whole request once its first byte has
  // arrived; a slower client is disconnected. Default 10 s.
  std::chrono::milliseconds read_timeout{10'000};
  // Longest wait for the first byte of a request on an open connection
  // (after accept or between keep-alive requests). Default 30 s.
  std::chrono::milliseconds idle_timeout{30'000};
  // Longest time to write one response. Default 10 s.
  std::chrono::milliseconds write_timeout{10'000};
  // Largest request body; larger requests get 413 and the connection is
  // closed. Default 1 MiB.
  size_t max_body_bytes = 1 << 20;
  // Largest request line plus headers; larger get 431. Default 16 KiB.
  size_t max_header_bytes = 16 << 10;
  // Most open connections; one more is answered 503 and closed.
  // Default 1,024.
  size_t max_connections = 1024;
  // How long Drain() waits for requests in flight before it stops the I/O
  // threads anyway. Default 5 s.
  std::chrono::milliseconds drain_timeout{5'000};
  // Load shedding (admission.h): handlers run on admission.threads threads
  // behind a queue of at most admission.max_inflight requests; the excess,
  // and requests arriving while the oldest queued one has waited longer
  // than admission.max_queue_wait, are answered 503 with "Retry-After: 1"
  // at once and counted in
  // cfrec_http_requests_shed_total{reason}. GET /healthz, /readyz, /metrics
  // and /v1/model run on the I/O threads and are never shed.
  AdmissionOptions admission;
  // Run to completion: an admitted request that would not wait for a
  // handler thread (nothing queued, fewer than admission.threads running)
  // runs on the I/O thread that read it, which then writes the answer
  // itself: no hand-off to a handler thread and back (two thread wake-ups,
  // each a chance to wait behind other work for a CPU). At most
  // inline_io_threads I/O threads do so at once (by default io_threads - 1,
  // so one is always free to read and refuse; with one I/O thread every
  // request then goes to the handler threads). Counted in
  // cfrec_http_requests_inline_total. The price: while
  // a request runs inline, the other connections of its I/O thread's loop
  // (probes included) and, on the first loop, new connections wait for it,
  // so handlers must be short (they are: well under a millisecond for the
  // cfrec API). Default true.
  bool run_inline = true;
  // Most I/O threads running a request inline at once; 0 means
  // io_threads - 1. With all of them, requests wait unread while every I/O
  // thread runs one; with a delay target (admission.target_delay) the wait
  // counts, and a request that waited too long is refused once read.
  // Default 0.
  int inline_io_threads = 0;
  // 1-99: the I/O threads run under SCHED_FIFO at this priority, each
  // setting it on itself when it starts; 0 keeps SCHED_OTHER. No thread of
  // a normal policy (the learner, ingest, the broker) then takes the CPU
  // from a runnable I/O thread or delays its wake-up. Under overload the
  // I/O threads take all the CPU the kernel's real-time limit leaves
  // (sched_rt_runtime_us, 95 % of each CPU by default), and the other
  // threads (the handler threads, ingest, the broker, the learner) share
  // the rest: with as many I/O threads as cores, 5 % of each core, and a
  // CPU whose real-time budget ran out stops its I/O thread for the rest
  // of the period (about 50 ms). So it suits fewer I/O threads than
  // cores. Needs CAP_SYS_NICE (or RLIMIT_RTPRIO); when the kernel
  // refuses, a warning is logged once and the threads keep SCHED_OTHER.
  // Threads that an I/O thread creates start under SCHED_OTHER
  // (SCHED_RESET_ON_FORK). Measured in docs/BENCHMARKS.md: a lower p99 at
  // a light load, no change of the admitted p99 under overload. Default 0.
  int io_realtime_priority = 0;

  // InvalidArgument if a field is out of range (io_threads < 1, zero
  // timeouts or limits, inline_io_threads < 0, io_realtime_priority
  // outside 0..99, admission options).
  Status Validate() const;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // `metrics` (not owned, may be null, must outlive the server) receives
  // per-request counts and latencies (RecordRequest) and connection gauges.
  HttpServer(ServerOptions options, Handler handler,
             MetricsRegistry* metrics = nullptr);
  // Serves the cfrec API: Handle(context, request), metrics from
  // context.metrics. `context` is not owned and must outlive the server.
  HttpServer(ServerOptions options, const ServiceContext& context);
  // Drains (as Drain()) if still running.
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Validates the options, binds and listens, and starts the I/O threads.
  // After OK, port() is the bound port. Call at most once.
  Status Start();

  // Graceful stop: stops accepting, closes idle connections, lets requests
  // in flight finish (their responses carry "Connection: close"), waits up
  // to drain_timeout for all connections to close, then stops and joins the
  // I/O threads. Idempotent.
  void Drain();

  // The bound port after Start(), else options.port.
  uint16_t port() const;
  // Connections currently open.
  size_t active_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cfrec::server

#endif  // CFREC_SERVER_HTTP_SERVER_H_
