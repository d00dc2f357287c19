// HttpServer over real loopback sockets: keep-alive, pipelining, timeouts,
// limits, the connection cap and the drain.
#include "cfrec/server/http_server.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/server/auth.h"
#include "cfrec/server/testing/fake_snapshot.h"
#include "server/http_client.h"

namespace cfrec::server {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using std::chrono::milliseconds;

HttpResponse Ok(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  r.route = "/test";
  return r;
}

// "<policy> <thread name>" of the calling thread, e.g. "0 http-io" for
// SCHED_OTHER on an I/O thread.
std::string ThisThreadSchedText() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return std::to_string(sched_getscheduler(0) & ~SCHED_RESET_ON_FORK) + " " +
         name;
}

// Whether the kernel lets this process put a thread under SCHED_FIFO at
// priority 1 (CAP_SYS_NICE or RLIMIT_RTPRIO), tried on a throwaway thread.
bool SchedFifoPermitted() {
  bool permitted = false;
  std::thread([&permitted] {
    sched_param param{};
    param.sched_priority = 1;
    permitted = sched_setscheduler(0, SCHED_FIFO, &param) == 0;
  }).join();
  return permitted;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options) {
    options.port = 0;
    server_ = std::make_unique<HttpServer>(
        options,
        [this](const HttpRequest& request) -> HttpResponse {
          handled_.fetch_add(1);
          if (request.target == "/slow") {
            slow_entered_.set_value();
            release_slow_.get_future().wait();
            return Ok(R"({"slow":true})");
          }
          if (request.target == "/echo") return Ok(request.body);
          if (request.target == "/sched") return Ok(ThisThreadSchedText());
          if (request.target == "/sched-of-a-new-thread") {
            std::string text;
            std::thread([&text] { text = ThisThreadSchedText(); }).join();
            return Ok(text);
          }
          if (request.target == "/thread") {
            char name[16] = {};
            pthread_getname_np(pthread_self(), name, sizeof(name));
            return Ok(name);
          }
          return Ok(R"({"ok":true})");
        },
        &metrics_);
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_NE(server_->port(), 0);
  }

  MetricsRegistry metrics_;
  std::atomic<int> handled_{0};  // handler calls
  std::promise<void> slow_entered_;
  std::promise<void> release_slow_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  StartServer({});
  Client client(server_->port());
  for (int i = 0; i < 3; ++i) {
    client.Send(Client::Get("/x"));
    const auto res = client.Read();
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_TRUE(res.keep_alive());
    EXPECT_EQ(res.body(), R"({"ok":true})");
    EXPECT_EQ(res[http::field::content_type], "application/json");
  }
  EXPECT_EQ(server_->active_connections(), 1u);
  client.Send(Client::Get("/x", /*close=*/true));
  const auto last = client.Read();
  EXPECT_FALSE(last.keep_alive());
  EXPECT_TRUE(client.ReadsEof());
  EXPECT_EQ(
      metrics_
          .GetCounter("cfrec_http_requests_total", "",
                      {"route", "method", "status"}, {"/test", "GET", "200"})
          ->value(),
      4u);
}

TEST_F(HttpServerTest, PipelinedRequestsAnswerInOrder) {
  StartServer({});
  Client client(server_->port());
  const std::string post =
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
      "Content-Length: 7\r\n\r\n\"hello\"";
  client.Send(post + Client::Get("/x") + post);
  EXPECT_EQ(client.Read().body(), "\"hello\"");
  EXPECT_EQ(client.Read().body(), R"({"ok":true})");
  EXPECT_EQ(client.Read().body(), "\"hello\"");
}

TEST_F(HttpServerTest, IdleConnectionIsClosed) {
  ServerOptions options;
  options.idle_timeout = milliseconds(200);
  StartServer(options);
  Client client(server_->port());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.ReadsEof());
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(150));
}

// The idle deadline is one per connection, moved by each request: a
// connection kept busy past idle_timeout stays open, and closes idle_timeout
// after its last answer.
TEST_F(HttpServerTest, IdleTimeoutCountsFromTheLastRequest) {
  ServerOptions options;
  options.idle_timeout = milliseconds(400);
  StartServer(options);
  Client client(server_->port());
  const auto first = std::chrono::steady_clock::now();
  auto last = first;
  while (last - first < milliseconds(700)) {
    std::this_thread::sleep_for(milliseconds(50));  // idle, under the timeout
    client.Send(Client::Get("/x"));
    ASSERT_EQ(client.Read().result_int(), 200);
    last = std::chrono::steady_clock::now();
  }
  EXPECT_TRUE(client.ReadsEof());
  EXPECT_GE(std::chrono::steady_clock::now() - last, milliseconds(350));
}

