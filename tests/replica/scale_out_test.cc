// Scale-out end to end with the real binary: one `cfrec serve --role
// trainer` and two `--role replica` processes on a Kafka broker hosted by
// this test (the embedded broker, which outlives every child), fed by a
// replay of a generated MIND-like log.
//
// Equality: for every user, the trainer and both replicas answer
// GET /v1/recommendations (and POST /v1/rank for some) with the same body
// whenever they report the same model_version. Replicas started late,
// killed with SIGKILL and restarted, or left without their trainer (killed,
// then restarted) catch up and answer alike again; no replica serves a
// version the trainer did not publish whole (damaged and partial chunks
// written to the models topic by the test are rejected).
//
// Everything is observed as a client sees it, against deadlines.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cfrec/eval/synth.h"
#include "cfrec/ingest/kafka.h"
#include "cfrec/ingest/replay.h"
#include "common/serve_child.h"
#include "common/temp_dir.h"

namespace cfrec::replica {
namespace {

using cfrec::testing::ChildProcess;
using cfrec::testing::Clock;
using cfrec::testing::HttpCall;
using cfrec::testing::HttpReply;

constexpr auto kStep = std::chrono::seconds(90);
const std::string kEvents = "cfrec.events";
const std::string kModels = "cfrec.models";

// "model_version":N in a JSON body; 0 when absent.
uint64_t VersionIn(const std::string& body) {
  const size_t at = body.find("\"model_version\":");
  if (at == std::string::npos) return 0;
  return std::strtoull(body.c_str() + at + 16, nullptr, 10);
}

double Metric(uint16_t port, const std::string& name) {
  const HttpReply r = HttpCall(port, "GET", "/metrics");
  const std::string key = "\n" + name + " ";
  const size_t at = ("\n" + r.body).find(key);
  if (r.status != 200 || at == std::string::npos) return -1;
  return std::strtod(r.body.c_str() + at - 1 + key.size(), nullptr);
}

class ScaleOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = ingest::EmbeddedBroker::Start();
    ASSERT_TRUE(broker.ok());
    broker_ = std::move(broker).value();
    ASSERT_TRUE(broker_->CreateTopic(kEvents, 4).ok());
    ASSERT_TRUE(broker_->CreateTopic(kModels, 1).ok());
    eval::MindLikeOptions mo;
    mo.num_users = 120;
    mo.num_items = 300;
    mo.num_impressions = 900;
    mo.median_list_length = 10;
    mo.max_list_length = 40;
    mo.seed = 20261130;
    auto rows = eval::GenerateMindLike(mo);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    rows_ = std::move(rows).value();
    SortMindRowsByTime(&rows_);
    std::set<std::string> users;
    for (const auto& r : rows_) users.insert(r.user_id);
    users_.assign(users.begin(), users.end());
    users_.push_back("nobody-at-all");
    for (size_t i = 0; i < rows_.size() && rank_items_.size() < 30; ++i) {
      for (const auto& item : rows_[i].items) {
        if (rank_items_.size() < 30 &&
            std::find(rank_items_.begin(), rank_items_.end(), item) ==
                rank_items_.end()) {
          rank_items_.push_back(item);
        }
      }
    }
    rank_items_.push_back("never-seen-item");
    ingest::ProducerOptions po;
    po.brokers = broker_->bootstrap_servers();
    po.topic = kEvents;
    auto producer = ingest::KafkaProducer::Create(po);
    ASSERT_TRUE(producer.ok());
    producer_ = std::move(producer).value();
  }

