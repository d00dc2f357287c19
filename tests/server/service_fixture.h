// A small hand-built model whose answers can be worked out on paper, shared
// by the handler tests.
#ifndef CFREC_TESTS_SERVER_SERVICE_FIXTURE_H_
#define CFREC_TESTS_SERVER_SERVICE_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cfrec/server/service.h"
#include "cfrec/server/testing/fake_snapshot.h"

namespace cfrec::server {

// dim 2. Retrieval (dot) and ranking (dot + bias) for alice = (1, 0):
//   item  vector     bias  dot   score  note
//   N0    (1, 0)     0     1     1      clicked by alice
//   N1    (0.9, 0)   0     0.9   0.9
//   N2    (0.5, 0.5) 1     0.5   1.5
//   N3    (0, 1)     0     0     0
//   N4    (-1, 0)    0     -1    -1
//   N5    (2, 0)     0     2     2      not a candidate (stale)
// Popularity: N3, N2, N0. Users: alice, bob = (0, 1), ghost (known id, no
// model row: num_users = 2).
class ServiceTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kVersion = 7;
  static constexpr int64_t kCreatedMs = 1'700'000'000'000;
  static constexpr int64_t kNowMs = kCreatedMs + 2'500;

  void SetUp() override {
    auto snap = std::make_shared<testing::FakeSnapshot>(kVersion, 2);
    snap->AddItem("N0", {1, 0});
    snap->AddItem("N1", {0.9f, 0});
    snap->AddItem("N2", {0.5f, 0.5f}, 1.0f);
    snap->AddItem("N3", {0, 1});
    snap->AddItem("N4", {-1, 0});
    snap->AddItem("N5", {2, 0});
    const uint32_t alice = snap->AddUser("alice", {1, 0});
    snap->AddUser("bob", {0, 1});
    snap->AddUser("ghost", {1, 1});
    snap->set_num_users(2);
    snap->set_clicked(alice, {0});
    snap->set_candidates({0, 1, 2, 3, 4});
    snap->set_popular({3, 2, 0});
    snap->set_created_unix_ms(kCreatedMs);
    auto& stats = snap->mutable_stats();
    stats.ranker = "bpr";
    stats.loss = "pairwise";
    stats.intervention = "learned";
    stats.trainer = "default";
    stats.observed_samples = 1000;
    stats.counterfactual_samples = 250;
    stats.steps = 12;
    stats.events_consumed = 40;
    stats.ranker_loss = 0.5;
    stats.policy_reward = 0.25;
    stats.online_lists = 300;
    stats.online_auc = 0.75;
    stats.online_ndcg10 = 0.5;
    stats.online_baseline_auc = 0.625;
    stats.online_baseline_ndcg10 = 0.375;
    snapshot_ = snap;
    holder_.Publish(snapshot_);

    context_.snapshots = &holder_;
    context_.sink = &sink_;
    context_.metrics = &metrics_;
    context_.now_unix_ms = [] { return kNowMs; };
  }

  HttpResponse Get(const std::string& target) {
    return Handle(context_, {"GET", target, "", "", ""});
  }
  HttpResponse Post(const std::string& target, const std::string& body,
                    const std::string& content_type = "application/json") {
    return Handle(context_, {"POST", target, content_type, body, ""});
  }
  static nlohmann::json Json(const HttpResponse& r) {
    return nlohmann::json::parse(r.body);
  }
  static std::string ErrorCode(const HttpResponse& r) {
    return Json(r).at("error").at("code").get<std::string>();
  }

  std::shared_ptr<testing::FakeSnapshot> snapshot_;
  learner::SnapshotHolder holder_;
  testing::RecordingSink sink_;
  MetricsRegistry metrics_;
  ServiceContext context_;
};

}  // namespace cfrec::server

#endif  // CFREC_TESTS_SERVER_SERVICE_FIXTURE_H_
