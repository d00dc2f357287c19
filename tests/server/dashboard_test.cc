// The dashboard's routes: GET /v1/metrics, /v1/explain, /v1/trending,
// /v1/dead-letters and the static files of the page.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cfrec/server/dashboard.h"
#include "cfrec/stream/stream_model.h"
#include "service_fixture.h"

namespace cfrec::server {
namespace {

using nlohmann::json;

class FakeStateView : public StateView {
 public:
  Result<std::vector<ClickRecord>> RecentClicks(std::string_view user_id,
                                                size_t n) const override {
    if (user_id != "alice") return Status::NotFound("no such user");
    std::vector<ClickRecord> clicks = {{"N0", "I2", 2000}, {"N3", "I1", 1000}};
    clicks.resize(std::min(n, clicks.size()));
    return clicks;
  }
  Result<std::vector<DeadLetterRecord>> RecentDeadLetters(
      size_t n, size_t head_bytes) const override {
    last_head_bytes = head_bytes;
    std::vector<DeadLetterRecord> letters = {
        {2, "not JSON", "cfrec.events", 3, 41, "{oops", 5},
        {1, "'items' is empty", "cfrec.events", 0, 7, "{\"type\":", 300}};
    letters.resize(std::min(n, letters.size()));
    return letters;
  }
  mutable size_t last_head_bytes = 0;
};

class DashboardTest : public ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    context_.state_view = &state_;
  }
  FakeStateView state_;
};

const json* Family(const json& doc, std::string_view name) {
  for (const json& f : doc.at("families")) {
    if (f.at("name") == name) return &f;
  }
  return nullptr;
}

TEST_F(DashboardTest, MetricsAsJsonCarryEveryFamilyWithLabels) {
  metrics_.GetCounter("cfrec_test_total", "a counter", {"kind"}, {"a"})
      ->Increment(3);
  metrics_.GetGauge("cfrec_test_level", "a gauge")->Set(2.5);
  metrics_.GetGauge("cfrec_test_nan", "not a number")->Set(std::nan(""));
  RecordRequest(&metrics_, "/v1/model", "GET", 200, 0.003);
  RecordRequest(&metrics_, "/v1/model", "GET", 200, 0.3);

  const HttpResponse r = Get("/v1/metrics");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.route, "/v1/metrics");
  const json doc = Json(r);
  EXPECT_EQ(doc["unix_ms"], kNowMs);
  const json* counter = Family(doc, "cfrec_test_total");
  ASSERT_NE(counter, nullptr);
  EXPECT_EQ((*counter)["type"], "counter");
  EXPECT_EQ((*counter)["samples"][0]["labels"], json({{"kind", "a"}}));
  EXPECT_EQ((*counter)["samples"][0]["value"], 3);
  EXPECT_EQ((*Family(doc, "cfrec_test_level"))["samples"][0]["value"], 2.5);
  EXPECT_TRUE(
      (*Family(doc, "cfrec_test_nan"))["samples"][0]["value"].is_null());

  const json* latency = Family(doc, "cfrec_http_request_duration_seconds");
  ASSERT_NE(latency, nullptr);
  EXPECT_EQ((*latency)["type"], "histogram");
  const std::vector<double> bounds = DefaultLatencyBuckets();
  EXPECT_EQ((*latency)["bounds"].size(), bounds.size());
  const json& sample = (*latency)["samples"][0];
  EXPECT_EQ(sample["labels"],
            json({{"route", "/v1/model"}, {"status", "200"}}));
  ASSERT_EQ(sample["cumulative"].size(), bounds.size() + 1);  // and +Inf
  EXPECT_EQ(sample["count"], 2);
  EXPECT_EQ(sample["cumulative"].back(), 2);
  EXPECT_EQ(sample["cumulative"][0], 0);
  EXPECT_NEAR(sample["sum"].get<double>(), 0.303, 1e-9);
}

TEST_F(DashboardTest, MetricsAsJsonShowTheSemLosses) {
  snapshot_->mutable_stats().sem_r_loss = 0.75;
  snapshot_->mutable_stats().sem_s_loss = 0.125;
  ASSERT_TRUE(RegisterModelMetrics(metrics_, &holder_, [] { return kNowMs; }));
  const json doc = Json(Get("/v1/metrics"));
  EXPECT_EQ((*Family(doc, "cfrec_sem_r_loss"))["samples"][0]["value"], 0.75);
  EXPECT_EQ((*Family(doc, "cfrec_sem_s_loss"))["samples"][0]["value"], 0.125);
}

TEST_F(DashboardTest, ExplainShowsRecentClicksAndTheRankersScores) {
  const HttpResponse r = Get("/v1/explain?user_id=alice&n=3&clicks=1");
  ASSERT_EQ(r.status, 200) << r.body;
  const json doc = Json(r);
  EXPECT_EQ(doc["model_version"], kVersion);
  EXPECT_EQ(doc["stream_features"], false);
  EXPECT_EQ(doc["clicked_items"], 1);
  ASSERT_EQ(doc["recent_clicks"].size(), 1u);
  EXPECT_EQ(doc["recent_clicks"][0]["item_id"], "N0");
  EXPECT_EQ(doc["recent_clicks"][0]["impression_id"], "I2");
  EXPECT_EQ(doc["recent_clicks"][0]["ts"], "1970-01-01T00:00:02.000Z");
  // Same order as /v1/recommendations: N2 (1.5), N1 (0.9), N3 (0).
  ASSERT_EQ(doc["items"].size(), 3u);
  EXPECT_EQ(doc["items"][0]["item_id"], "N2");
  EXPECT_EQ(doc["items"][1]["item_id"], "N1");
  EXPECT_EQ(doc["items"][2]["item_id"], "N3");
  for (const json& item : doc["items"]) {
    // Without stream features the ranker's score is the whole score.
    EXPECT_FLOAT_EQ(item["score"].get<float>(),
                    item["ranker_score"].get<float>());
    EXPECT_TRUE(item["stream"].is_null());
  }
}

