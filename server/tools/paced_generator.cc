#include "paced_generator.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>
#include <thread>

#include "cfrec/server/receive_time.h"

namespace cfrec::paced {

std::string Request(const std::string& host, std::string_view target) {
  std::string r = "GET ";
  r.append(target);
  r.append(" HTTP/1.1\r\nHost: ");
  r.append(host);
  r.append("\r\nConnection: keep-alive\r\n\r\n");
  return r;
}

namespace {

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

uint32_t Micros(Clock::duration d) {
  const int64_t us =
      std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return static_cast<uint32_t>(std::clamp<int64_t>(us, 0, UINT32_MAX));
}

}  // namespace

class Generator::Impl {
 public:
  Impl(const PacedLoadOptions& flags, const std::vector<std::string>& requests,
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

  ~Impl() {
    for (auto& c : conns_) CloseFd(c.get());
    if (readyz_conn_ != nullptr) CloseFd(readyz_conn_.get());
    if (epoll_ >= 0) close(epoll_);
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

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
      now_real_ns_ = server::RealTimeNs();
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
    server::EnableReceiveTimes(fd);
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
      Conn* c;
      if (lifo_) {
        c = idle_.back();
        idle_.pop_back();
      } else {
        c = idle_.front();
        idle_.pop_front();
      }
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
    const server::TimedRead read = server::ReadWithReceiveTime(
        c->fd, c->buf.data() + c->used, c->buf.size() - c->used, 0,
        now_real_ns_, std::chrono::seconds(10));
    const ssize_t n = read.bytes;
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
    if (read.waited.has_value()) c->arrived = now - *read.waited;
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

  const PacedLoadOptions& flags_;
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
  // Idle connections, the longest idle first.
  std::deque<Conn*> idle_;
  const bool lifo_ = flags_.reuse == "lifo";
  std::deque<Clock::time_point> backlog_;
  uint64_t inflight_ = 0;  // requests (not probes) started and not finished
  std::unique_ptr<Conn> readyz_conn_;
  const std::string readyz_request_;
  Tally tally_;
};

Generator::Generator(const PacedLoadOptions& options,
                     const std::vector<std::string>& requests,
                     const sockaddr_in& server, double rate, double readyz_rate,
                     uint64_t seed, Clock::time_point start)
    : impl_(std::make_unique<Impl>(options, requests, server, rate, readyz_rate,
                                   seed, start)) {}

Generator::~Generator() = default;

bool Generator::Connect() { return impl_->Connect(); }

void Generator::Run() { impl_->Run(); }

const Tally& Generator::tally() const { return impl_->tally(); }

}  // namespace cfrec::paced
