// cfrec_http_paced: an open-loop HTTP load generator. It sends
// GET /v1/recommendations for random users at a fixed offered rate, whatever
// the answers' latency, and times every request from the moment it was due
// to be sent, not from the moment it went out: a request that waits for a
// free connection, or behind a slow answer, carries that wait in its
// latency (no coordinated omission, as in wrk2). Prints one JSON line.
//
//   cfrec_http_paced --port 8080 --rate 5000 --duration 10 --warmup 2
//     --users-file users.txt [--n 10] [--connections 64]
//     [--max-connections 900] [--threads 1] [--readyz-rate 10] [--seed 42]
//     [--cpus 1] [--reuse lifo|fifo]
//
// Request i is due at start + i / rate (evenly spaced). When it is due it
// goes out on an idle keep-alive connection: the one freed last, so a few
// connections carry the load and, as the server deals connections to its
// I/O threads in turn, possibly one thread (--reuse fifo: the one idle
// longest, so every open connection carries its share, as wrk's do); with
// none idle a new connection
// is opened (up to --max-connections); beyond that it waits in a FIFO for
// the next connection to free up. Requests due in the first --warmup seconds
// are sent but not counted. After --duration no new request is due; those
// still unanswered get --drain-s more seconds, and what is left then is
// counted as "unanswered" (and those never sent as "unsent").
//
// Latency percentiles are over the 2xx answers (the admitted requests);
// 503 answers (shed) are counted, with their own p99. GET /readyz runs on
// its own connection at --readyz-rate (paced the same way); its non-200
// answers and p99 are reported, so a run also shows that the probes stay
// up under load.
//
// The generator shares the machine with the server it measures, so it is
// built to cost little per request: each thread runs one epoll loop over
// non-blocking sockets, the request bytes are built once, a request is one
// send(2) and usually one recvmsg(2), and an answer is parsed only for its
// status, length and "Connection: close". An answer is timed by the
// kernel's receive time of its bytes (SO_TIMESTAMPNS), not by when the loop
// got to it, so the loop may wake at most once per --min-wake-us and handle
// what arrived meanwhile in one go (fewer wake-ups, each the price of a
// thread switch) without adding to the measured latency; requests that
// fall due while it waits go out at the next wake-up, at most that late,
// and that lateness is in their latency. Its own CPU time is printed
// (client_cpu_s, client_cpu_us_per_request), and so is how late it sent
// requests against their due times (send_lag_p99_ms): when that grows, the
// latencies measure the generator, not the server. --cpus pins its threads.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "paced_generator.h"