TEST_F(DashboardTest, ExplainWithStreamFeaturesListsTermsThatAddUpToTheScore) {
  stream::StreamModel model;
  for (int i = 0; i < 200; ++i) {
    const std::vector<uint32_t> items = {1, 2, 3};
    const std::vector<uint16_t> clicked = {
        static_cast<uint16_t>(i % 3 ? 0 : 1)};
    // Half of the lists are alice's (user 0): her earlier showings of an
    // item are terms of its score too.
    model.OnImpression(i % 2 ? 100 + i : 0, i * 30'000, items, clicked, {}, {});
  }
  snapshot_->set_stream(model.MakeScorer());
  const json doc = Json(Get("/v1/explain?user_id=alice&n=4"));
  EXPECT_EQ(doc["stream_features"], true);
  ASSERT_FALSE(doc["items"].empty());
  for (const json& item : doc["items"]) {
    const json& stream = item["stream"];
    ASSERT_TRUE(stream.is_object()) << item;
    const double score = item["score"].get<double>();
    EXPECT_NEAR(
        stream["item_part"].get<double>() + stream["user_part"].get<double>(),
        score, 1e-4)
        << item;
    double sum = 0;
    double last = INFINITY;
    for (const json& term : stream["terms"]) {
      const double c = term["contribution"].get<double>();
      EXPECT_NEAR(c, term["value"].get<double>() * term["weight"].get<double>(),
                  1e-5);
      EXPECT_LE(std::abs(c), last) << "largest first";
      last = std::abs(c);
      sum += c;
    }
    EXPECT_NEAR(sum, score, 1e-4) << item;
  }
  // Trending items carry their click counts from the stream features.
  const json trending = Json(Get("/v1/trending"));
  ASSERT_FALSE(trending["items"].empty());
  for (const json& item : trending["items"]) {
    const double total = item["clicks_total"].get<double>();
    EXPECT_EQ(total, std::round(total)) << item;
    EXPECT_GE(item["clicks_6h"].get<double>(), 0.0) << item;
    EXPECT_GE(item["shows_6h"].get<double>(), item["clicks_6h"].get<double>())
        << item;
  }
}

TEST_F(DashboardTest, ExplainNamesAUserTheModelDoesNotKnow) {
  HttpResponse r = Get("/v1/explain?user_id=nobody");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
  EXPECT_NE(Json(r)["error"]["message"].get<std::string>().find(
                "'nobody' is not known"),
            std::string::npos);
  EXPECT_EQ(Get("/v1/explain?user_id=ghost").status, 404);  // no model row
  EXPECT_EQ(Get("/v1/explain").status, 400);
  EXPECT_EQ(Get("/v1/explain?user_id=").status, 400);
  EXPECT_EQ(Get("/v1/explain?user_id=alice&n=0").status, 400);
  EXPECT_EQ(Get("/v1/explain?user_id=alice&clicks=101").status, 400);
  EXPECT_EQ(Get("/v1/explain?user_id=alice&x=1").status, 400);
}

TEST_F(DashboardTest, TrendingListsThePoolsMostClickedItemsFirst) {
  const HttpResponse r = Get("/v1/trending?n=2");
  ASSERT_EQ(r.status, 200) << r.body;
  const json doc = Json(r);
  EXPECT_EQ(doc["candidate_pool"], 5);
  ASSERT_EQ(doc["items"].size(), 2u);
  EXPECT_EQ(doc["items"][0]["item_id"], "N3");
  EXPECT_EQ(doc["items"][1]["item_id"], "N2");
  EXPECT_EQ(Json(Get("/v1/trending"))["items"].size(), 3u);
  EXPECT_EQ(Get("/v1/trending?n=101").status, 400);
}

TEST_F(DashboardTest, DeadLettersNewestFirstWithTheFirstBytes) {
  const HttpResponse r = Get("/v1/dead-letters?n=5");
  ASSERT_EQ(r.status, 200) << r.body;
  const json letters = Json(r)["dead_letters"];
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0]["seq"], 2);
  EXPECT_EQ(letters[0]["reason"], "not JSON");
  EXPECT_EQ(letters[0]["payload_head"], "{oops");
  EXPECT_EQ(letters[1]["payload_bytes"], 300);
  EXPECT_EQ(state_.last_head_bytes, 200u);
  context_.state_view = nullptr;
  EXPECT_EQ(Get("/v1/dead-letters").status, 503);
}

TEST_F(DashboardTest, StaticFilesAreServedAtTheirPathsByGetOnly) {
  const StaticAsset assets[] = {
      {"/", "text/html; charset=utf-8", "<html></html>"},
      {"/ui/app.js", "text/javascript; charset=utf-8", "let x = 1;"}};
  context_.assets = assets;
  HttpResponse r = Get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<html></html>");
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(r.route, "/");
  r = Get("/ui/app.js?v=2");
  EXPECT_EQ(r.body, "let x = 1;");
  EXPECT_EQ(Post("/", "{}").status, 405);
  EXPECT_EQ(Get("/ui/nothing.js").status, 404);
  context_.assets = {};
  EXPECT_EQ(Get("/").status, 404);
}

}  // namespace
}  // namespace cfrec::server
