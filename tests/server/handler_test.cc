// Handlers called directly, responses compared as JSON structures.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cfrec/schemas/event.h"
#include "server/service_fixture.h"

namespace cfrec::server {
namespace {

using nlohmann::json;

json Item(const char* id, float score) {
  return {{"item_id", id}, {"score", score}};
}

TEST_F(ServiceTest, RecommendsByRankerAfterRetrievalExcludingClicks) {
  const HttpResponse r = Get("/v1/recommendations?user_id=alice&n=3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.route, "/v1/recommendations");
  // N5 is not a candidate, N0 was clicked; N2 wins on the ranker's bias.
  const json expected = {
      {"user_id", "alice"},
      {"model_version", kVersion},
      {"fallback", nullptr},
      {"items", {Item("N2", 0.5f + 1.0f), Item("N1", 0.9f), Item("N3", 0.0f)}}};
  EXPECT_EQ(Json(r), expected);
}

TEST_F(ServiceTest, RetrievalCandidatesBoundWhatTheRankerSees) {
  // Only the single best unclicked dot product (N1, 0.9) reaches the
  // ranker, so N2's bias cannot lift it.
  context_.serving.retrieval_candidates = 1;
  const json doc = Json(Get("/v1/recommendations?user_id=alice&n=3"));
  EXPECT_EQ(doc.at("items"), json::array({Item("N1", 0.9f)}));
  context_.serving.retrieval_candidates = 2;
  EXPECT_EQ(Json(Get("/v1/recommendations?user_id=alice&n=3")).at("items"),
            json::array({Item("N2", 1.5f), Item("N1", 0.9f)}));
}

TEST_F(ServiceTest, DefaultNReturnsAllUnclickedCandidates) {
  const json doc = Json(Get("/v1/recommendations?user_id=bob"));
  // bob = (0, 1): N3 1, N2 0.5 + 1; N0, N1, N4 score 0; ties by index.
  EXPECT_EQ(doc.at("items"),
            json::array({Item("N2", 1.5f), Item("N3", 1.0f), Item("N0", 0.0f),
                         Item("N1", 0.0f), Item("N4", 0.0f)}));
}

TEST_F(ServiceTest, UnknownUserGetsPopularityFallback) {
  for (const char* user : {"nobody", "ghost"}) {
    const HttpResponse r =
        Get(std::string("/v1/recommendations?user_id=") + user + "&n=2");
    ASSERT_EQ(r.status, 200);
    const json expected = {{"user_id", user},
                           {"model_version", kVersion},
                           {"fallback", "popularity"},
                           {"items",
                            {{{"item_id", "N3"}, {"score", nullptr}},
                             {{"item_id", "N2"}, {"score", nullptr}}}}};
    EXPECT_EQ(Json(r), expected) << user;
  }
}

TEST_F(ServiceTest, PercentEncodedUserId) {
  snapshot_->AddUser("a b&c", {1, 0});  // built before the test reads it
  snapshot_->set_num_users(4);
  const json doc = Json(Get("/v1/recommendations?user_id=a+b%26c&n=1"));
  EXPECT_EQ(doc.at("user_id"), "a b&c");
  EXPECT_EQ(doc.at("fallback"), nullptr);
}

TEST_F(ServiceTest, NoSnapshotIsNotReady) {
  learner::SnapshotHolder empty;
  context_.snapshots = &empty;
  for (const char* target :
       {"/v1/recommendations?user_id=alice", "/v1/model", "/readyz"}) {
    const HttpResponse r = Get(target);
    EXPECT_EQ(r.status, 503) << target;
    EXPECT_EQ(ErrorCode(r), "not_ready") << target;
  }
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Post("/v1/rank", R"({"user_id":"alice","items":["N1"]})").status,
            503);
}

TEST_F(ServiceTest, ReadyzNeedsStateAndSnapshot) {
  bool state_open = false;
  context_.state_ready = [&] { return state_open; };
  HttpResponse r = Get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(Json(r)["error"]["message"].get<std::string>().find("state"),
            std::string::npos);
  state_open = true;
  r = Get("/readyz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Json(r), (json{{"status", "ready"}, {"model_version", kVersion}}));
  EXPECT_EQ(Json(Get("/healthz")), (json{{"status", "ok"}}));
}

TEST_F(ServiceTest, ModelDescribesSnapshotAndTraining) {
  const HttpResponse r = Get("/v1/model");
  ASSERT_EQ(r.status, 200) << r.body;
  const json expected = {
      {"model_version", kVersion},
      {"created_at", FormatRfc3339Ms(kCreatedMs)},
      {"age_seconds", 2.5},
      {"ranker", "bpr"},
      {"loss", "pairwise"},
      {"intervention", "learned"},
      {"trainer", "default"},
      {"users", 2},
      {"items", 6},
      {"dim", 2},
      {"candidate_pool", 5},
      {"training",
       {{"events_consumed", 40},
        {"applied_seq", 0},
        {"observed_samples", 1000},
        {"counterfactual_samples", 250},
        {"steps", 12},
        {"samples_per_sec", 0.0}}},
      {"losses",
       {{"ranker", 0.5}, {"sem_r", 0.0}, {"sem_s", 0.0}, {"elbo", 0.0}}},
      {"policy", {{"reward", 0.25}, {"baseline", 0.0}}},
      {"stream_features", false},
      {"online_quality",
       {{"lists_judged", 300},
        {"model", {{"auc", 0.75}, {"ndcg@10", 0.5}}},
        {"ctr_decayed_6h", {{"auc", 0.625}, {"ndcg@10", 0.375}}}}}};
  EXPECT_EQ(Json(r), expected);
}

TEST_F(ServiceTest, MetricsExposeModelGauges) {
  ASSERT_TRUE(RegisterModelMetrics(metrics_, &holder_, [] { return kNowMs; }));
  EXPECT_FALSE(RegisterModelMetrics(metrics_, &holder_));  // already there
  RecordRequest(&metrics_, "/v1/model", "GET", 200, 0.002);
  const HttpResponse r = Get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  for (const char* line :
       {"cfrec_model_version 7\n", "cfrec_model_age_seconds 2.5\n",
        "cfrec_policy_reward 0.25\n",
        "cfrec_online_auc{scorer=\"model\"} 0.75\n",
        "cfrec_online_auc{scorer=\"ctr_decayed_6h\"} 0.625\n",
        "cfrec_online_ndcg10{scorer=\"model\"} 0.5\n",
        "cfrec_online_lists_judged_total 300\n",
        "cfrec_training_samples_total{source=\"observed\"} 1000\n",
        "cfrec_training_samples_total{source=\"counterfactual\"} 250\n",
        "cfrec_http_requests_total{route=\"/v1/model\",method=\"GET\","
        "status=\"200\"} 1\n",
        "cfrec_http_request_duration_seconds_bucket{route=\"/v1/model\","
        "status=\"200\",le=\"0.0025\"} 1\n",
        "# TYPE cfrec_http_request_duration_seconds histogram\n"}) {
    EXPECT_NE(r.body.find(line), std::string::npos) << line << r.body;
  }
}

TEST_F(ServiceTest, TrainingRateComesFromSuccessiveSnapshots) {
  ASSERT_TRUE(RegisterModelMetrics(metrics_, &holder_));
  EXPECT_NE(metrics_.Expose().find(
                "cfrec_training_samples_per_second{source=\"observed\"} 0\n"),
            std::string::npos);
  auto next = std::make_shared<testing::FakeSnapshot>(*snapshot_);
  next->set_version(kVersion + 1);
  next->set_created_unix_ms(kCreatedMs + 500);
  next->mutable_stats().observed_samples = 3000;       // +2000 in 0.5 s
  next->mutable_stats().counterfactual_samples = 350;  // +100 in 0.5 s
  holder_.Publish(next);
  const std::string text = metrics_.Expose();
  EXPECT_NE(text.find("cfrec_training_samples_per_second{source=\"observed\"} "
                      "4000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("cfrec_training_samples_per_second{source="
                      "\"counterfactual\"} 200\n"),
            std::string::npos)
      << text;
}

TEST_F(ServiceTest, UnknownRouteAndWrongMethod) {
  HttpResponse r = Get("/v1/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
  EXPECT_EQ(r.route, "unmatched");
  r = Post("/v1/recommendations?user_id=alice", "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(ErrorCode(r), "method_not_allowed");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0],
            std::make_pair(std::string("Allow"), std::string("GET")));
  r = Get("/v1/events");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers[0].second, "POST");
}

TEST_F(ServiceTest, RankOrdersKnownItemsByScoreUnknownLast) {
  const HttpResponse r =
      Post("/v1/rank", R"({"user_id":"alice","items":["N4","X9","N2","N0"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json expected = {
      {"user_id", "alice"},
      {"model_version", kVersion},
      {"fallback", nullptr},
      {"items",
       {{{"item_id", "N2"}, {"known", true}, {"score", 1.5f}},
        {{"item_id", "N0"}, {"known", true}, {"score", 1.0f}},
        {{"item_id", "N4"}, {"known", true}, {"score", -1.0f}},
        {{"item_id", "X9"}, {"known", false}, {"score", nullptr}}}}};
  EXPECT_EQ(Json(r), expected);
}

TEST_F(ServiceTest, RankForUnknownUserUsesPopularity) {
  const HttpResponse r =
      Post("/v1/rank", R"({"user_id":"zed","items":["N1","N0","X","N3"]})",
           "application/json; charset=utf-8");
  ASSERT_EQ(r.status, 200) << r.body;
  const json doc = Json(r);
  json names = json::array();
  for (const auto& item : doc.at("items")) names.push_back(item["item_id"]);
  // Popular N3 then N0; N1 is not popular (keeps its place); X unknown.
  EXPECT_EQ(names, json::array({"N3", "N0", "N1", "X"}));
  EXPECT_EQ(Json(r).at("fallback"), "popularity");
}

TEST_F(ServiceTest, RankValidatesBody) {
  EXPECT_EQ(Post("/v1/rank", R"({"user_id":"a","items":["N1","N1"]})").status,
            400);
  EXPECT_EQ(Post("/v1/rank", R"({"user_id":"a","items":[]})").status, 400);
  EXPECT_EQ(Post("/v1/rank", R"({"user_id":"a","items":"N1"})").status, 400);
  EXPECT_EQ(Post("/v1/rank", R"({"user_id":"a","items":["N1"],"x":1})").status,
            400);
  EXPECT_EQ(Post("/v1/rank", R"({"items":["N1"]})").status, 400);
  context_.serving.max_rank_items = 2;
  EXPECT_EQ(
      Post("/v1/rank", R"({"user_id":"a","items":["N1","N2","N3"]})").status,
      400);
  const HttpResponse r =
      Post("/v1/rank", R"({"user_id":"a","items":["N1"]})", "text/plain");
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(ErrorCode(r), "unsupported_media_type");
  EXPECT_EQ(Post("/v1/rank", R"({"user_id":"a","items":["N1"]})", "").status,
            415);
}

constexpr char kImpression[] =
    R"({"type":"impression","impression_id":"i1","user_id":"alice",)"
    R"("ts":1700000000000,"items":["N1","N2"],"clicks":["N2"]})";
constexpr char kClick[] =
    R"({"type":"click","impression_id":"i1","user_id":"bob",)"
    R"("item_id":"N3","ts":"2023-11-14T22:13:20Z"})";

TEST_F(ServiceTest, EventsAreValidatedAndProduced) {
  const HttpResponse r =
      Post("/v1/events", std::string("[") + kImpression + "," + kClick + "]");
  ASSERT_EQ(r.status, 202) << r.body;
  const json expected = {
      {"accepted", 2},
      {"ack", "queued"},
      {"topic", "cfrec.events"},
      {"events",
       {{{"type", "impression"}, {"impression_id", "i1"}, {"user_id", "alice"}},
        {{"type", "click"},
         {"impression_id", "i1"},
         {"user_id", "bob"},
         {"item_id", "N3"}}}}};
  EXPECT_EQ(Json(r), expected);
  const auto messages = sink_.messages();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].first, "alice");
  EXPECT_EQ(messages[1].first, "bob");
  // What is produced is the canonical form of what was posted.
  EXPECT_EQ(messages[0].second, SerializeEvent(*ParseEvent(kImpression)));
  EXPECT_EQ(messages[1].second, SerializeEvent(*ParseEvent(kClick)));
  EXPECT_NE(metrics_.Expose().find("cfrec_http_events_accepted_total 2\n"),
            std::string::npos);
}

TEST_F(ServiceTest, SingleEventObjectIsAccepted) {
  const HttpResponse r = Post("/v1/events", kClick);
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Json(r).at("accepted"), 1);
  EXPECT_EQ(sink_.messages().size(), 1u);
}

TEST_F(ServiceTest, OneBadEventRejectsTheWholeRequest) {
  const std::string bad =
      R"({"type":"click","impression_id":"i1","user_id":"bob","ts":1})";
  const HttpResponse r =
      Post("/v1/events", std::string("[") + kImpression + "," + bad + "]");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(Json(r)["error"]["message"].get<std::string>().find("events[1]"),
            std::string::npos)
      << r.body;
  EXPECT_TRUE(sink_.messages().empty());
  EXPECT_EQ(Post("/v1/events", "[]").status, 400);
  EXPECT_EQ(Post("/v1/events", "[1]").status, 400);
  context_.serving.max_events_per_request = 1;
  EXPECT_EQ(
      Post("/v1/events", std::string("[") + kClick + "," + kClick + "]").status,
      400);
}

TEST_F(ServiceTest, EventsWithoutOrRefusedBySinkAre503) {
  sink_.RefuseAfter(1);
  HttpResponse r =
      Post("/v1/events", std::string("[") + kImpression + "," + kClick + "]");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(
      Json(r)["error"]["message"].get<std::string>().find("queued 1 of 2"),
      std::string::npos);
  context_.sink = nullptr;
  r = Post("/v1/events", kClick);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorCode(r), "unavailable");
}

