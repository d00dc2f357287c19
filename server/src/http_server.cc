// Transport only: Beast sessions convert between the wire and the plain
// HttpRequest/HttpResponse values; everything else is the handler's. The
// shape follows Beast's advanced server example (one session per
// connection, bind_front_handler, a body limit), with one event loop per
// I/O thread instead of one shared loop. The common case takes a short
// path: a request whose bytes one read brought is parsed from the buffer
// at once, and its answer goes out as one string in one send, with no
// timer armed for either; one idle deadline per connection, checked lazily,
// bounds the wait for the next request. A request that arrives in pieces,
// or an answer the socket does not take at once, goes through Beast's
// reads and writes under the read and write timeouts.
#include "cfrec/server/http_server.h"

#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cfrec/schemas/log.h"
#include "cfrec/server/receive_time.h"
#include "response_bytes.h"
#include "shed_response.h"

namespace cfrec::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// Puts the calling thread under SCHED_FIFO at ServerOptions::
// io_realtime_priority (pid 0: the calling thread). Unavailable, with the
// system's reason, when the kernel refuses.
Status SetIoThreadSched(const ServerOptions& options) {
  sched_param param{};
  param.sched_priority = options.io_realtime_priority;
  if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) != 0) {
    const int err = errno;  // before anything else can change it
    return Status::Unavailable("SCHED_FIFO at " +
                               std::to_string(options.io_realtime_priority) +
                               ": " + std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace

Status ServerOptions::Validate() const {
  if (io_threads < 1) return Status::InvalidArgument("io_threads must be >= 1");
  if (inline_io_threads < 0) {
    return Status::InvalidArgument("inline_io_threads must not be negative");
  }
  if (read_timeout.count() <= 0 || idle_timeout.count() <= 0 ||
      write_timeout.count() <= 0) {
    return Status::InvalidArgument("timeouts must be positive");
  }
  if (io_realtime_priority < 0 || io_realtime_priority > 99) {
    return Status::InvalidArgument("io_realtime_priority must be in [0, 99]");
  }
  if (drain_timeout.count() < 0) {
    return Status::InvalidArgument("drain_timeout must not be negative");
  }
  if (max_body_bytes == 0 || max_header_bytes == 0 || max_connections == 0) {
    return Status::InvalidArgument(
        "max_body_bytes, max_header_bytes and max_connections must be > 0");
  }
  return admission.Validate();
}

class Session;

// Everything the server and its sessions share.
struct ServerCore {
  ServerCore(ServerOptions o, HttpServer::Handler h, MetricsRegistry* m)
      : options(std::move(o)), handler(std::move(h)), metrics(m) {
    if (metrics != nullptr) {
      connections_gauge = metrics->GetGauge("cfrec_http_connections_active",
                                            "Open HTTP connections");
      rejected_counter = metrics->GetCounter(
          "cfrec_http_connections_rejected_total",
          "Connections refused because max_connections were open");
      for (ShedReason r : {ShedReason::kQueueFull, ShedReason::kQueueTime,
                           ShedReason::kLate}) {
        shed_counters[static_cast<size_t>(r)] = metrics->GetCounter(
            "cfrec_http_requests_shed_total",
            "Requests answered 503 by load shedding: queue_full (max "
            "in-flight requests reached), queue_time (the oldest queued "
            "request waited longer than max_queue_wait), late (it would "
            "start later than the delay target after it arrived, "
            "or than max_queue_wait when not overloaded)",
            {"reason"}, {std::string(ShedReasonName(r))});
      }
      inline_counter = metrics->GetCounter(
          "cfrec_http_requests_inline_total",
          "Admitted requests run to completion on the I/O thread that read "
          "them (no handler thread was busy and none queued)");
      inflight_gauge = metrics->GetGauge(
          "cfrec_http_requests_inflight",
          "Requests queued for or running on the handler threads");
      // Where an admitted request's time in the server goes.
      const std::vector<double> bounds = {
          0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
          0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1};
      const char* const help =
          "Time of an admitted request in each step on the server: socket "
          "(its first bytes' wait unread, by the kernel's receive time, "
          "plus read in full to admitted), queue (admitted to a handler thread "
          "taking it), "
          "handler (running, on a handler thread or inline on the I/O "
          "thread), write_back (handler thread done to the I/O thread "
          "writing the answer); queue and write_back count only the "
          "requests handed to a handler thread";
      const char* const phases[4] = {"queue", "handler", "write_back",
                                     "socket"};
      for (int i = 0; i < 4; ++i) {
        step_seconds[i] =
            metrics->GetHistogram("cfrec_http_admitted_step_seconds", help,
                                  bounds, {"step"}, {phases[i]});
      }
    }
  }

  // Steps of step_seconds.
  enum Step { kQueue = 0, kHandler = 1, kWriteBack = 2, kSocket = 3 };
  void Observe(Step step, Clock::duration d) {
    if (Histogram* h = step_seconds[step]) {
      h->Observe(std::chrono::duration<double>(d).count());
    }
  }

  void CountShed(ShedReason reason) {
    if (Counter* c = shed_counters[static_cast<size_t>(reason)]) {
      c->Increment();
    }
  }

  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void Register(uint64_t id, const std::shared_ptr<Session>& session);
  void Unregister(uint64_t id);

  const ServerOptions options;
  const HttpServer::Handler handler;
  MetricsRegistry* const metrics;
  Gauge* connections_gauge = nullptr;
  Counter* rejected_counter = nullptr;
  Counter* shed_counters[3] = {nullptr, nullptr, nullptr};  // by ShedReason
  Gauge* inflight_gauge = nullptr;
  Counter* inline_counter = nullptr;
  // I/O threads now running a handler inline (ServerOptions::run_inline).
  std::atomic<int> inline_running{0};
  Histogram* step_seconds[4] = {nullptr, nullptr, nullptr, nullptr};

  // Sessions by id; guarded by mu. `draining` flips once, under mu, so a
  // session is either registered before the drain sees the map or refused.
  mutable std::mutex mu;
  std::condition_variable all_closed;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;
  uint64_t next_id = 0;
  bool draining = false;
  // The same, readable from a session's loop without the lock: a request
  // in flight when the drain starts answers with "Connection: close" even
  // though its loop is busy in the handler when the drain is announced.
  std::atomic<bool> draining_flag{false};
  std::atomic<uint16_t> bound_port{0};
  // Set by the first I/O thread whose scheduling the kernel refused, so
  // the refusal is logged once.
  std::atomic<bool> sched_refused{false};
  bool started = false;
  bool stopped = false;

  // One event loop per I/O thread, run by that thread alone; connections
  // are dealt to them in turn, and a connection stays on its loop. With one
  // shared loop, the threads hand each readiness event to one another
  // (~4.5 thread switches per request against ~2 with a loop each).
  // Declared after the state above: destroying an io_context destroys
  // pending handlers, whose sessions unregister from `sessions` in their
  // destructors; the acceptor, declared after them, goes first.
  std::vector<std::unique_ptr<net::io_context>> loops;
  // Keep run() from returning while a loop is momentarily idle, so work
  // posted by Drain (closing the acceptor, OnDrain) always finds a thread.
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work;
  // The loop of the next accepted connection; touched only by the accept
  // handler (the acceptor's loop).
  size_t next_loop = 0;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  // Runs the handlers; declared after ioc so that it is destroyed first
  // (its queued tasks hold sessions, whose sockets need the io_context).
  std::unique_ptr<AdmissionPool> pool;
};

// One connection. Every member is touched only on the session's loop, which
// one thread runs.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerCore& server, uint64_t id, tcp::socket&& socket)
      : server_(server),
        id_(id),
        stream_(std::move(socket)),
        idle_timer_(stream_.get_executor()) {
    // The kernel stamps each segment with its receive time; the first
    // read of a request collects it (ReadFirstBytes), so the time a
    // request waited unread in the socket counts toward its delay.
    EnableReceiveTimes(stream_.socket().native_handle());
  }

  ~Session() { server_.Unregister(id_); }

  void Run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::WaitForRequest,
                                            shared_from_this()));
  }

  // Called on the session's loop by HttpServer::Drain.
  void OnDrain() {
    draining_ = true;
    // Idle connections close now; a request in flight finishes first and
    // its response says "Connection: close".
    if (phase_ == Phase::kIdle) stream_.cancel();
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

 private:
  enum class Phase { kIdle, kReading, kWriting, kClosed };

  bool Draining() const {
    return draining_ || server_.draining_flag.load(std::memory_order_acquire);
  }

  // Waits for the first byte of the next request under the idle timeout;
  // pipelined bytes already buffered skip the wait (they were read with an
  // earlier request, so no time unread in the socket is known: unread_ is
  // zero).
  void WaitForRequest() {
    if (Draining()) return Close();
    if (buffer_.size() > 0) return ReadRequest();
    phase_ = Phase::kIdle;
    // One deadline per connection: moving it is a store; the timer, armed
    // at most once at a time, checks it when it fires and waits again if
    // it moved (at most once per idle_timeout on a busy connection).
    idle_deadline_ = Clock::now() + server_.options.idle_timeout;
    if (!idle_timer_armed_) ArmIdleTimer();
    stream_.socket().async_wait(
        tcp::socket::wait_read,
        beast::bind_front_handler(&Session::OnReadable, shared_from_this()));
  }

  void ArmIdleTimer() {
    idle_timer_armed_ = true;
    idle_timer_.expires_at(idle_deadline_);
    idle_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      self->OnIdleTimer(ec);
    });
  }

  void OnIdleTimer(beast::error_code ec) {
    idle_timer_armed_ = false;
    // Not idle: the next WaitForRequest arms it again.
    if (ec || phase_ != Phase::kIdle) return;
    if (Clock::now() < idle_deadline_) return ArmIdleTimer();
    stream_.socket().cancel();  // OnReadable closes
  }

  void OnReadable(beast::error_code ec) {
    if (ec) return Close();  // idle timeout, or drain
    const int got = ReadFirstBytes();
    if (got == 0) return Close();          // peer closed
    if (got < 0) return WaitForRequest();  // nothing after all
    ReadRequest();
  }

  // One recvmsg of what the socket holds, with the kernel's receive time
  // of the data it returns (on TCP, of its last segment): how long that
  // waited unread becomes unread_ (zero when the kernel gives no time).
  // Bytes read (> 0), 0 when the peer closed, -1 when there was nothing to
  // read (a spurious wake-up); an error counts as closed.
  int ReadFirstBytes() {
    const auto space = buffer_.prepare(4096);
    // The stamp is on the real-time clock; a step of that clock could
    // make it nonsense, so it only counts within a minute.
    const TimedRead read = ReadWithReceiveTime(
        stream_.socket().native_handle(), space.data(), space.size(),
        MSG_DONTWAIT, std::nullopt, std::chrono::seconds(60));
    if (read.bytes < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
    if (read.bytes == 0) return 0;
    buffer_.commit(static_cast<size_t>(read.bytes));
    unread_ = read.waited.value_or(std::chrono::nanoseconds::zero());
    return static_cast<int>(read.bytes);
  }

  // Parses what the buffer holds; a request it holds whole is handled at
  // once, without an asynchronous read or a timer. The rest of a partial
  // one is read by Beast under the read timeout.
  void ReadRequest() {
    phase_ = Phase::kReading;
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(
        static_cast<std::uint32_t>(server_.options.max_header_bytes));
    parser_->eager(true);
    while (buffer_.size() > 0 && !parser_->is_done()) {
      beast::error_code ec;
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) break;
      if (ec) return OnReadError(ec);
      if (used == 0) break;
    }
    if (parser_->is_done()) return OnRead({}, 0);
    // One deadline for the whole request, header and body.
    stream_.expires_after(server_.options.read_timeout);
    if (parser_->is_header_done()) return OnHeader({}, 0);
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    const auto& req = parser_->get();
    const auto expect = req[http::field::expect];
    if (!expect.empty() &&
        internal::IEquals(std::string_view(expect.data(), expect.size()),
                          "100-continue") &&
        !parser_->is_done()) {
      return net::async_write(
          stream_, net::buffer(kContinue.data(), kContinue.size()),
          beast::bind_front_handler(&Session::OnContinueWritten,
                                    shared_from_this()));
    }
    ReadBody();
  }

  void OnContinueWritten(beast::error_code ec, std::size_t) {
    if (ec) return Close();
    ReadBody();
  }

  void ReadBody() {
    if (parser_->is_done()) return OnRead({}, 0);
    http::async_read(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  // The handler's view of a request read by Beast.
  static HttpRequest ToRequest(http::request<http::string_body>&& req) {
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.content_type = std::string(req[http::field::content_type]);
    // Repeated Authorization headers are joined as RFC 9110 section 5.3
    // combines fields; the result matches no credentials.
    const auto [first, last] = req.equal_range(http::field::authorization);
    for (auto it = first; it != last; ++it) {
      if (it != first) request.authorization += ", ";
      const auto value = it->value();
      request.authorization.append(value.data(), value.size());
    }
    request.body = std::move(req.body());
    return request;
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    started_ = Clock::now();
    // The request's delay: the time its first bytes waited unread in the
    // socket, then from here on. The time the rest of it took to arrive (a
    // slow or distant client's upload, a 100-continue round trip) is the
    // client's, not a wait the server imposed, so it does not count.
    arrived_ = started_ - unread_;
    unread_ = Clock::duration::zero();
    auto req =
        std::make_shared<http::request<http::string_body>>(parser_->release());
    parser_.reset();
    const auto method = req->method_string();
    method_.assign(method.data(), method.size());
    const bool keep_alive = req->keep_alive() && !Draining();
    const unsigned version = req->version();
    const bool head = req->method() == http::verb::head;
    const auto target = req->target();
    if (NeverShed(std::string_view(target.data(), target.size())) ||
        server_.pool == nullptr) {
      return Write(Run(server_, ToRequest(std::move(*req))), keep_alive,
                   version, head);
    }
    if (TryRunInline(req, keep_alive, version, head)) return;
    const Clock::time_point arrived = arrived_;
    // On a handler thread, which also converts the request; the answer is
    // written back on this loop. A request refused at the door gets the
    // pre-built 503 at once: the I/O thread does nothing more for it.
    auto self = shared_from_this();
    auto executor = stream_.get_executor();
    ServerCore& server = server_;
    if (server.inflight_gauge != nullptr) server.inflight_gauge->Add(1);
    const Clock::time_point submitted = Clock::now();
    const std::optional<ShedReason> refused = server.pool->TrySubmit(
        [self, executor, req, keep_alive, version, head, &server, submitted,
         arrived] {
          server.Observe(ServerCore::kSocket, submitted - arrived);
          const Clock::time_point began = Clock::now();
          server.Observe(ServerCore::kQueue, began - submitted);
          HttpResponse response = Run(server, ToRequest(std::move(*req)));
          const Clock::time_point done = Clock::now();
          server.Observe(ServerCore::kHandler, done - began);
          if (server.inflight_gauge != nullptr) server.inflight_gauge->Add(-1);
          net::post(executor, [self, response = std::move(response), keep_alive,
                               version, head, &server, done]() mutable {
            server.Observe(ServerCore::kWriteBack, Clock::now() - done);
            self->Write(std::move(response), keep_alive, version, head);
          });
        },
        [self, executor, keep_alive, version, head, &server] {
          // Still queued when the server stopped.
          if (server.inflight_gauge != nullptr) server.inflight_gauge->Add(-1);
          net::post(executor, [self, keep_alive, version, head] {
            self->WriteShed(keep_alive, version, head);
          });
        },
        arrived);
    if (refused.has_value()) {
      if (server.inflight_gauge != nullptr) server.inflight_gauge->Add(-1);
      server.CountShed(*refused);
      WriteShed(keep_alive, version, head);
    }
  }

  // Runs the request here, on this I/O thread, when a handler thread would
  // have taken it at once anyway and another I/O thread stays free; true if
  // it did (and started writing the answer).
  bool TryRunInline(
      const std::shared_ptr<http::request<http::string_body>>& req,
      bool keep_alive, unsigned version, bool head) {
    ServerCore& server = server_;
    const int limit = server.options.inline_io_threads > 0
                          ? server.options.inline_io_threads
                          : server.options.io_threads - 1;
    if (!server.options.run_inline || limit < 1) return false;
    if (server.inline_running.fetch_add(1, std::memory_order_acq_rel) >=
        limit) {
      server.inline_running.fetch_sub(1, std::memory_order_acq_rel);
      return false;
    }
    if (!server.pool->TryStartInline(arrived_)) {
      server.inline_running.fetch_sub(1, std::memory_order_acq_rel);
      return false;
    }
    if (server.inline_counter != nullptr) server.inline_counter->Increment();
    if (server.inflight_gauge != nullptr) server.inflight_gauge->Add(1);
    const Clock::time_point began = Clock::now();
    server.Observe(ServerCore::kSocket, began - arrived_);
    HttpResponse response = Run(server, ToRequest(std::move(*req)));
    const Clock::duration ran = Clock::now() - began;
    server.pool->FinishInline(ran);
    if (server.inflight_gauge != nullptr) server.inflight_gauge->Add(-1);
    server.inline_running.fetch_sub(1, std::memory_order_acq_rel);
    server.Observe(ServerCore::kHandler, ran);
    Write(std::move(response), keep_alive, version, head);
    return true;
  }

  static HttpResponse Run(ServerCore& server, const HttpRequest& request) {
    try {
      return server.handler(request);
    } catch (const std::exception& e) {
      return ErrorResponse(500, "internal", e.what());
    }
  }

  // The answer of a shed request: constant bytes (shed_response.h).
  void WriteShed(bool keep_alive, unsigned version, bool head) {
    keep_alive = keep_alive && !Draining();
    phase_ = Phase::kWriting;
    route_ = "shed";
    status_ = 503;
    Send(internal::ShedResponseBytes(version, keep_alive, head), keep_alive);
  }

  // Writes `bytes`, which must outlive the write (out_ or constant bytes):
  // one send; what the socket did not take is written by Beast under the
  // write timeout.
  void Send(std::string_view bytes, bool keep_alive) {
    const ssize_t sent = ::send(stream_.socket().native_handle(), bytes.data(),
                                bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == static_cast<ssize_t>(bytes.size())) {
      // Pipelined requests already buffered go through the loop, so a deep
      // pipeline does not nest one call per request on the stack.
      if (buffer_.size() == 0) return OnWrite(keep_alive, {}, bytes.size());
      return net::post(stream_.get_executor(),
                       beast::bind_front_handler(
                           &Session::OnWrite, shared_from_this(), keep_alive,
                           beast::error_code{}, bytes.size()));
    }
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return OnWrite(keep_alive,
                     beast::error_code(errno, boost::system::system_category()),
                     0);
    }
    const size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
    stream_.expires_after(server_.options.write_timeout);
    net::async_write(stream_,
                     net::buffer(bytes.data() + done, bytes.size() - done),
                     beast::bind_front_handler(&Session::OnWrite,
                                               shared_from_this(), keep_alive));
  }

  void OnReadError(beast::error_code ec) {
    // A malformed or oversized request gets an answer; a vanished or slow
    // client just loses its connection.
    if (ec == http::error::body_limit) {
      return WriteError(413, "payload_too_large",
                        "request body exceeds " +
                            std::to_string(server_.options.max_body_bytes) +
                            " bytes");
    }
    if (ec == http::error::header_limit) {
      return WriteError(431, "headers_too_large",
                        "request headers exceed " +
                            std::to_string(server_.options.max_header_bytes) +
                            " bytes");
    }
    if (ec.category() ==
            http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      return WriteError(400, "bad_request",
                        "malformed HTTP request: " + ec.message());
    }
    Close();
  }

  void WriteError(int status, std::string_view code, std::string_view message) {
    started_ = Clock::now();
    method_ = "other";
    HttpResponse response = ErrorResponse(status, code, message);
    response.route = "transport";
    linger_ = true;
    Write(std::move(response), /*keep_alive=*/false, 11, /*head=*/false);
  }

  void Write(HttpResponse response, bool keep_alive, unsigned version,
             bool head) {
    // A drain that began while the handler ran closes the connection after
    // this answer.
    keep_alive = keep_alive && !Draining();
    phase_ = Phase::kWriting;
    route_ = std::move(response.route);
    status_ = response.status;
    if (internal::AppendResponseBytes(response, version, keep_alive, head,
                                      &out_)) {
      return Send(out_, keep_alive);
    }
    // A status or header Beast frames its own way.
    res_ = internal::ToBeastResponse(std::move(response), version, keep_alive,
                                     head);
    stream_.expires_after(server_.options.write_timeout);
    http::async_write(stream_, res_,
                      beast::bind_front_handler(
                          &Session::OnWrite, shared_from_this(), keep_alive));
  }

  void OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
    const double seconds =
        std::chrono::duration<double>(Clock::now() - started_).count();
    RecordRequest(server_.metrics, route_, method_, status_, seconds);
    // A large answer (/metrics, a dashboard asset) does not keep its
    // buffer for the connection's life: a thousand idle keep-alive
    // connections would each hold their largest answer.
    if (out_.capacity() > kKeptAnswerBytes) std::string().swap(out_);
    if (ec) return Close();
    if (linger_) return Linger();
    if (!keep_alive || Draining()) return Close();
    WaitForRequest();
  }

  // After an error answer the client may still be sending the request we
  // refused; closing with unread input would reset the connection and could
  // destroy the answer before the client reads it. So: half-close, then
  // discard input until the client closes or a short deadline passes.
  void Linger() {
    phase_ = Phase::kReading;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::min<std::chrono::milliseconds>(
        server_.options.read_timeout, std::chrono::milliseconds(2000)));
    DiscardInput({}, 0);
  }

  void DiscardInput(beast::error_code ec, std::size_t) {
    if (ec) return Close();
    buffer_.clear();
    stream_.async_read_some(
        buffer_.prepare(16384),
        beast::bind_front_handler(&Session::DiscardInput, shared_from_this()));
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    idle_timer_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
    // The session is destroyed when the last handler holding it returns.
  }

  ServerCore& server_;
  const uint64_t id_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  // Ends the wait for a request's first byte at idle_deadline_
  // (idle_timeout after the wait began); armed while idle_timer_armed_.
  net::steady_timer idle_timer_;
  Clock::time_point idle_deadline_;
  bool idle_timer_armed_ = false;
  // How long the first bytes of the request being read waited unread in
  // the socket (ReadFirstBytes), and, once it is read, when its delay began:
  // its completion minus that wait (OnRead).
  Clock::duration unread_ = Clock::duration::zero();
  Clock::time_point arrived_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  // The bytes of the answer being written (its capacity is kept, up to
  // kKeptAnswerBytes).
  static constexpr size_t kKeptAnswerBytes = 64 << 10;
  std::string out_;
  Phase phase_ = Phase::kIdle;
  bool draining_ = false;
  bool linger_ = false;  // close via Linger() after the next write
  Clock::time_point started_;
  std::string method_;
  std::string route_;
  int status_ = 0;
};

