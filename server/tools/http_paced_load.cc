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
//
// Request i is due at start + i / rate (evenly spaced). When it is due it
// goes out on an idle keep-alive connection; with none idle a new connection
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
// The generator shares the machine with the server it measures: its own
// CPU time (printed as client_cpu_s) and any delay in its loop are in
// every latency, the unloaded figure's too.
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Flags {
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
  int threads = 1;
  double readyz_rate = 10;
  uint64_t seed = 42;
  double slow_ms = 0;  // 0: no slow-answer log
};

void Usage() {
  std::fprintf(
      stderr,
      "usage: cfrec_http_paced [flags]\n"
      "  --host H             server address (default 127.0.0.1)\n"
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
      "  --threads T          generator threads, each offering rate / T on "
      "its own connections (default 1)\n"
      "  --readyz-rate R      GET /readyz per second on a connection of its "
      "own; 0 = none (default 10)\n"
      "  --seed S             user choice (default 42)\n"
      "  --slow-ms X          print each answer slower than X ms to stderr:\n"
      "                       its due time (steady clock, ns; CLOCK_MONOTONIC\n"
      "                       on Linux, as `perf record -k CLOCK_MONOTONIC`),\n"
      "                       latency and status; 0 = none (default 0)\n");
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
      else if (a == "--threads")
        f->threads = std::stoi(v);
      else if (a == "--readyz-rate")
        f->readyz_rate = std::stod(v);
      else if (a == "--seed")
        f->seed = std::stoull(v);
      else if (a == "--slow-ms")
        f->slow_ms = std::stod(v);
      else {
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
      f->slow_ms < 0 || f->drain_s < 0 || f->threads < 1 ||
      f->connections < 1 || f->max_connections < f->connections ||
      f->readyz_rate < 0 || f->n < 1) {
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

std::string Request(const std::string& host, std::string_view target) {
  std::string r = "GET ";
  r.append(target);
  r.append(" HTTP/1.1\r\nHost: ");
  r.append(host);
  r.append("\r\nConnection: keep-alive\r\n\r\n");
  return r;
}

// What one answer was, from the bytes read so far: its status and length,
// once the header and the whole body are in.
struct Parsed {
  bool complete = false;
  bool bad = false;
  int status = 0;
  size_t length = 0;  // header + body
  bool close = false;
};

bool IStartsWith(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i])
      return false;
  }
  return true;
}

Parsed ParseResponse(std::string_view buf) {
  Parsed p;
  const size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return p;
  const std::string_view head = buf.substr(0, end + 2);
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/") {
    p.bad = true;
    return p;
  }
  p.status = std::atoi(std::string(head.substr(9, 3)).c_str());
  size_t body = 0;
  bool have_length = false;
  size_t pos = head.find("\r\n") + 2;
  while (pos < head.size()) {
    const size_t eol = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, eol - pos);
    if (IStartsWith(line, "content-length:")) {
      body = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
      have_length = true;
    } else if (IStartsWith(line, "connection:") &&
               line.find("close") != std::string_view::npos) {
      p.close = true;
    }
    pos = eol + 2;
  }
  if (!have_length) {  // the server always sends one; anything else is bad
    p.bad = true;
    return p;
  }
  if (buf.size() < end + 4 + body) return p;
  p.complete = true;
  p.length = end + 4 + body;
  return p;
}

// Latencies in microseconds, by kind of answer.
struct Tally {
  std::vector<uint32_t> ok_us, shed_us;
  uint64_t other = 0;   // any status but 2xx and 503
  uint64_t errors = 0;  // connection failed or closed mid-answer
  uint64_t sent = 0;    // counted requests sent
  uint64_t due = 0;     // counted requests due
  uint64_t unanswered = 0;
  uint64_t unsent = 0;
  uint64_t max_backlog = 0;
  int connections_opened = 0;
  std::vector<uint32_t> readyz_us;
  uint64_t readyz_not_200 = 0;