TEST_F(ServiceTest, DurableEventsWaitForTheSinkToConfirmThem) {
  HttpResponse r = Post("/v1/events?ack=durable&timeout_ms=50",
                        std::string("[") + kImpression + "," + kClick + "]");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Json(r).at("ack"), "durable");
  EXPECT_EQ(Json(r).at("accepted"), 2);
  EXPECT_EQ(sink_.messages().size(), 2u);
  // Not confirmed in time: 503 (the events were handed to the producer).
  sink_.NeverDeliver();
  r = Post("/v1/events?ack=durable", kClick);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorCode(r), "unavailable");
  EXPECT_NE(
      Json(r)["error"]["message"].get<std::string>().find("did not confirm"),
      std::string::npos)
      << r.body;
  // Without ack=durable the answer does not wait for delivery.
  EXPECT_EQ(Post("/v1/events?ack=queued", kClick).status, 202);
  EXPECT_EQ(Post("/v1/events", kClick).status, 202);
  // Bad parameters.
  EXPECT_EQ(Post("/v1/events?ack=maybe", kClick).status, 400);
  EXPECT_EQ(Post("/v1/events?timeout_ms=100", kClick).status, 400);
  EXPECT_EQ(Post("/v1/events?ack=durable&timeout_ms=0", kClick).status, 400);
  EXPECT_EQ(Post("/v1/events?ack=durable&timeout_ms=30001", kClick).status,
            400);
  EXPECT_EQ(Post("/v1/events?user_id=a", kClick).status, 400);
  EXPECT_EQ(Post("/v1/events?ack=durable&ack=durable", kClick).status, 400);
}