// Requests pipelined deeper than one read are all answered, in order.
TEST_F(HttpServerTest, ADeepPipelineIsAnsweredInOrder) {
  StartServer({});
  Client client(server_->port());
  std::string requests;
  for (int i = 0; i < 3000; ++i) {
    requests +=
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: "
        "application/json\r\nContent-Length: " +
        std::to_string(std::to_string(i).size()) + "\r\n\r\n" +
        std::to_string(i);
  }
  std::thread writer([&] { client.Send(requests); });
  for (int i = 0; i < 3000; ++i) {
    const auto response = client.Read();
    ASSERT_EQ(response.body(), std::to_string(i));
  }
  writer.join();
}

TEST_F(HttpServerTest, SlowClientIsCutOffAndHoldsNoThread) {
  ServerOptions options;
  options.io_threads = 1;
  options.read_timeout = milliseconds(300);
  StartServer(options);
  Client slow(server_->port());
  slow.Send("GET /x HTTP/1.1\r\nHost: t\r\n");  // headers never finish
  // With one I/O thread, another client is still served at once.
  Client fast(server_->port());
  fast.Send(Client::Get("/x"));
  EXPECT_EQ(fast.Read().result_int(), 200);
  EXPECT_TRUE(slow.ReadsEof());
}

TEST_F(HttpServerTest, BodyOverLimitIs413) {
  ServerOptions options;
  options.max_body_bytes = 1024;
  StartServer(options);
  {
    Client client(server_->port());
    client.Send(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2048\r\n"
        "Content-Type: application/json\r\n\r\n" +
        std::string(2048, 'x'));
    const auto res = client.Read();
    EXPECT_EQ(res.result_int(), 413);
    const auto doc = nlohmann::json::parse(res.body());
    EXPECT_EQ(doc["error"]["code"], "payload_too_large");
    EXPECT_TRUE(client.ReadsEof());
  }
  {
    // Chunked: the size is only known while reading.
    Client client(server_->port());
    std::string chunked =
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i)
      chunked += "200\r\n" + std::string(512, 'y') + "\r\n";
    chunked += "0\r\n\r\n";
    client.Send(chunked);
    EXPECT_EQ(client.Read().result_int(), 413);
  }
  {
    Client client(server_->port());  // at the limit is fine
    client.Send(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n" +
        std::string(1024, 'z'));
    EXPECT_EQ(client.Read().body(), std::string(1024, 'z'));
  }
}

TEST_F(HttpServerTest, MalformedHttpIs400AndOversizedHeadersAre431) {
  ServerOptions options;
  options.max_header_bytes = 512;
  StartServer(options);
  {
    Client client(server_->port());
    client.Send("THIS IS NOT HTTP\r\n\r\n");
    const auto res = client.Read();
    EXPECT_EQ(res.result_int(), 400);
    EXPECT_EQ(nlohmann::json::parse(res.body())["error"]["code"],
              "bad_request");
  }
  {
    Client client(server_->port());
    client.Send("GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " +
                std::string(1000, 'h') + "\r\n\r\n");
    EXPECT_EQ(client.Read().result_int(), 431);
  }
  {
    Client client(server_->port());
    client.Send("GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n");
    EXPECT_EQ(client.Read().result_int(), 400);
  }
}

TEST_F(HttpServerTest, ExpectContinueGetsInterimResponse) {
  StartServer({});
  Client client(server_->port());
  client.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
      "Expect: 100-continue\r\n\r\n");
  boost::system::error_code ec;
  auto interim = client.Read(ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(interim.result_int(), 100);
  client.Send("ping");
  EXPECT_EQ(client.Read().body(), "ping");
}

TEST_F(HttpServerTest, ConnectionsOverTheCapGet503) {
  ServerOptions options;
  options.max_connections = 2;
  StartServer(options);
  Client a(server_->port()), b(server_->port());
  for (Client* c : {&a, &b}) {  // both accepted and registered
    c->Send(Client::Get("/x"));
    EXPECT_EQ(c->Read().result_int(), 200);
  }
  Client c(server_->port());
  const auto res = c.Read();
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(nlohmann::json::parse(res.body())["error"]["code"], "unavailable");
  EXPECT_TRUE(c.ReadsEof());
  EXPECT_EQ(
      metrics_.GetCounter("cfrec_http_connections_rejected_total", "")->value(),
      1u);
  // The existing connections still work.
  a.Send(Client::Get("/x"));
  EXPECT_EQ(a.Read().result_int(), 200);
}