struct HttpServer::Impl : ServerCore {
  using ServerCore::ServerCore;
};

// Answers a connection over the cap with 503, then closes it. Not counted
// as a session: it lives at most write_timeout.
class Rejection : public std::enable_shared_from_this<Rejection> {
 public:
  Rejection(tcp::socket&& socket, std::chrono::milliseconds timeout)
      : stream_(std::move(socket)) {
    stream_.expires_after(timeout);
    const HttpResponse error = ErrorResponse(
        503, "unavailable", "too many open connections; retry later");
    res_.result(http::status::service_unavailable);
    res_.set(http::field::server, "cfrec");
    res_.set(http::field::content_type, error.content_type);
    res_.keep_alive(false);
    res_.body() = error.body;
    res_.prepare_payload();
  }
  void Run() {
    http::async_write(
        stream_, res_,
        beast::bind_front_handler(&Rejection::OnWrite, shared_from_this()));
  }

 private:
  void OnWrite(beast::error_code, std::size_t) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }
  beast::tcp_stream stream_;
  http::response<http::string_body> res_;
};

void ServerCore::DoAccept() {
  // Each accepted socket goes to the next loop; one thread runs each loop,
  // so a session needs no strand.
  net::io_context& loop = *loops[next_loop];
  next_loop = (next_loop + 1) % loops.size();
  acceptor->async_accept(loop.get_executor(),
                         [this](beast::error_code ec, tcp::socket socket) {
                           OnAccept(ec, std::move(socket));
                         });
}

