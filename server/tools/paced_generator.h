// The load of cfrec_http_paced (server/tools/http_paced_load.cc): one
// generator thread's share of an open-loop (paced) HTTP load, on its own
// epoll loop and connections. Request i of a generator is due at
// start + i / rate; it is timed from its due time (no coordinated
// omission), and answers are timed by the kernel's receive time of their
// bytes. The tool's header comment describes the behaviour in full.
#ifndef CFREC_SERVER_TOOLS_PACED_GENERATOR_H_
#define CFREC_SERVER_TOOLS_PACED_GENERATOR_H_

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cfrec::paced {

using Clock = std::chrono::steady_clock;

// The tool's flags (see its --help); the generator reads host, port,
// connections, max_connections, warmup_s, duration_s, drain_s, slow_ms and
// min_wake_us.
struct PacedLoadOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  double rate = 1000;
  double duration_s = 10;
  double warmup_s = 2;
  double drain_s = 5;
  std::string users_file;
  std::string target;  // fixed target instead of users
  int n = 10;
  int connections = 64;
  int max_connections = 900;
  // Which idle connection a due request takes: "lifo", the one freed last
  // (a few connections carry the load), or "fifo", the one idle longest
  // (every open connection in turn, as wrk's evenly used ones).
  std::string reuse = "lifo";
  int threads = 1;
  double readyz_rate = 10;
  uint64_t seed = 42;
  double slow_ms = 0;  // 0: no slow-answer log
  double min_wake_us = 200;
  std::vector<int> cpus;  // empty: not pinned
};

// A keep-alive GET of `target` for `host`, as sent.
std::string Request(const std::string& host, std::string_view target);

// Latencies in microseconds, by kind of answer.
struct Tally {
  std::vector<uint32_t> ok_us, shed_us;
  std::vector<uint32_t> send_lag_us;  // sent minus due, counted requests
  uint64_t other = 0;                 // any status but 2xx and 503
  uint64_t errors = 0;                // connection failed or closed mid-answer
  uint64_t sent = 0;                  // counted requests sent
  uint64_t sent_all = 0;              // every request sent, warmup and probes
  uint64_t due = 0;                   // counted requests due
  uint64_t unanswered = 0;
  uint64_t unsent = 0;
  uint64_t max_backlog = 0;
  int connections_opened = 0;
  std::vector<uint32_t> readyz_us;
  uint64_t readyz_not_200 = 0;

  void Merge(const Tally& t) {
    ok_us.insert(ok_us.end(), t.ok_us.begin(), t.ok_us.end());
    shed_us.insert(shed_us.end(), t.shed_us.begin(), t.shed_us.end());
    send_lag_us.insert(send_lag_us.end(), t.send_lag_us.begin(),
                       t.send_lag_us.end());
    readyz_us.insert(readyz_us.end(), t.readyz_us.begin(), t.readyz_us.end());
    other += t.other;
    errors += t.errors;
    sent += t.sent;
    sent_all += t.sent_all;
    due += t.due;
    unanswered += t.unanswered;
    unsent += t.unsent;
    max_backlog = std::max(max_backlog, t.max_backlog);
    connections_opened += t.connections_opened;
    readyz_not_200 += t.readyz_not_200;
  }
};

// One thread's share of the load: its own epoll loop and connections.
class Generator {
 public:
  // Offers `rate` requests per second, each one of `requests` (picked at
  // random with `seed`), and GET /readyz at `readyz_rate` (0: none), to
  // `server` from `start` on. `options` and `requests` must outlive it.
  Generator(const PacedLoadOptions& options,
            const std::vector<std::string>& requests, const sockaddr_in& server,
            double rate, double readyz_rate, uint64_t seed,
            Clock::time_point start);
  ~Generator();

  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Opens the first connections; false if the server is unreachable.
  bool Connect();
  // Offers the load until the end of the run and its drain.
  void Run();
  // What was counted (after the warmup).
  const Tally& tally() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cfrec::paced

#endif  // CFREC_SERVER_TOOLS_PACED_GENERATOR_H_