TEST_F(HttpServerTest, ExcessRequestsAreShedWith503AndProbesAreNot) {
  ServerOptions options;
  // The held request must run on a handler thread: run inline it would
  // also hold its I/O thread's other connections (ServerOptions::run_inline).
  options.run_inline = false;
  options.admission.threads = 1;
  options.admission.max_inflight = 1;
  StartServer(options);
  const uint16_t port = server_->port();
  Client busy(port), excess(port), probe(port);
  busy.Send(Client::Get("/slow"));
  slow_entered_.get_future().wait();  // the one handler slot is held

  // Refused at once (the slow request is still held).
  excess.Send(Client::Get("/x"));
  const auto shed = excess.Read();
  EXPECT_EQ(shed.result_int(), 503);
  EXPECT_EQ(shed[http::field::retry_after], "1");
  EXPECT_EQ(nlohmann::json::parse(shed.body())["error"]["code"], "overloaded");
  EXPECT_TRUE(shed.keep_alive());  // the connection stays usable
  // Probes, metrics and the model's metadata bypass the queue.
  for (const char* target : {"/healthz", "/readyz", "/metrics", "/v1/model"}) {
    probe.Send(Client::Get(target));
    EXPECT_EQ(probe.Read().result_int(), 200) << target;
  }
  EXPECT_EQ(metrics_
                .GetCounter("cfrec_http_requests_shed_total", "", {"reason"},
                            {"queue_full"})
                ->value(),
            1u);

  release_slow_.set_value();
  EXPECT_EQ(busy.Read().result_int(), 200);
  // Capacity is back: the same connection is served.
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(10'000);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    excess.Send(Client::Get("/x"));
    status = excess.Read().result_int();
    if (status == 200) break;
  }
  EXPECT_EQ(status, 200);
}

// Run to completion: with no handler thread busy, a request runs on the
// I/O thread that read it; while one I/O thread runs a request (the other
// must stay free to read and refuse), or with run_inline off, requests go
// to the handler threads.
TEST_F(HttpServerTest, IdleServerRunsRequestsOnTheIoThread) {
  ServerOptions options;
  options.io_threads = 2;
  options.admission.threads = 2;
  StartServer(options);
  Client a(server_->port()), b(server_->port());
  a.Send(Client::Get("/thread"));
  EXPECT_EQ(a.Read().body(), "http-io");
  Counter* runs = metrics_.GetCounter("cfrec_http_requests_inline_total", "");
  EXPECT_EQ(runs->value(), 1u);

  b.Send(Client::Get("/slow"));  // inline too: the pool is idle
  slow_entered_.get_future().wait();
  EXPECT_EQ(runs->value(), 2u);
  a.Send(Client::Get("/thread"));  // the other I/O thread hands it off
  EXPECT_EQ(a.Read().body(), "http-handler");
  EXPECT_EQ(runs->value(), 2u);
  release_slow_.set_value();
  EXPECT_EQ(b.Read().result_int(), 200);
}

// The I/O threads put themselves under SCHED_FIFO when the kernel allows
// it (CAP_SYS_NICE): requests run inline see it, and threads they create
// start under SCHED_OTHER (SCHED_RESET_ON_FORK); without the right, the
// refusal is logged and the server serves under SCHED_OTHER.
TEST_F(HttpServerTest, IoThreadsRunUnderSchedFifoWhenPermitted) {
  const bool permitted = SchedFifoPermitted();
  ServerOptions options;
  options.io_realtime_priority = 1;
  StartServer(options);
  Client client(server_->port());
  client.Send(Client::Get("/sched"));
  EXPECT_EQ(client.Read().body(),
            std::to_string(permitted ? SCHED_FIFO : SCHED_OTHER) + " http-io");
  Counter* runs = metrics_.GetCounter("cfrec_http_requests_inline_total", "");
  EXPECT_EQ(runs->value(), 1u);  // run on the I/O thread itself
  client.Send(Client::Get("/sched-of-a-new-thread"));
  const std::string created = client.Read().body();
  EXPECT_EQ(created.substr(0, created.find(' ')), std::to_string(SCHED_OTHER))
      << created;
}

