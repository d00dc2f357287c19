// Helpers of the replica tests: a trainer's snapshots from a small
// generated log, and the comparison of two snapshots by what serving
// answers.
#ifndef CFREC_TESTS_REPLICA_REPLICA_TESTING_H_
#define CFREC_TESTS_REPLICA_REPLICA_TESTING_H_

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cfrec/learner/snapshot.h"
#include "cfrec/learner/trainer.h"
#include "cfrec/replica/model_codec.h"
#include "cfrec/server/recommend.h"
#include "learner/synthetic.h"

namespace cfrec::replica::testing {

inline learner::TrainerOptions SmallTrainer(const std::string& ranker) {
  learner::TrainerOptions o;
  o.learner.ranker = ranker;
  o.learner.dim = 8;
  o.learner.sem_dim = 4;
  o.learner.batch_size = 128;
  o.learner.lr = 0.01;
  o.learner.max_positions = 32;
  o.learner.initial_rows = 8;
  o.snapshot_interval_ms = 10;
  o.checkpoint_interval_s = 0;
  o.max_events_per_round = 128;
  o.idle_replay_passes = 0;
  o.stream_features = true;
  return o;
}

// Ids of a trainer without a store are the decimal indices; `extra` more
// than the model's rows, like a store that knows ids the model does not.
inline IdSource DecimalIds(const learner::ModelSnapshot& s, size_t extra = 8) {
  IdSource ids;
  ids.num_users = s.num_users() + extra;
  ids.num_items = s.num_items() + extra;
  ids.user_id = [](uint32_t u) { return std::to_string(u); };
  ids.item_id = [](uint32_t i) { return std::to_string(i); };
  return ids;
}

inline bool SameFloat(std::optional<float> a, std::optional<float> b) {
  if (a.has_value() != b.has_value()) return false;
  return !a.has_value() || std::memcmp(&*a, &*b, sizeof(float)) == 0;
}

inline std::string Describe(const server::Recommendation& r,
                            const std::vector<std::string>* ids = nullptr) {
  std::string out = r.popularity_fallback ? "[popular] " : "";
  if (r.no_user_term) out += "[no user] ";
  for (size_t i = 0; i < r.items.size(); ++i) {
    out += ids != nullptr ? (*ids)[i] : std::to_string(r.items[i].item);
    out += r.items[i].score.has_value()
               ? "=" + std::to_string(*r.items[i].score)
               : "";
    out += " ";
  }
  return out;
}

inline bool SameAnswer(const server::Recommendation& a,
                       const server::Recommendation& b) {
  if (a.popularity_fallback != b.popularity_fallback ||
      a.no_user_term != b.no_user_term || a.items.size() != b.items.size()) {
    return false;
  }
  for (size_t i = 0; i < a.items.size(); ++i) {
    if (a.items[i].known != b.items[i].known ||
        (a.items[i].known && a.items[i].item != b.items[i].item) ||
        !SameFloat(a.items[i].score, b.items[i].score)) {
      return false;
    }
  }
  return true;
}

// Every user (and a few unknown ones) gets the same top-n and the same
// ranking of every item from both snapshots, bit for bit.
inline void ExpectSameAnswers(const learner::ModelSnapshot& trainer,
                              const learner::ModelSnapshot& replica) {
  ASSERT_EQ(trainer.num_users(), replica.num_users());
  ASSERT_EQ(trainer.num_items(), replica.num_items());
  ASSERT_EQ(trainer.dim(), replica.dim());
  EXPECT_EQ(trainer.created_unix_ms(), replica.created_unix_ms());
  EXPECT_EQ(trainer.stats().observed_samples, replica.stats().observed_samples);
  EXPECT_EQ(trainer.stats().ranker_loss, replica.stats().ranker_loss);
  ASSERT_EQ((trainer.stream() == nullptr), (replica.stream() == nullptr));
  const auto ta = trainer.CandidateItems(), ra = replica.CandidateItems();
  EXPECT_TRUE(std::equal(ta.begin(), ta.end(), ra.begin(), ra.end()));
  const auto tp = trainer.PopularItems(), rp = replica.PopularItems();
  EXPECT_TRUE(std::equal(tp.begin(), tp.end(), rp.begin(), rp.end()));
  server::RecommendOptions ro;
  ro.retrieval_candidates = 30;
  std::vector<std::string> all_items;
  for (size_t i = 0; i < trainer.num_items() + 2; ++i) {
    all_items.push_back(std::to_string(i));
  }
  all_items.push_back("never-seen");
  int compared = 0;
  int personal = 0;
  for (size_t u = 0; u < trainer.num_users() + 3; ++u) {
    const std::string user = std::to_string(u);
    const auto tc = trainer.ClickedItems(static_cast<uint32_t>(u));
    const auto rc = replica.ClickedItems(static_cast<uint32_t>(u));
    ASSERT_TRUE(std::equal(tc.begin(), tc.end(), rc.begin(), rc.end()))
        << "clicked items of user " << u;
    const auto tr = server::Recommend(trainer, user, 20, ro);
    const auto rr = server::Recommend(replica, user, 20, ro);
    ASSERT_TRUE(SameAnswer(tr, rr))
        << "user " << u << "\ntrainer " << Describe(tr) << "\nreplica "
        << Describe(rr);
    if (u % 7 == 0) {
      std::vector<std::string> tids, rids;
      const auto tk = server::RankItems(trainer, user, all_items, &tids);
      const auto rk = server::RankItems(replica, user, all_items, &rids);
      ASSERT_TRUE(SameAnswer(tk, rk) && tids == rids)
          << "rank for user " << u << "\ntrainer " << Describe(tk, &tids)
          << "\nreplica " << Describe(rk, &rids);
    }
    ++compared;
    personal += !tr.popularity_fallback && !tr.no_user_term;
  }
  EXPECT_GT(compared, 0);
  EXPECT_GT(personal, compared / 2) << "most users must be known";
}

}  // namespace cfrec::replica::testing

#endif  // CFREC_TESTS_REPLICA_REPLICA_TESTING_H_