  // The child is owned by the fixture (its log is printed on failure).
  ChildProcess* Start(std::vector<std::string> extra, uint16_t* port) {
    std::vector<std::string> args = {CFREC_BINARY, "serve",
                                     "--kafka",    broker_->bootstrap_servers(),
                                     "--http",     "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    children_.push_back(std::make_unique<ChildProcess>(args));
    ChildProcess* child = children_.back().get();
    EXPECT_TRUE(child->started());
    const auto line = child->WaitForLine("HTTP on ", Clock::now() + kStep);
    *port = line ? cfrec::testing::PortOfLine(*line) : 0;
    EXPECT_NE(*port, 0) << child->Log();
    return child;
  }
  // Without the learner's idle replay, which rewrites nearly every row of
  // this small model while the stream is quiet (and a delta of more than
  // half the rows travels as a full image), a few events change a few rows
  // and the version after them travels as a delta.
  ChildProcess* StartTrainer(uint16_t* port) {
    const std::string config = dir_.path() + "/trainer.json";
    std::ofstream(config) << "{\"idle_replay_passes\": 0}\n";
    return Start({"--role", "trainer", "--data-dir", dir_.path() + "/trainer",
                  "--models-delta-interval", "0.2", "--models-full-interval",
                  "3", "--config", config},
                 port);
  }
  ChildProcess* StartReplica(uint16_t* port) {
    return Start({"--role", "replica"}, port);
  }

  // Replays rows [from, to) into the events topic and waits until the
  // trainer has applied everything produced so far.
  void Feed(size_t from, size_t to, uint16_t trainer) {
    std::vector<MindRow> part(rows_.begin() + from, rows_.begin() + to);
    ingest::ReplayOptions ro;
    ro.click_delay_ms = 2000;
    ASSERT_TRUE(ingest::Replay(part, producer_.get(), ro).ok());
    ASSERT_TRUE(producer_->Flush(std::chrono::seconds(30)).ok());
    const double produced = static_cast<double>(producer_->delivered());
    const auto deadline = Clock::now() + kStep;
    double applied = 0;
    while ((applied = Metric(trainer, "cfrec_events_applied_total")) <
           produced - applied_before_restart_) {
      ASSERT_LT(Clock::now(), deadline)
          << "applied " << applied << " of " << produced;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  uint64_t ServedVersion(uint16_t port) {
    return VersionIn(HttpCall(port, "GET", "/v1/model").body);
  }

  // Until every replica serves at least the trainer's current version.
  void WaitForReplicas(uint16_t trainer,
                       const std::vector<uint16_t>& replicas) {
    const auto deadline = Clock::now() + kStep;
    uint64_t target = 0;
    while ((target = ServedVersion(trainer)) == 0) {
      ASSERT_LT(Clock::now(), deadline)
          << "the trainer serves nothing: "
          << HttpCall(trainer, "GET", "/v1/model").body;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (uint16_t r : replicas) {
      while (ServedVersion(r) < target) {
        ASSERT_LT(Clock::now(), deadline)
            << "replica on " << r << " serves " << ServedVersion(r)
            << ", trainer " << target;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }

  // Every user's answer from each replica equals the trainer's at the same
  // model version (retried until the versions agree).
  void ExpectSameAnswers(uint16_t trainer,
                         const std::vector<uint16_t>& replicas) {
    size_t compared = 0;
    for (size_t u = 0; u < users_.size(); ++u) {
      const std::string& user = users_[u];
      std::vector<std::pair<std::string, std::string>> requests = {
          {"GET", "/v1/recommendations?user_id=" + user + "&n=10"}};
      if (u % 5 == 0) {
        std::string body = "{\"user_id\":\"" + user + "\",\"items\":[";
        for (size_t i = 0; i < rank_items_.size(); ++i) {
          body += (i ? ",\"" : "\"") + rank_items_[i] + "\"";
        }
        requests.push_back({"POST", body + "]}"});
      }
      for (const auto& [method, what] : requests) {
        const std::string target = method == "GET" ? what : "/v1/rank";
        const std::string body = method == "GET" ? "" : what;
        const auto deadline = Clock::now() + kStep;
        while (true) {
          ASSERT_LT(Clock::now(), deadline) << "versions never agreed";
          const HttpReply t = HttpCall(trainer, method, target, body);
          if (t.status == 503) continue;  // not published yet
          ASSERT_EQ(t.status, 200) << target << " " << t.body;
          bool same_version = true;
          std::vector<HttpReply> got;
          for (uint16_t r : replicas) {
            got.push_back(HttpCall(r, method, target, body));
            ASSERT_EQ(got.back().status, 200) << got.back().body;
            same_version &= VersionIn(got.back().body) == VersionIn(t.body);
            seen_versions_.insert(VersionIn(got.back().body));
          }
          if (!same_version) continue;
          for (const HttpReply& r : got) {
            ASSERT_EQ(r.body, t.body) << method << " " << target << " " << body;
          }
          ++compared;
          break;
        }
      }
    }
    EXPECT_GE(compared, users_.size());
  }

  void ExpectNothingRejected(uint16_t replica) {
    EXPECT_EQ(Metric(replica, "cfrec_replica_apply_failures_total"), 0);
  }

  void TearDown() override {
    if (!HasFailure()) return;
    for (const auto& c : children_) {
      std::fprintf(stderr, "--- log of a child:\n%s", c->Log().c_str());
    }
  }

  cfrec::testing::TempDir dir_;
  std::unique_ptr<ingest::EmbeddedBroker> broker_;
  std::unique_ptr<ingest::KafkaProducer> producer_;
  std::vector<MindRow> rows_;
  std::vector<std::string> users_;
  std::vector<std::string> rank_items_;
  std::set<uint64_t> seen_versions_;
  double applied_before_restart_ = 0;
  // Last: the children die before the broker they use.
  std::vector<std::unique_ptr<ChildProcess>> children_;
};

TEST_F(ScaleOutTest, TwoReplicasAnswerEveryUserAsTheTrainer) {
  uint16_t tp = 0, r1 = 0, r2 = 0;
  StartTrainer(&tp);
  StartReplica(&r1);
  StartReplica(&r2);
  ASSERT_TRUE(tp && r1 && r2);
  const size_t half = rows_.size() / 2;
  Feed(0, half, tp);
  WaitForReplicas(tp, {r1, r2});
  ExpectSameAnswers(tp, {r1, r2});
  Feed(half, rows_.size(), tp);
  WaitForReplicas(tp, {r1, r2});
  ExpectSameAnswers(tp, {r1, r2});
  ExpectNothingRejected(r1);
  ExpectNothingRejected(r2);
  // POST /v1/events on a replica goes to the events topic and reaches the
  // trainer.
  const double before = Metric(tp, "cfrec_events_applied_total");
  const HttpReply posted = HttpCall(
      r2, "POST", "/v1/events",
      "{\"type\":\"impression\",\"impression_id\":\"replica-1\",\"user_id\":"
      "\"U1\",\"ts\":\"2026-11-30T00:00:00Z\",\"items\":[\"N1\","
      "\"N2\"]}");
  EXPECT_EQ(posted.status, 202) << posted.body;
  const HttpReply clicked = HttpCall(
      r1, "POST", "/v1/events",
      "{\"type\":\"click\",\"impression_id\":\"replica-1\",\"user_id\":"
      "\"U1\",\"item_id\":\"N2\",\"ts\":\"2026-11-30T00:00:01Z\"}");
  EXPECT_EQ(clicked.status, 202) << clicked.body;
  const auto deadline = Clock::now() + kStep;
  while (Metric(tp, "cfrec_events_applied_total") < before + 2) {
    ASSERT_LT(Clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The version that learned them changed a few rows: a delta.
  while (Metric(tp, "cfrec_models_deltas_published_total") == 0) {
    ASSERT_LT(Clock::now(), deadline)
        << "no delta published: " << HttpCall(tp, "GET", "/v1/model").body;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  WaitForReplicas(tp, {r1, r2});
  ExpectSameAnswers(tp, {r1, r2});
  EXPECT_GT(Metric(r1, "cfrec_replica_deltas_applied_total"), 0);
  EXPECT_GT(Metric(r2, "cfrec_replica_deltas_applied_total"), 0);
}

TEST_F(ScaleOutTest, LateAndKilledReplicasCatchUp) {
  uint16_t tp = 0, r1 = 0, r2 = 0;
  StartTrainer(&tp);
  auto a = StartReplica(&r1);
  ASSERT_TRUE(tp && r1);
  const size_t third = rows_.size() / 3;
  Feed(0, third, tp);
  WaitForReplicas(tp, {r1});
  // Started late: rebuilds from the topic alone.
  StartReplica(&r2);
  ASSERT_NE(r2, 0);
  WaitForReplicas(tp, {r1, r2});
  ExpectSameAnswers(tp, {r1, r2});
  // SIGKILL, events meanwhile, and a restart.
  a->Kill();
  Feed(third, 2 * third, tp);
  a = StartReplica(&r1);
  ASSERT_NE(r1, 0);
  WaitForReplicas(tp, {r1, r2});
  ExpectSameAnswers(tp, {r1, r2});
  ExpectNothingRejected(r1);
  ExpectNothingRejected(r2);
}

TEST_F(ScaleOutTest, ReplicasOutliveTheTrainerAndFollowItsRestart) {
  uint16_t tp = 0, r1 = 0;
  auto trainer = StartTrainer(&tp);
  StartReplica(&r1);
  ASSERT_TRUE(tp && r1);
  const size_t half = rows_.size() / 2;
  Feed(0, half, tp);
  WaitForReplicas(tp, {r1});
  ExpectSameAnswers(tp, {r1});
  applied_before_restart_ = Metric(tp, "cfrec_events_applied_total");

  // The trainer dies: the replica keeps serving its last version.
  trainer->Kill();
  const uint64_t last = ServedVersion(r1);
  ASSERT_GT(last, 0u);
  for (int i = 0; i < 20; ++i) {
    const HttpReply r =
        HttpCall(r1, "GET", "/v1/recommendations?user_id=" + users_[i]);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(VersionIn(r.body), last);
  }
  EXPECT_EQ(HttpCall(r1, "GET", "/readyz").status, 200);

  // Damaged and partial chunks on the models topic are never served: a
  // chunk of a version far ahead that never completes, and garbage.
  {
    ingest::ProducerOptions po;
    po.brokers = broker_->bootstrap_servers();
    po.topic = kModels;
    auto junk = ingest::KafkaProducer::Create(po);
    ASSERT_TRUE(junk.ok());
    std::string chunk(200, 'x');
    ASSERT_TRUE((*junk)->Send("full/0/0", chunk).ok());
    ASSERT_TRUE((*junk)->Send("delta/1/1/0", "").ok());
    ASSERT_TRUE((*junk)->Flush(std::chrono::seconds(10)).ok());
    const auto deadline = Clock::now() + kStep;
    while (Metric(r1, "cfrec_replica_chunks_rejected_total") < 2) {
      ASSERT_LT(Clock::now(), deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(ServedVersion(r1), last);
  }

  // Restarted on its data directory: higher versions, followed again.
  trainer = StartTrainer(&tp);
  ASSERT_NE(tp, 0);
  Feed(half, rows_.size(), tp);
  WaitForReplicas(tp, {r1});
  EXPECT_GT(ServedVersion(r1), last);
  ExpectSameAnswers(tp, {r1});
  ExpectNothingRejected(r1);
}

}  // namespace
}  // namespace cfrec::replica