// Without the option the I/O threads keep the process's policy.
TEST_F(HttpServerTest, IoThreadsKeepTheirPolicyByDefault) {
  StartServer(ServerOptions{});
  Client client(server_->port());
  client.Send(Client::Get("/sched"));
  EXPECT_EQ(client.Read().body(),
            std::to_string(sched_getscheduler(0) & ~SCHED_RESET_ON_FORK) +
                " http-io");
}

TEST(ServerOptionsTest, IoSchedulingOutOfRangeIsInvalid) {
  for (int priority : {-1, 100}) {
    ServerOptions options;
    options.io_realtime_priority = priority;
    EXPECT_TRUE(options.Validate().IsInvalidArgument()) << priority;
  }
  ServerOptions options;
  options.io_realtime_priority = 99;
  EXPECT_TRUE(options.Validate().ok());
}

// The delay target counts the time a request's bytes waited unread in its
// socket (by the kernel's receive time), but only a loaded interval can
// make the server overloaded: with the only I/O thread busy in a request
// run inline, a lone request that arrives meanwhile and waits far longer
// than the target (a stall, as a busy machine gives a light client) is
// served once read, and so is the next one.
TEST_F(HttpServerTest, ALoneRequestThatWaitedUnreadPastTheDelayTargetIsServed) {
  ServerOptions options;
  options.io_threads = 1;
  options.inline_io_threads = 1;  // run inline even on the only I/O thread
  options.admission.threads = 1;
  options.admission.max_queue_wait = milliseconds(1);
  options.admission.target_delay = milliseconds(1);
  options.admission.target_interval = milliseconds(10);
  StartServer(options);
  Client a(server_->port()), b(server_->port());
  a.Send(Client::Get("/slow"));
  slow_entered_.get_future().wait();  // the loop is held
  b.Send(Client::Get("/x"));
  // Let b's bytes wait in its socket well past the target and a few
  // intervals.
  const auto until = std::chrono::steady_clock::now() + milliseconds(60);
  while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
  release_slow_.set_value();
  EXPECT_EQ(a.Read().result_int(), 200);
  EXPECT_EQ(b.Read().result_int(), 200);
  b.Send(Client::Get("/x"));
  EXPECT_EQ(b.Read().result_int(), 200);
  EXPECT_EQ(handled_.load(), 3);
  EXPECT_EQ(metrics_
                .GetCounter("cfrec_http_requests_shed_total", "", {"reason"},
                            {"late"})
                ->value(),
            0u);
}

// The delay counts the time a request's first bytes waited unread, not the
// time the rest of it took to arrive: a body that follows its header well
// past the budget (a slow or distant client) is served, not refused late.
TEST_F(HttpServerTest, ASlowUploadIsNotCountedAsDelay) {
  ServerOptions options;
  // Wide enough that the header's own wait stays within it under a
  // sanitizer on a busy machine.
  options.admission.max_queue_wait = milliseconds(20);
  options.admission.target_delay = milliseconds(15);
  StartServer(options);
  Client client(server_->port());
  const std::string request = Client::PostJson("/echo", R"({"late":true})");
  const size_t split = request.find("\r\n\r\n") + 4;
  client.Send(request.substr(0, split));
  // The body arrives well past the budget after the header.
  const auto until = std::chrono::steady_clock::now() + milliseconds(80);
  while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
  client.Send(request.substr(split));
  const auto res = client.Read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), R"({"late":true})");
  EXPECT_EQ(metrics_
                .GetCounter("cfrec_http_requests_shed_total", "", {"reason"},
                            {"late"})
                ->value(),
            0u);
}

TEST_F(HttpServerTest, RunInlineOffHandsEveryRequestToAHandlerThread) {
  ServerOptions options;
  options.run_inline = false;
  StartServer(options);
  Client a(server_->port());
  for (int i = 0; i < 3; ++i) {
    a.Send(Client::Get("/thread"));
    EXPECT_EQ(a.Read().body(), "http-handler");
  }
  EXPECT_EQ(
      metrics_.GetCounter("cfrec_http_requests_inline_total", "")->value(), 0u);
}