TEST(OpenApi, DocumentsEveryRouteWithItsMethod) {
  std::ifstream file(CFREC_OPENAPI_PATH);
  ASSERT_TRUE(file.is_open()) << CFREC_OPENAPI_PATH;
  std::stringstream text;
  text << file.rdbuf();
  const std::string yaml = text.str();
  ASSERT_EQ(Routes().size(), 11u);
  for (const RouteInfo& route : Routes()) {
    const std::string key = "\n  " + std::string(route.path) + ":\n";
    const size_t at = yaml.find(key);
    ASSERT_NE(at, std::string::npos) << route.path;
    std::string method(route.method);
    for (char& c : method) c = static_cast<char>(std::tolower(c));
    // The operation is the first key under the path.
    EXPECT_EQ(
        yaml.compare(at + key.size(), method.size() + 5, "    " + method + ":"),
        0)
        << route.path;
  }
}

TEST(StatusMapping, EveryCodeHasAStatus) {
  EXPECT_EQ(HttpStatusFor(Status::InvalidArgument("x")), 400);
  EXPECT_EQ(HttpStatusFor(Status::NotFound("x")), 404);
  EXPECT_EQ(HttpStatusFor(Status::FailedPrecondition("x")), 503);
  EXPECT_EQ(HttpStatusFor(Status::Unavailable("x")), 503);
  EXPECT_EQ(HttpStatusFor(Status::ResourceExhausted("x")), 503);
  EXPECT_EQ(HttpStatusFor(Status::Unsupported("x")), 501);
  EXPECT_EQ(HttpStatusFor(Status::Internal("x")), 500);
  const HttpResponse r = ErrorResponseFor(Status::InvalidArgument("bad \xff"));
  EXPECT_EQ(r.status, 400);
  // Invalid UTF-8 in a message is replaced, never thrown.
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["code"], "invalid_argument");
}

}  // namespace
}  // namespace cfrec::server