void ServerCore::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
  if (!ec) {
    std::shared_ptr<Session> session;
    bool over_cap = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (draining) return;  // `socket` closes as it goes out of scope
      if (sessions.size() >= options.max_connections) {
        over_cap = true;
      } else {
        const uint64_t id = next_id++;
        session = std::make_shared<Session>(*this, id, std::move(socket));
        sessions.emplace(id, session);
      }
    }
    if (over_cap) {
      if (rejected_counter != nullptr) rejected_counter->Increment();
      std::make_shared<Rejection>(std::move(socket), options.write_timeout)
          ->Run();
    } else {
      if (connections_gauge != nullptr) connections_gauge->Add(1);
      session->Run();
    }
  }
  // Errors such as EMFILE are transient; keep accepting.
  DoAccept();
}

void ServerCore::Unregister(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu);
  sessions.erase(id);
  if (connections_gauge != nullptr) connections_gauge->Add(-1);
  if (sessions.empty()) all_closed.notify_all();
}

HttpServer::HttpServer(ServerOptions options, Handler handler,
                       MetricsRegistry* metrics)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler),
                                   metrics)) {}

HttpServer::HttpServer(ServerOptions options, const ServiceContext& context)
    : HttpServer(
          std::move(options),
          [&context](const HttpRequest& request) {
            return Handle(context, request);
          },
          context.metrics) {
  InitServiceMetrics(context);
}