// A refused request never reaches the handler; its answer is the
// pre-built 503, framed for the request's version, method and keep-alive,
// and a refused request's body is consumed, so the connection stays usable.
TEST_F(HttpServerTest, RefusalsAreAnsweredWithoutRunningTheHandler) {
  ServerOptions options;
  // The held request must run on a handler thread: run inline it would
  // also hold its I/O thread's other connections (ServerOptions::run_inline).
  options.run_inline = false;
  options.admission.threads = 1;
  options.admission.max_inflight = 1;
  StartServer(options);
  const uint16_t port = server_->port();
  Client busy(port), excess(port);
  busy.Send(Client::Get("/slow"));
  slow_entered_.get_future().wait();
  ASSERT_EQ(handled_.load(), 1);

  excess.Send(Client::PostJson("/echo", R"({"a":1})"));
  auto res = excess.Read();
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_TRUE(res.keep_alive());
  EXPECT_EQ(nlohmann::json::parse(res.body())["error"]["code"], "overloaded");
  excess.Send("HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n");
  {
    // A HEAD answer has Content-Length but no body.
    http::response_parser<http::empty_body> head;
    head.skip(true);
    boost::beast::flat_buffer buffer;
    boost::system::error_code ec;
    http::read(excess.socket(), buffer, head, ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(head.get().result_int(), 503);
    EXPECT_EQ(head.get()[http::field::content_length],
              std::to_string(res.body().size()));
    EXPECT_EQ(buffer.size(), 0u);
  }
  EXPECT_EQ(handled_.load(), 1);
  // HTTP/1.0 without keep-alive: the answer says nothing and closes.
  Client old(port);
  old.Send("GET /x HTTP/1.0\r\n\r\n");
  res = old.Read();
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(res.version(), 10u);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(old.ReadsEof());
  // HTTP/1.1 asking to close: "Connection: close", then closed.
  excess.Send(Client::Get("/x", /*close=*/true));
  res = excess.Read();
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(excess.ReadsEof());
  EXPECT_EQ(handled_.load(), 1);  // only the slow request ran
  EXPECT_EQ(
      metrics_
          .GetCounter("cfrec_http_requests_total", "",
                      {"route", "method", "status"}, {"shed", "GET", "503"})
          ->value(),
      2u);
  release_slow_.set_value();
  EXPECT_EQ(busy.Read().result_int(), 200);
}

TEST_F(HttpServerTest, DrainFinishesRequestsInFlightAndClosesIdleOnes) {
  ServerOptions options;
  // The held request must run on a handler thread: run inline it would
  // also hold its I/O thread's other connections (ServerOptions::run_inline).
  options.run_inline = false;
  options.drain_timeout = milliseconds(10'000);
  StartServer(options);
  const uint16_t port = server_->port();
  Client busy(port), idle(port);
  idle.Send(Client::Get("/x"));
  EXPECT_EQ(idle.Read().result_int(), 200);
  busy.Send(Client::Get("/slow"));
  slow_entered_.get_future().wait();  // the request is in flight

  auto drained = std::async(std::launch::async, [&] { server_->Drain(); });
  EXPECT_TRUE(idle.ReadsEof());  // the drain has begun
  EXPECT_EQ(drained.wait_for(milliseconds(0)), std::future_status::timeout);
  release_slow_.set_value();
  const auto res = busy.Read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), R"({"slow":true})");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(busy.ReadsEof());
  drained.get();
  EXPECT_EQ(server_->active_connections(), 0u);
  EXPECT_THROW(Client{port}, boost::system::system_error);  // not listening
}

TEST_F(HttpServerTest, DrainIsIdempotentAndRefusesNewConnections) {
  StartServer({});
  const uint16_t port = server_->port();
  server_->Drain();
  server_->Drain();
  EXPECT_THROW(Client{port}, boost::system::system_error);
  server_.reset();  // the destructor after a drain is a no-op
}

TEST_F(HttpServerTest, StartFailsWhenPortIsTaken) {
  StartServer({});
  ServerOptions options;
  options.port = server_->port();
  HttpServer second(options, [](const HttpRequest&) { return HttpResponse{}; });
  const Status s = second.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  ServerOptions bad;
  bad.io_threads = 0;
  HttpServer third(bad, [](const HttpRequest&) { return HttpResponse{}; });
  EXPECT_TRUE(third.Start().IsInvalidArgument());
}

