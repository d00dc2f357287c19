// The HTTP router and every handler (server/service.h) on arbitrary
// requests, against a fake snapshot with stream features. The input is
//
//   METHOD \n TARGET \n CONTENT-TYPE \n AUTHORIZATION \n BODY...
//
// (missing lines are empty). Each request goes to two services: a ready
// one with an API token, and one with no snapshot and a sink that refuses
// everything. Besides not crashing, every answer has a status the API
// documents, every JSON answer parses and every error names its code, and
// every message a handler sends to Kafka is an event the ingest side
// accepts, keyed by its user.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/schemas/event.h"
#include "cfrec/server/service.h"
#include "cfrec/server/testing/fake_snapshot.h"
#include "cfrec/stream/stream_model.h"
#include "fuzz_check.h"

namespace {

using cfrec::Status;
using cfrec::server::HttpRequest;
using cfrec::server::HttpResponse;
using cfrec::server::ServiceContext;

constexpr std::string_view kToken = "fuzz-token";

// Checks every message it is sent, keeps none (the fuzzer sends millions).
class CheckingSink : public cfrec::ingest::EventSink {
 public:
  explicit CheckingSink(bool refuse) : refuse_(refuse) {}
  Status Send(std::string_view key, std::string_view payload) override {
    auto event = cfrec::ParseEvent(payload);
    FUZZ_CHECK(event.ok());
    FUZZ_CHECK(cfrec::EventUserId(*event) == key);
    if (refuse_) return Status::ResourceExhausted("queue full");
    return Status::Ok();
  }
  Status Flush(std::chrono::milliseconds) override { return Status::Ok(); }

 private:
  bool refuse_;
};

std::shared_ptr<const cfrec::stream::StreamScorer> StreamScorer() {
  cfrec::stream::StreamModel model;
  int64_t t = 1'700'000'000'000;
  for (uint32_t i = 0; i < 200; ++i, t += 30'000) {
    const std::vector<uint32_t> items = {i % 40, (i + 7) % 40, (i + 13) % 40};
    const std::vector<uint16_t> clicked = {static_cast<uint16_t>(i % 3)};
    model.OnImpression(i % 25, t, items, clicked, {}, {});
  }
  return model.MakeScorer();
}

struct Services {
  Services() : refusing_sink(true), ready_sink(false) {
    // Users U0..U24, items N0..N49; items 40..49 have no stream rows.
    auto snapshot = cfrec::server::testing::MakeRandomSnapshot(
        /*version=*/3, /*num_users=*/25, /*num_items=*/50, /*dim=*/4,
        /*clicks_per_user=*/3, /*seed=*/1);
    snapshot->set_stream(StreamScorer());
    snapshot->set_num_users(20);  // U20..U24: known ids without model rows
    holder.Publish(snapshot);

    ready.snapshots = &holder;
    ready.sink = &ready_sink;
    ready.metrics = &ready_metrics;
    ready.state_ready = [] { return true; };
    ready.now_unix_ms = [] { return int64_t{1'700'000'100'000}; };
    ready.api_token = cfrec::server::ApiToken::Create(kToken).value();
    ready.serving.max_n = 20;
    ready.serving.max_rank_items = 60;
    ready.serving.max_events_per_request = 20;
    cfrec::server::InitServiceMetrics(ready);
    cfrec::server::RegisterModelMetrics(ready_metrics, &holder,
                                        ready.now_unix_ms);

    empty.snapshots = &empty_holder;
    empty.sink = &refusing_sink;
    empty.metrics = nullptr;
    empty.state_ready = [] { return false; };
  }

  cfrec::learner::SnapshotHolder holder, empty_holder;
  CheckingSink refusing_sink, ready_sink;
  cfrec::server::MetricsRegistry ready_metrics;
  ServiceContext ready, empty;
};

std::string_view NextLine(std::string_view* in) {
  const size_t end = in->find('\n');
  std::string_view line = in->substr(0, end);
  in->remove_prefix(end == std::string_view::npos ? in->size() : end + 1);
  return line;
}

void CheckResponse(const HttpResponse& r) {
  FUZZ_CHECK(r.status >= 200 && r.status <= 599);
  FUZZ_CHECK(!r.route.empty());
  if (r.content_type != "application/json") return;
  const auto doc = nlohmann::json::parse(r.body, nullptr,
                                         /*allow_exceptions=*/false);
  FUZZ_CHECK(!doc.is_discarded());
  if (r.status >= 400) {
    FUZZ_CHECK(doc.is_object() && doc.contains("error"));
    FUZZ_CHECK(doc["error"].contains("code"));
    FUZZ_CHECK(doc["error"]["code"].is_string());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Services services;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  HttpRequest request;
  request.method = std::string(NextLine(&in));
  request.target = std::string(NextLine(&in));
  request.content_type = std::string(NextLine(&in));
  request.authorization = std::string(NextLine(&in));
  request.body = std::string(in);
  for (const ServiceContext* context : {&services.ready, &services.empty}) {
    const HttpResponse response = cfrec::server::Handle(*context, request);
    CheckResponse(response);
    // As the transport does after writing every answer.
    cfrec::server::RecordRequest(context->metrics, response.route,
                                 request.method, response.status, 0.001);
  }
  return 0;
}