HttpServer::~HttpServer() { Drain(); }

Status HttpServer::Start() {
  if (impl_->started) return Status::FailedPrecondition("already started");
  CFREC_RETURN_IF_ERROR(impl_->options.Validate());
  Impl& s = *impl_;
  for (int i = 0; i < s.options.io_threads; ++i) {
    // Concurrency hint 1: one thread runs the loop (other threads still
    // post to it: the handler threads' answers, Drain).
    s.loops.push_back(std::make_unique<net::io_context>(1));
  }
  try {
    tcp::resolver resolver(*s.loops.front());
    const auto endpoints = resolver.resolve(
        s.options.host, std::to_string(s.options.port),
        tcp::resolver::passive | tcp::resolver::numeric_service);
    if (endpoints.empty()) {
      return Status::InvalidArgument("cannot resolve '" + s.options.host + "'");
    }
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    s.acceptor.emplace(s.loops.front()->get_executor());
    s.acceptor->open(endpoint.protocol());
    s.acceptor->set_option(net::socket_base::reuse_address(true));
    s.acceptor->bind(endpoint);
    s.acceptor->listen(net::socket_base::max_listen_connections);
    s.bound_port = s.acceptor->local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    s.acceptor.reset();
    return Status::Unavailable("cannot listen on " + s.options.host + ":" +
                               std::to_string(s.options.port) + ": " +
                               e.what());
  }
  s.started = true;
  s.pool = std::make_unique<AdmissionPool>(s.options.admission);
  for (auto& loop : s.loops) s.work.emplace_back(loop->get_executor());
  s.DoAccept();
  for (int i = 0; i < s.options.io_threads; ++i) {
    s.threads.emplace_back([&s, &loop = *s.loops[i]] {
      pthread_setname_np(pthread_self(), "http-io");
      if (s.options.io_realtime_priority > 0) {
        const Status sched = SetIoThreadSched(s.options);
        if (!sched.ok() && !s.sched_refused.exchange(true)) {
          LogWarn("http",
                  "keeping the I/O threads' scheduling: " + sched.ToString());
        }
      }
      // Handlers report errors as values; an exception escaping one is a
      // bug, logged, and the loop keeps serving.
      for (;;) {
        try {
          loop.run();
          return;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "cfrec http: unexpected exception: %s\n",
                       e.what());
        }
      }
    });
  }
  return Status::Ok();
}