TEST(HttpServiceTest, ServesTheApiThroughSockets) {
  learner::SnapshotHolder holder;
  holder.Publish(testing::MakeRandomSnapshot(3, 10, 100, 8, 5, 11));
  MetricsRegistry metrics;
  ServiceContext context;
  context.snapshots = &holder;
  context.metrics = &metrics;
  ServerOptions options;
  options.port = 0;
  HttpServer server(options, context);
  ASSERT_TRUE(server.Start().ok());
  Client client(server.port());
  client.Send(Client::Get("/v1/recommendations?user_id=U1&n=5"));
  auto res = client.Read();
  ASSERT_EQ(res.result_int(), 200) << res.body();
  const auto doc = nlohmann::json::parse(res.body());
  EXPECT_EQ(doc["model_version"], 3);
  EXPECT_EQ(doc["items"].size(), 5u);
  client.Send(Client::Get("/nope"));
  EXPECT_EQ(client.Read().result_int(), 404);
  client.Send(Client::Get("/metrics"));
  res = client.Read();
  EXPECT_NE(
      res.body().find("cfrec_http_requests_total{route=\"/v1/"
                      "recommendations\",method=\"GET\",status=\"200\"} 1"),
      std::string::npos)
      << res.body();
  EXPECT_NE(
      res.body().find("route=\"unmatched\",method=\"GET\",status=\"404\""),
      std::string::npos);
  server.Drain();
}

TEST(HttpServiceTest, EventsNeedTheApiTokenThroughSockets) {
  const std::string token = "e2e-7c41d09b2a6f";
  learner::SnapshotHolder holder;
  holder.Publish(testing::MakeRandomSnapshot(3, 10, 100, 8, 5, 11));
  testing::RecordingSink sink;
  MetricsRegistry metrics;
  ServiceContext context;
  context.snapshots = &holder;
  context.sink = &sink;
  context.metrics = &metrics;
  auto api_token = ApiToken::Create(token);
  ASSERT_TRUE(api_token.ok());
  context.api_token = *api_token;
  ServerOptions options;
  options.port = 0;
  ::testing::internal::CaptureStderr();
  HttpServer server(options, context);
  ASSERT_TRUE(server.Start().ok());
  Client client(server.port());
  const std::string event =
      R"({"type":"click","impression_id":"i1","user_id":"U1",)"
      R"("item_id":"N1","ts":1700000000000})";
  std::vector<std::string> bodies;

  // No header, a wrong token, and the token twice: 401 on a connection
  // that stays open.
  for (const std::string& headers :
       {std::string(), "Authorization: Bearer " + token + "0\r\n",
        "Authorization: Bearer " + token + "\r\nAuthorization: Bearer " +
            token + "\r\n"}) {
    client.Send(Client::PostJson("/v1/events", event, headers));
    const auto res = client.Read();
    EXPECT_EQ(res.result_int(), 401) << headers;
    EXPECT_TRUE(res.keep_alive());
    EXPECT_EQ(res[http::field::content_type], "application/json");
    EXPECT_EQ(res[http::field::www_authenticate].substr(0, 7), "Bearer ");
    EXPECT_EQ(nlohmann::json::parse(res.body())["error"]["code"],
              "unauthorized");
    bodies.push_back(res.body());
  }
  EXPECT_TRUE(sink.messages().empty());

  client.Send(Client::PostJson("/v1/events", event,
                               "Authorization: Bearer " + token + "\r\n"));
  auto res = client.Read();
  EXPECT_EQ(res.result_int(), 202) << res.body();
  EXPECT_EQ(sink.messages().size(), 1u);

  // Reads need nothing.
  client.Send(Client::Get("/v1/recommendations?user_id=U1&n=5"));
  EXPECT_EQ(client.Read().result_int(), 200);
  client.Send(
      Client::PostJson("/v1/rank", R"({"user_id":"U1","items":["I1"]})"));
  res = client.Read();
  EXPECT_NE(res.result_int(), 401) << res.body();

  client.Send(Client::Get("/metrics"));
  res = client.Read();
  const std::string exposition = res.body();
  EXPECT_NE(exposition.find("cfrec_http_unauthorized_total{route=\"/v1/"
                            "events\",reason=\"missing\"} 1\n"),
            std::string::npos)
      << exposition;
  EXPECT_NE(exposition.find("cfrec_http_unauthorized_total{route=\"/v1/"
                            "events\",reason=\"wrong_token\"} 2\n"),
            std::string::npos);
  EXPECT_NE(exposition.find("cfrec_http_unauthorized_total{route=\"/v1/"
                            "events\",reason=\"wrong_scheme\"} 0\n"),
            std::string::npos);
  EXPECT_NE(exposition.find("cfrec_http_requests_total{route=\"/v1/events\","
                            "method=\"POST\",status=\"401\"} 3\n"),
            std::string::npos);
  server.Drain();
  const std::string logged = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(logged.find(token), std::string::npos) << logged;
  EXPECT_EQ(exposition.find(token), std::string::npos);
  for (const std::string& body : bodies) {
    EXPECT_EQ(body.find(token), std::string::npos) << body;
  }
}

}  // namespace
}  // namespace cfrec::server
