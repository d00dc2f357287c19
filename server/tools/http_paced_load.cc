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
//     [--cpus 1]
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

namespace {

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
  double min_wake_us = 200;
  std::vector<int> cpus;  // empty: not pinned
};

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
      else if (a == "--threads")
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

std::string Request(const std::string& host, std::string_view target) {
  std::string r = "GET ";
  r.append(target);
  r.append(" HTTP/1.1\r\nHost: ");
  r.append(host);
  r.append("\r\nConnection: keep-alive\r\n\r\n");
  return r;
}

bool IStartsWith(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i])
      return false;
  }
  return true;
}

// An answer's head: status, whole length (head + body) and whether the
// server closes the connection after it. False if `head` (up to and
// including the blank line) is not an HTTP/1.x head with a Content-Length
// (the server always sends one).
bool ParseHead(std::string_view head, int* status, size_t* length,
               bool* close) {
  if (head.size() < 16 || head.substr(0, 5) != "HTTP/") return false;
  const char* s = head.data() + 9;
  if (!std::isdigit(static_cast<unsigned char>(s[0])) ||
      !std::isdigit(static_cast<unsigned char>(s[1])) ||
      !std::isdigit(static_cast<unsigned char>(s[2]))) {
    return false;
  }
  *status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  *close = false;
  bool have_length = false;
  size_t body = 0;
  size_t pos = head.find("\r\n") + 2;
  while (pos + 2 < head.size()) {
    const size_t eol = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, eol - pos);
    if (IStartsWith(line, "content-length:")) {
      body = 0;
      for (char ch : line.substr(15)) {
        if (ch >= '0' && ch <= '9') body = body * 10 + (ch - '0');
      }
      have_length = true;
    } else if (IStartsWith(line, "connection:") &&
               line.find("close") != std::string_view::npos) {
      *close = true;
    }
    pos = eol + 2;
  }
  *length = head.size() + body;
  return have_length;
}

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

uint32_t Micros(Clock::duration d) {
  const int64_t us =
      std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return static_cast<uint32_t>(std::clamp<int64_t>(us, 0, UINT32_MAX));
}