void HttpServer::Drain() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.draining = true;
    s.draining_flag.store(true, std::memory_order_release);
    for (auto& [id, weak] : s.sessions) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
  }
  // Stop accepting, on the acceptor's loop (an acceptor is not safe to
  // close from another thread while an accept is pending). Wait for it, so
  // the port is closed before the I/O threads can be stopped.
  auto closed = std::make_shared<std::promise<void>>();
  net::post(s.acceptor->get_executor(), [&s, closed] {
    beast::error_code ignored;
    s.acceptor->close(ignored);
    closed->set_value();
  });
  const auto deadline = Clock::now() + s.options.drain_timeout;
  closed->get_future().wait_until(deadline);
  for (auto& session : live) {
    net::post(session->executor(), [session] { session->OnDrain(); });
  }
  live.clear();  // our references must not keep sessions alive
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.all_closed.wait_until(lock, deadline,
                            [&s] { return s.sessions.empty(); });
  }
  // Requests that outlived drain_timeout are abandoned here; their
  // connections close when the server is destroyed. The handler threads
  // finish what runs (as the I/O threads would below) and shed what is
  // queued.
  s.pool->Stop();
  s.work.clear();
  for (auto& loop : s.loops) loop->stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  // No thread runs the loop now, so the acceptor may be touched here; it is
  // still open only if its close never ran (all threads stuck past the
  // deadline).
  beast::error_code ignored;
  s.acceptor->close(ignored);
}

uint16_t HttpServer::port() const {
  return impl_->started ? impl_->bound_port.load() : impl_->options.port;
}

size_t HttpServer::active_connections() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->sessions.size();
}

}  // namespace cfrec::server