  void Merge(const Tally& t) {
    ok_us.insert(ok_us.end(), t.ok_us.begin(), t.ok_us.end());
    shed_us.insert(shed_us.end(), t.shed_us.begin(), t.shed_us.end());
    readyz_us.insert(readyz_us.end(), t.readyz_us.begin(), t.readyz_us.end());
    other += t.other;
    errors += t.errors;
    sent += t.sent;
    due += t.due;
    unanswered += t.unanswered;
    unsent += t.unsent;
    max_backlog = std::max(max_backlog, t.max_backlog);
    connections_opened += t.connections_opened;
    readyz_not_200 += t.readyz_not_200;
  }
};

// One thread's share of the load: its own io_context, connections, timer.
class Generator {
 public:
  Generator(const Flags& flags, const std::vector<std::string>& requests,
            double rate, double readyz_rate, uint64_t seed,
            Clock::time_point start)
      : flags_(flags),
        requests_(requests),
        period_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(1.0 / rate))),
        readyz_period_(
            readyz_rate > 0
                ? std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(1.0 / readyz_rate))
                : Clock::duration::zero()),
        rng_(seed),
        start_(start),
        counted_from_(start + ToDuration(flags.warmup_s)),
        end_(counted_from_ + ToDuration(flags.duration_s)),
        timer_(ioc_),
        readyz_timer_(ioc_),
        deadline_(ioc_),
        readyz_request_(Request(flags.host, "/readyz")) {}

  // Opens the first connections; false if the server is unreachable.
  bool Connect() {
    tcp::resolver resolver(ioc_);
    boost::system::error_code ec;
    endpoints_ = resolver.resolve(flags_.host, std::to_string(flags_.port), ec);
    if (ec) {
      std::fprintf(stderr, "cannot resolve %s: %s\n", flags_.host.c_str(),
                   ec.message().c_str());
      return false;
    }
    for (int i = 0; i < flags_.connections; ++i) {
      auto c = std::make_unique<Conn>(ioc_);
      net::connect(c->socket, endpoints_, ec);
      if (ec) {
        std::fprintf(stderr, "cannot connect to %s:%u: %s\n",
                     flags_.host.c_str(), flags_.port, ec.message().c_str());
        return false;
      }
      c->socket.set_option(tcp::no_delay(true));
      c->open = true;
      idle_.push_back(c.get());
      conns_.push_back(std::move(c));
    }
    if (readyz_period_ != Clock::duration::zero()) {
      readyz_conn_ = std::make_unique<Conn>(ioc_);
      readyz_conn_->readyz = true;
      net::connect(readyz_conn_->socket, endpoints_, ec);
      if (ec) return false;
      readyz_conn_->socket.set_option(tcp::no_delay(true));
      readyz_conn_->open = true;
    }
    return true;
  }

  void Run() {
    next_due_ = start_;
    next_readyz_ = start_;
    Arm();
    if (readyz_conn_ != nullptr) ArmReadyz();
    deadline_.expires_at(end_ + ToDuration(flags_.drain_s));
    deadline_.async_wait([this](boost::system::error_code ec) {
      if (!ec) ioc_.stop();
    });
    ioc_.run();
    // What is left: sent but never answered, or never sent.
    for (auto& c : conns_) {
      if (c->busy && c->due >= counted_from_) ++tally_.unanswered;
    }
    for (Clock::time_point due : backlog_) {
      if (due >= counted_from_) ++tally_.unsent;
    }
  }

  const Tally& tally() const { return tally_; }

 private:
  struct Conn {
    explicit Conn(net::io_context& ioc) : socket(ioc) {}
    tcp::socket socket;
    bool open = false;
    bool busy = false;
    bool readyz = false;
    Clock::time_point due;
    const std::string* request = nullptr;
    std::string buf;
    size_t used = 0;
  };

  static Clock::duration ToDuration(double s) {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(s));
  }

  void Arm() {
    if (next_due_ >= end_) return;
    timer_.expires_at(next_due_);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      const Clock::time_point now = Clock::now();
      while (next_due_ <= now && next_due_ < end_) {
        Issue(next_due_);
        next_due_ += period_;
      }
      Arm();
    });
  }

  // GET /readyz once per period on its own connection, one at a time: a
  // tick that finds the previous one unanswered is skipped (that one's
  // latency, from its due time, shows the stall).
  void ArmReadyz() {
    if (next_readyz_ >= end_) return;
    readyz_timer_.expires_at(next_readyz_);
    readyz_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      Conn* c = readyz_conn_.get();
      if (!c->busy) {
        c->busy = true;
        c->due = next_readyz_;
        c->request = &readyz_request_;
        if (c->open) {
          Send(c);
        } else {
          Open(c);
        }
      }
      next_readyz_ += readyz_period_;
      ArmReadyz();
    });
  }

  void Issue(Clock::time_point due) {
    if (due >= counted_from_) ++tally_.due;
    if (!idle_.empty()) {
      Conn* c = idle_.back();
      idle_.pop_back();
      Start(c, due);
      return;
    }
    if (static_cast<int>(conns_.size()) < flags_.max_connections) {
      conns_.push_back(std::make_unique<Conn>(ioc_));
      Conn* c = conns_.back().get();
      ++tally_.connections_opened;
      c->busy = true;
      c->due = due;
      c->request = &requests_[pick_(rng_)];
      Open(c);
      return;
    }
    backlog_.push_back(due);
    tally_.max_backlog =
        std::max<uint64_t>(tally_.max_backlog, backlog_.size());
  }

  void Start(Conn* c, Clock::time_point due) {
    c->due = due;
    c->request = &requests_[pick_(rng_)];
    if (!c->open) return Open(c);
    Send(c);
  }

  void Open(Conn* c) {
    c->busy = true;
    c->socket = tcp::socket(ioc_);
    net::async_connect(c->socket, endpoints_,
                       [this, c](boost::system::error_code ec, const auto&) {
                         if (ec) return Failed(c);
                         c->socket.set_option(tcp::no_delay(true));
                         c->open = true;
                         Send(c);
                       });
  }

  void Send(Conn* c) {
    c->busy = true;
    c->used = 0;
    if (c->due >= counted_from_ && !c->readyz) ++tally_.sent;
    net::async_write(c->socket, net::buffer(*c->request),
                     [this, c](boost::system::error_code ec, size_t) {
                       if (ec) return Failed(c);
                       Read(c);
                     });
  }

  void Read(Conn* c) {
    if (c->buf.size() < c->used + 4096) c->buf.resize(c->used + 16384);
    c->socket.async_read_some(
        net::buffer(c->buf.data() + c->used, c->buf.size() - c->used),
        [this, c](boost::system::error_code ec, size_t n) {
          if (ec) return Failed(c);
          c->used += n;
          const Parsed p =
              ParseResponse(std::string_view(c->buf.data(), c->used));
          if (p.bad) return Failed(c);
          if (!p.complete) return Read(c);
          Done(c, p.status, p.close || p.length != c->used);
        });
  }

  void Failed(Conn* c) {
    boost::system::error_code ignored;
    c->socket.close(ignored);
    c->open = false;
    if (c->readyz) {
      if (c->due >= counted_from_) ++tally_.readyz_not_200;
      c->busy = false;  // reconnects at the next tick
      return;
    }
    if (c->due >= counted_from_) ++tally_.errors;
    Next(c);  // the next request on it opens a new connection
  }

  // Answer complete: record it, then hand the connection to the oldest
  // waiting request or park it.
  void Done(Conn* c, int status, bool close) {
    const Clock::time_point now = Clock::now();
    const auto us = static_cast<uint32_t>(std::min<int64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(now - c->due)
            .count(),
        UINT32_MAX));
    if (close) {
      boost::system::error_code ignored;
      c->socket.close(ignored);
      c->open = false;
    }
    if (flags_.slow_ms > 0 && us > flags_.slow_ms * 1000) {
      std::fprintf(stderr, "slow due_ns=%lld ms=%.3f status=%d%s\n",
                   static_cast<long long>(
                       std::chrono::duration_cast<std::chrono::nanoseconds>(
                           c->due.time_since_epoch())
                           .count()),
                   us / 1000.0, status, c->readyz ? " readyz" : "");
    }
    if (c->readyz) {
      if (c->due >= counted_from_) {
        tally_.readyz_us.push_back(us);
        if (status != 200) ++tally_.readyz_not_200;
      }
      c->busy = false;
      return;
    }
    if (c->due >= counted_from_) {
      if (status >= 200 && status < 300) {
        tally_.ok_us.push_back(us);
      } else if (status == 503) {
        tally_.shed_us.push_back(us);
      } else {
        ++tally_.other;
      }
    }
    Next(c);
  }

  void Next(Conn* c) {
    c->busy = false;
    if (!backlog_.empty()) {
      const Clock::time_point due = backlog_.front();
      backlog_.pop_front();
      c->busy = true;
      Start(c, due);
      return;
    }
    idle_.push_back(c);
  }

  const Flags& flags_;
  const std::vector<std::string>& requests_;
  const Clock::duration period_;
  const Clock::duration readyz_period_;
  std::mt19937_64 rng_;
  std::uniform_int_distribution<size_t> pick_{0, requests_.size() - 1};
  const Clock::time_point start_, counted_from_, end_;
  net::io_context ioc_;
  net::steady_timer timer_, readyz_timer_, deadline_;
  tcp::resolver::results_type endpoints_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> idle_;
  std::deque<Clock::time_point> backlog_;
  Clock::time_point next_due_, next_readyz_;
  std::unique_ptr<Conn> readyz_conn_;
  const std::string readyz_request_;
  Tally tally_;
};

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

  // Connect everything first, then start every thread on one schedule.
  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(200);
  std::vector<std::unique_ptr<Generator>> generators;
  for (int t = 0; t < flags.threads; ++t) {
    generators.push_back(std::make_unique<Generator>(
        flags, requests, flags.rate / flags.threads,
        t == 0 ? flags.readyz_rate : 0, flags.seed + t, start));
    if (!generators.back()->Connect()) return 1;
  }
  if (Clock::now() >= start) {
    std::fprintf(stderr, "connecting took longer than 200 ms; retry\n");
    return 1;
  }
  const double cpu0 = CpuSeconds();
  std::vector<std::thread> threads;
  for (auto& g : generators) threads.emplace_back([&g] { g->Run(); });
  for (auto& t : threads) t.join();
  const double cpu = CpuSeconds() - cpu0;

  Tally all;
  for (auto& g : generators) all.Merge(g->tally());
  const uint64_t answered = all.ok_us.size() + all.shed_us.size() + all.other;
  const double seconds = flags.duration_s;
  std::printf(
      "{\"bench\":\"http_paced\",\"offered_rps\":%.1f,\"achieved_rps\":%.1f,"
      "\"ok_rps\":%.1f,\"duration_s\":%.1f,\"due\":%llu,\"sent\":%llu,"
      "\"ok_2xx\":%zu,\"shed_503\":%zu,\"other_status\":%llu,"
      "\"errors\":%llu,\"unanswered\":%llu,\"unsent\":%llu,"
      "\"shed_share\":%.4f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
      "\"max_ms\":%.3f,\"shed_p99_ms\":%.3f,\"readyz_requests\":%zu,"
      "\"readyz_not_200\":%llu,\"readyz_p99_ms\":%.3f,"
      "\"connections\":%d,\"max_client_backlog\":%llu,\"threads\":%d,"
      "\"client_cpu_s\":%.2f}\n",
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
      static_cast<unsigned long long>(all.max_backlog), flags.threads, cpu);
  return 0;
}