namespace {

using cfrec::paced::Clock;
using cfrec::paced::Generator;
using cfrec::paced::Request;
using cfrec::paced::Tally;
using Flags = cfrec::paced::PacedLoadOptions;

void Usage() {
  std::fprintf(
      stderr,
      "usage: cfrec_http_paced [flags]\n"
      "  --host H             server address, IPv4 or a name (default "
      "127.0.0.1)\n"
      "  --port P             server port (default 8080)\n"
      "  --rate R             offered requests per second (default 1000)\n"
      "  --duration S         seconds of counted load after the warmup "
      "(default 10)\n"
      "  --warmup S           seconds of load sent first and not counted "
      "(default 2)\n"
      "  --drain-s S          seconds to wait for answers after the last "
      "request is due (default 5)\n"
      "  --users-file F       user ids, one a line: GET "
      "/v1/recommendations?user_id=U&n=N\n"
      "  --target T           request this fixed target instead (e.g. "
      "/healthz)\n"
      "  --n N                recommendations per request (default 10)\n"
      "  --connections C      connections opened before the start (default "
      "64)\n"
      "  --max-connections M  most connections; beyond, due requests queue "
      "in the client (default 900)\n"
      "  --reuse lifo|fifo    idle connection a request takes: the one "
      "freed last\n"
      "                       (lifo, default) or the one idle longest (fifo: "
      "all carry the load)\n"
      "  --threads T          generator threads, each offering rate / T on "
      "its own connections (default 1)\n"
      "  --readyz-rate R      GET /readyz per second on a connection of its "
      "own; 0 = none (default 10)\n"
      "  --seed S             user choice (default 42)\n"
      "  --cpus LIST          pin generator thread t to CPU LIST[t %% size],\n"
      "                       comma-separated (e.g. 1 or 0,1); default: not "
      "pinned\n"
      "  --min-wake-us U      least time between two wake-ups of a generator\n"
      "                       thread while requests are due later (answers\n"
      "                       are timed by the kernel's receive time);\n"
      "                       0 = wake for every event (default 200)\n"
      "  --slow-ms X          print each answer slower than X ms to stderr:\n"
      "                       its due time (steady clock, ns; CLOCK_MONOTONIC\n"
      "                       on Linux, as `perf record -k CLOCK_MONOTONIC`),\n"
      "                       latency and status; 0 = none (default 0)\n");
}

bool ParseCpus(const std::string& v, std::vector<int>* out) {
  std::stringstream ss(v);
  for (std::string item; std::getline(ss, item, ',');) {
    const int cpu = std::stoi(item);
    if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
    out->push_back(cpu);
  }
  return !out->empty();
}

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      Usage();
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "flag %s needs a value\n", argv[i]);
      return false;
    }
    const std::string v = argv[++i];
    try {
      if (a == "--host")
        f->host = v;
      else if (a == "--port")
        f->port = static_cast<uint16_t>(std::stoi(v));
      else if (a == "--rate")
        f->rate = std::stod(v);
      else if (a == "--duration")
        f->duration_s = std::stod(v);
      else if (a == "--warmup")
        f->warmup_s = std::stod(v);
      else if (a == "--drain-s")
        f->drain_s = std::stod(v);
      else if (a == "--users-file")
        f->users_file = v;
      else if (a == "--target")
        f->target = v;
      else if (a == "--n")
        f->n = std::stoi(v);
      else if (a == "--connections")
        f->connections = std::stoi(v);
      else if (a == "--max-connections")
        f->max_connections = std::stoi(v);
      else if (a == "--reuse") {
        if (v != "fifo" && v != "lifo") throw std::invalid_argument(v);
        f->reuse = v;
      } else if (a == "--threads")
        f->threads = std::stoi(v);
      else if (a == "--readyz-rate")
        f->readyz_rate = std::stod(v);
      else if (a == "--seed")
        f->seed = std::stoull(v);
      else if (a == "--slow-ms")
        f->slow_ms = std::stod(v);
      else if (a == "--min-wake-us")
        f->min_wake_us = std::stod(v);
      else if (a == "--cpus") {
        if (!ParseCpus(v, &f->cpus)) throw std::invalid_argument(v);
      } else {
        std::fprintf(stderr, "unknown flag %s (--help lists them)\n",
                     argv[i - 1]);
        return false;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "bad value '%s' for %s\n", v.c_str(), argv[i - 1]);
      return false;
    }
  }
  if (!(f->rate > 0) || !(f->duration_s > 0) || f->warmup_s < 0 ||
      f->slow_ms < 0 || f->drain_s < 0 || f->min_wake_us < 0 ||
      f->threads < 1 || f->connections < 1 ||
      f->max_connections < f->connections || f->readyz_rate < 0 || f->n < 1) {
    std::fprintf(stderr,
                 "need --rate > 0, --duration > 0, --threads >= 1, "
                 "1 <= --connections <= --max-connections, --n >= 1\n");
    return false;
  }
  if (f->users_file.empty() == f->target.empty()) {
    std::fprintf(stderr, "give exactly one of --users-file and --target\n");
    return false;
  }
  return true;
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