// One thread's share of the load: its own epoll loop and connections.
class Generator {
 public:
  Generator(const Flags& flags, const std::vector<std::string>& requests,
            const sockaddr_in& server, double rate, double readyz_rate,
            uint64_t seed, Clock::time_point start)
      : flags_(flags),
        requests_(requests),
        server_(server),
        period_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(1.0 / rate))),
        readyz_period_(
            readyz_rate > 0
                ? std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(1.0 / readyz_rate))
                : Clock::duration::zero()),
        min_wake_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double, std::micro>(flags.min_wake_us))),
        rng_(seed),
        start_(start),
        counted_from_(start + ToDuration(flags.warmup_s)),
        end_(counted_from_ + ToDuration(flags.duration_s)),
        readyz_request_(Request(flags.host, "/readyz")) {}

  ~Generator() {
    for (auto& c : conns_) CloseFd(c.get());
    if (readyz_conn_ != nullptr) CloseFd(readyz_conn_.get());
    if (epoll_ >= 0) close(epoll_);
  }

  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Opens the first connections; false if the server is unreachable.
  bool Connect() {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) {
      std::perror("epoll_create1");
      return false;
    }
    for (int i = 0; i < flags_.connections; ++i) {
      conns_.push_back(std::make_unique<Conn>());
      Conn* c = conns_.back().get();
      if (!ConnectNow(c)) return false;
      idle_.push_back(c);
    }
    if (readyz_period_ != Clock::duration::zero()) {
      readyz_conn_ = std::make_unique<Conn>();
      readyz_conn_->readyz = true;
      if (!ConnectNow(readyz_conn_.get())) return false;
    }
    return true;
  }

  void Run() {
    Clock::time_point next_due = start_;
    Clock::time_point next_readyz = start_;
    const Clock::time_point deadline = end_ + ToDuration(flags_.drain_s);
    epoll_event events[256];
    Clock::time_point now = Clock::now();
    Clock::time_point last_wake = now;
    while (now < deadline) {
      while (next_due <= now && next_due < end_) {
        Issue(next_due, now);
        next_due += period_;
      }
      if (readyz_conn_ != nullptr && next_readyz <= now && next_readyz < end_) {
        IssueReadyz(next_readyz, now);
        // One probe at a time; ticks missed while one was out are skipped
        // (its latency, from its due time, shows the stall).
        while (next_readyz <= now) next_readyz += readyz_period_;
      }
      if (now >= end_ && inflight_ == 0 &&
          (readyz_conn_ == nullptr || !readyz_conn_->busy)) {
        break;
      }
      Clock::time_point wake = deadline;
      if (next_due < end_) wake = std::min(wake, next_due);
      if (readyz_conn_ != nullptr && next_readyz < end_) {
        wake = std::min(wake, next_readyz);
      }
      // Not twice within min_wake_: what arrives meanwhile waits in the
      // sockets (timed by the kernel) and is read in one go.
      const Clock::time_point rest = std::min(last_wake + min_wake_, wake);
      if (rest > now) {
        std::this_thread::sleep_for(rest - now);
        now = Clock::now();
      }
      const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::max(wake - now, Clock::duration::zero()));
      const timespec ts{static_cast<time_t>(wait.count() / 1'000'000'000),
                        static_cast<long>(wait.count() % 1'000'000'000)};
      const int n = epoll_pwait2(epoll_, events, 256, &ts, nullptr);
      if (n < 0 && errno != EINTR) {
        std::perror("epoll_pwait2");
        break;
      }
      now = Clock::now();
      last_wake = now;
      timespec real;
      clock_gettime(CLOCK_REALTIME, &real);
      now_real_ns_ = real.tv_sec * 1'000'000'000LL + real.tv_nsec;
      for (int i = 0; i < n; ++i) {
        OnEvent(static_cast<Conn*>(events[i].data.ptr), events[i].events, now);
      }
    }
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
    int fd = -1;
    bool busy = false;        // a request is out (or being connected/sent)
    bool connecting = false;  // non-blocking connect in progress
    bool want_out = false;    // EPOLLOUT registered
    bool readyz = false;
    Clock::time_point due;
    const std::string* request = nullptr;
    size_t written = 0;  // bytes of *request sent
    std::string buf;     // the answer so far
    size_t used = 0;
    size_t head_scanned = 0;  // bytes of buf searched for the blank line
    size_t length = 0;        // whole answer, once its head is in (else 0)
    int status = 0;
    bool close = false;
    Clock::time_point arrived;  // the latest bytes' receive time
  };

  static Clock::duration ToDuration(double s) {
    return std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(s));
  }

  static void CloseFd(Conn* c) {
    if (c->fd >= 0) close(c->fd);  // also leaves the epoll set
    c->fd = -1;
    c->connecting = false;
    c->want_out = false;
  }

  int NewSocket() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // The kernel's receive time of each answer (Receive).
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    return fd;
  }

  bool Watch(Conn* c, uint32_t mask, int op) {
    epoll_event ev{};
    ev.events = mask;
    ev.data.ptr = c;
    return epoll_ctl(epoll_, op, c->fd, &ev) == 0;
  }

  // Blocking connect before the start, then non-blocking.
  bool ConnectNow(Conn* c) {
    c->fd = NewSocket();
    if (c->fd < 0 || connect(c->fd, reinterpret_cast<const sockaddr*>(&server_),
                             sizeof(server_)) != 0) {
      std::fprintf(stderr, "cannot connect to %s:%u: %s\n", flags_.host.c_str(),
                   flags_.port, std::strerror(errno));
      return false;
    }
    const int flags = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
    c->buf.resize(16384);
    return Watch(c, EPOLLIN, EPOLL_CTL_ADD);
  }

  // A connection during the run: non-blocking connect; the request goes
  // out once it is writable.
  void Open(Conn* c) {
    CloseFd(c);
    c->fd = NewSocket();
    if (c->fd < 0) return Failed(c);
    const int flags = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
    if (c->buf.size() < 16384) c->buf.resize(16384);
    const int rc = connect(c->fd, reinterpret_cast<const sockaddr*>(&server_),
                           sizeof(server_));
    if (rc != 0 && errno != EINPROGRESS) return Failed(c);
    c->connecting = rc != 0;
    c->want_out = true;
    if (!Watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_ADD)) return Failed(c);
    if (!c->connecting) Send(c);
  }

  void Issue(Clock::time_point due, Clock::time_point now) {
    if (due >= counted_from_) ++tally_.due;
    if (!idle_.empty()) {
      Conn* c = idle_.back();
      idle_.pop_back();
      return Start(c, due, now);
    }
    if (static_cast<int>(conns_.size()) < flags_.max_connections) {
      conns_.push_back(std::make_unique<Conn>());
      ++tally_.connections_opened;
      return Start(conns_.back().get(), due, now);
    }
    backlog_.push_back(due);
    tally_.max_backlog =
        std::max<uint64_t>(tally_.max_backlog, backlog_.size());
  }

  void IssueReadyz(Clock::time_point due, Clock::time_point now) {
    Conn* c = readyz_conn_.get();
    if (c->busy) return;
    c->busy = true;
    c->due = due;
    c->request = &readyz_request_;
    Begin(c, now);
  }

  void Start(Conn* c, Clock::time_point due, Clock::time_point now) {
    ++inflight_;
    c->busy = true;
    c->due = due;
    c->request = &requests_[pick_(rng_)];
    if (due >= counted_from_) {
      ++tally_.sent;
      tally_.send_lag_us.push_back(Micros(now - due));
    }
    Begin(c, now);
  }

  void Begin(Conn* c, Clock::time_point) {
    ++tally_.sent_all;
    c->written = 0;
    c->used = 0;
    c->head_scanned = 0;
    c->length = 0;
    if (c->fd < 0) return Open(c);
    Send(c);
  }

  void Send(Conn* c) {
    const std::string& r = *c->request;
    while (c->written < r.size()) {
      const ssize_t n = send(c->fd, r.data() + c->written,
                             r.size() - c->written, MSG_NOSIGNAL);
      if (n > 0) {
        c->written += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!c->want_out) {
          c->want_out = true;
          if (!Watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD)) return Failed(c);
        }
        return;
      }
      return Failed(c);
    }
    if (c->want_out) {
      c->want_out = false;
      if (!Watch(c, EPOLLIN, EPOLL_CTL_MOD)) return Failed(c);
    }
  }

  void OnEvent(Conn* c, uint32_t events, Clock::time_point now) {
    if (c->fd < 0) return;
    if (c->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return Failed(c);
      c->connecting = false;
    }
    if (c->busy && !c->connecting && c->written < c->request->size() &&
        (events & EPOLLOUT)) {
      Send(c);
      if (c->fd < 0) return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) Receive(c, now);
  }

  void Receive(Conn* c, Clock::time_point now) {
    if (c->buf.size() < c->used + 4096) c->buf.resize(c->used + 16384);
    iovec iov{c->buf.data() + c->used, c->buf.size() - c->used};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = recvmsg(c->fd, &msg, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return;
    }
    if (n <= 0) {
      // Closed: by the server after an idle spell (harmless, the next
      // request reopens) or in the middle of an answer (an error).
      if (!c->busy) return CloseFd(c);
      return Failed(c);
    }
    if (!c->busy) {  // bytes nobody asked for
      return Failed(c);
    }
    c->used += static_cast<size_t>(n);
    c->arrived = now;
    for (cmsghdr* m = CMSG_FIRSTHDR(&msg); m != nullptr;
         m = CMSG_NXTHDR(&msg, m)) {
      if (m->cmsg_level == SOL_SOCKET && m->cmsg_type == SO_TIMESTAMPNS) {
        timespec stamp;
        std::memcpy(&stamp, CMSG_DATA(m), sizeof(stamp));
        const int64_t ago =
            now_real_ns_ - (stamp.tv_sec * 1'000'000'000LL + stamp.tv_nsec);
        if (ago > 0 && ago < 10'000'000'000LL) {
          c->arrived = now - std::chrono::nanoseconds(ago);
        }
      }
    }
    if (c->length == 0) {
      const std::string_view got(c->buf.data(), c->used);
      const size_t from = c->head_scanned > 3 ? c->head_scanned - 3 : 0;
      const size_t end = got.find("\r\n\r\n", from);
      if (end == std::string_view::npos) {
        c->head_scanned = c->used;
        return;
      }
      if (!ParseHead(got.substr(0, end + 4), &c->status, &c->length,
                     &c->close)) {
        return Failed(c);
      }
    }
    if (c->used < c->length) return;
    Done(c, c->close || c->used != c->length, c->arrived, now);
  }

  void Failed(Conn* c) {
    CloseFd(c);
    if (!c->busy) return;
    if (c->readyz) {
      if (c->due >= counted_from_) ++tally_.readyz_not_200;
      c->busy = false;  // reconnects at the next tick
      return;
    }
    if (c->due >= counted_from_) ++tally_.errors;
    --inflight_;
    Next(c);  // the next request on it opens a new connection
  }

  // Answer complete: record it, then hand the connection to the oldest
  // waiting request or park it.
  // `answered`: when the answer's last bytes arrived (kernel time).
  void Done(Conn* c, bool close_it, Clock::time_point answered,
            Clock::time_point now) {
    const uint32_t us = Micros(answered - c->due);
    if (close_it) CloseFd(c);
    if (flags_.slow_ms > 0 && us > flags_.slow_ms * 1000) {
      std::fprintf(stderr, "slow due_ns=%lld ms=%.3f status=%d%s\n",
                   static_cast<long long>(
                       std::chrono::duration_cast<std::chrono::nanoseconds>(
                           c->due.time_since_epoch())
                           .count()),
                   us / 1000.0, c->status, c->readyz ? " readyz" : "");
    }
    if (c->readyz) {
      if (c->due >= counted_from_) {
        tally_.readyz_us.push_back(us);
        if (c->status != 200) ++tally_.readyz_not_200;
      }
      c->busy = false;
      return;
    }
    if (c->due >= counted_from_) {
      if (c->status >= 200 && c->status < 300) {
        tally_.ok_us.push_back(us);
      } else if (c->status == 503) {
        tally_.shed_us.push_back(us);
      } else {
        ++tally_.other;
      }
    }
    --inflight_;
    Next(c, now);
  }

  void Next(Conn* c, Clock::time_point now = Clock::now()) {
    c->busy = false;
    if (!backlog_.empty()) {
      const Clock::time_point due = backlog_.front();
      backlog_.pop_front();
      return Start(c, due, now);
    }
    idle_.push_back(c);
  }

  const Flags& flags_;
  const std::vector<std::string>& requests_;
  const sockaddr_in server_;
  const Clock::duration period_;
  const Clock::duration readyz_period_;
  const Clock::duration min_wake_;
  int64_t now_real_ns_ = 0;  // CLOCK_REALTIME at the latest wake-up
  std::mt19937_64 rng_;
  std::uniform_int_distribution<size_t> pick_{0, requests_.size() - 1};
  const Clock::time_point start_, counted_from_, end_;
  int epoll_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> idle_;
  std::deque<Clock::time_point> backlog_;
  uint64_t inflight_ = 0;  // requests (not probes) started and not finished
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