double Percentile(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(
      v.size() - 1,
      static_cast<size_t>(std::max(0.0, std::ceil(p / 100 * v.size()) - 1)));
  return v[i] / 1000.0;
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

bool Resolve(const Flags& flags, sockaddr_in* out) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(
      flags.host.c_str(), std::to_string(flags.port).c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    std::fprintf(stderr, "cannot resolve %s: %s\n", flags.host.c_str(),
                 gai_strerror(rc));
    return false;
  }
  std::memcpy(out, found->ai_addr, sizeof(*out));
  freeaddrinfo(found);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  std::vector<std::string> requests;
  if (!flags.target.empty()) {
    requests.push_back(Request(flags.host, flags.target));
  } else {
    std::ifstream in(flags.users_file);
    if (!in) {
      std::fprintf(stderr, "cannot open %s\n", flags.users_file.c_str());
      return 2;
    }
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      requests.push_back(
          Request(flags.host, "/v1/recommendations?user_id=" + UrlEncode(line) +
                                  "&n=" + std::to_string(flags.n)));
    }
    if (requests.empty()) {
      std::fprintf(stderr, "no users in %s\n", flags.users_file.c_str());
      return 2;
    }
  }
  sockaddr_in server{};
  if (!Resolve(flags, &server)) return 1;

  // Connect everything first, then start every thread on one schedule.
  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(200);
  std::vector<std::unique_ptr<Generator>> generators;
  for (int t = 0; t < flags.threads; ++t) {
    generators.push_back(std::make_unique<Generator>(
        flags, requests, server, flags.rate / flags.threads,
        t == 0 ? flags.readyz_rate : 0, flags.seed + t, start));
    if (!generators.back()->Connect()) return 1;
  }
  if (Clock::now() >= start) {
    std::fprintf(stderr, "connecting took longer than 200 ms; retry\n");
    return 1;
  }
  const double cpu0 = CpuSeconds();
  std::vector<std::thread> threads;
  for (int t = 0; t < flags.threads; ++t) {
    threads.emplace_back([&flags, g = generators[t].get(), t] {
      if (!flags.cpus.empty()) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(flags.cpus[t % flags.cpus.size()], &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      }
      g->Run();
    });
  }
  for (auto& t : threads) t.join();
  const double cpu = CpuSeconds() - cpu0;

  Tally all;
  for (auto& g : generators) all.Merge(g->tally());
  const uint64_t answered = all.ok_us.size() + all.shed_us.size() + all.other;
  const double seconds = flags.duration_s;
  std::printf(
      "{\"bench\":\"http_paced\",\"client\":\"epoll\",\"offered_rps\":%.1f,"
      "\"achieved_rps\":%.1f,"
      "\"ok_rps\":%.1f,\"duration_s\":%.1f,\"due\":%llu,\"sent\":%llu,"
      "\"ok_2xx\":%zu,\"shed_503\":%zu,\"other_status\":%llu,"
      "\"errors\":%llu,\"unanswered\":%llu,\"unsent\":%llu,"
      "\"shed_share\":%.4f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
      "\"max_ms\":%.3f,\"shed_p99_ms\":%.3f,\"readyz_requests\":%zu,"
      "\"readyz_not_200\":%llu,\"readyz_p99_ms\":%.3f,"
      "\"connections\":%d,\"max_client_backlog\":%llu,\"threads\":%d,"
      "\"send_lag_p99_ms\":%.3f,\"client_cpu_s\":%.2f,"
      "\"client_cpu_us_per_request\":%.1f}\n",
      flags.rate, answered / seconds, all.ok_us.size() / seconds, seconds,
      static_cast<unsigned long long>(all.due),
      static_cast<unsigned long long>(all.sent), all.ok_us.size(),
      all.shed_us.size(), static_cast<unsigned long long>(all.other),
      static_cast<unsigned long long>(all.errors),
      static_cast<unsigned long long>(all.unanswered),
      static_cast<unsigned long long>(all.unsent),
      answered > 0 ? static_cast<double>(all.shed_us.size()) / answered : 0.0,
      Percentile(all.ok_us, 50), Percentile(all.ok_us, 99),
      Percentile(all.ok_us, 99.9), Percentile(all.ok_us, 100),
      Percentile(all.shed_us, 99), all.readyz_us.size(),
      static_cast<unsigned long long>(all.readyz_not_200),
      Percentile(all.readyz_us, 99),
      flags.connections * flags.threads + all.connections_opened,
      static_cast<unsigned long long>(all.max_backlog), flags.threads,
      Percentile(all.send_lag_us, 99), cpu,
      all.sent_all > 0 ? cpu * 1e6 / static_cast<double>(all.sent_all) : 0.0);
  return 0;
}
