#include "cfrec/learner/counterfactual.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>

#include "cf_policy.h"
#include "learner/synthetic.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using testing::MakeSyntheticLog;
using testing::SyntheticLog;

LearnerOptions SmallOptions() {
  LearnerOptions o;
  o.ranker = "bpr";
  o.dim = 16;
  o.batch_size = 256;
  o.lr = 0.01;
  o.weight_decay = 1e-4;
  o.sem_dim = 8;
  o.sem_lr = 0.01;
  o.max_positions = 32;
  o.initial_rows = 64;
  o.seed = 1234;
  return o;
}

CounterfactualOptions EngineOptions(const std::string& intervention) {
  CounterfactualOptions o;
  o.intervention = intervention;
  o.list_size = 5;
  o.noise_k = 1;
  o.policy_hidden = 16;
  o.pretrain_rounds = 5;
  o.pretrain_users = 64;
  o.seed = 99;
  return o;
}

std::unique_ptr<Learner> MustCreate(const LearnerOptions& o) {
  auto learner = Learner::Create(o);
  EXPECT_TRUE(learner.ok()) << learner.status().ToString();
  return std::move(learner).value();
}

std::unique_ptr<CounterfactualEngine> MustEngine(
    const CounterfactualOptions& o) {
  auto engine = CounterfactualEngine::Create(o);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(engine).value();
}

std::vector<uint32_t> AllUsers(const Learner& learner) {
  std::vector<uint32_t> users(learner.num_users());
  std::iota(users.begin(), users.end(), 0);
  return users;
}

// A learner with trained SEMs on the default synthetic log (shared: the
// tests only read it, except where they make their own).
class CounterfactualTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    log_ = new SyntheticLog(MakeSyntheticLog());
    learner_ = MustCreate(SmallOptions()).release();
    ASSERT_TRUE(learner_->TrainEpochs(log_->train, 3).ok());
  }
  static void TearDownTestSuite() {
    delete learner_;
    delete log_;
  }
  static SyntheticLog* log_;
  static Learner* learner_;
};
SyntheticLog* CounterfactualTest::log_ = nullptr;
Learner* CounterfactualTest::learner_ = nullptr;

TEST_F(CounterfactualTest, OptionsAreValidated) {
  CounterfactualOptions o = EngineOptions("learned");
  o.noise_k = 3;  // 2k > K
  EXPECT_FALSE(CounterfactualEngine::Create(o).ok());
  o = EngineOptions("sometimes");
  EXPECT_FALSE(CounterfactualEngine::Create(o).ok());
  o = EngineOptions("random");
  o.candidate_pool = 2;  // smaller than K
  EXPECT_FALSE(CounterfactualEngine::Create(o).ok());
  for (double share : {-0.1, 1.0}) {
    o = EngineOptions("learned");
    o.explore_share = share;
    EXPECT_FALSE(CounterfactualEngine::Create(o).ok()) << share;
  }
}

// Lists of one user, drawn `lists` times, as K-item rows of the trace.
std::vector<std::vector<uint32_t>> ListsOfOneUser(
    Learner& learner, const CounterfactualOptions& o, uint32_t user,
    int lists) {
  auto engine = MustEngine(o);
  std::vector<uint32_t> users(lists, user);
  CounterfactualEngine::Trace trace;
  EXPECT_TRUE(engine->Generate(learner, users, &trace).ok());
  std::vector<std::vector<uint32_t>> rows;
  for (size_t b = 0; b + o.list_size <= trace.lists.size(); b += o.list_size) {
    rows.emplace_back(trace.lists.begin() + b,
                      trace.lists.begin() + b + o.list_size);
  }
  return rows;
}

// cf_explore_share 0.4 of K = 5: two slots of every list are drawn
// uniformly, three stay the policy's. The policy's usual items (in at least
// 5% of its own lists for one user) then fill a list as three of the
// policy's five slots plus two uniform draws would, and the uniform slots
// reach nearly the whole catalog. With a candidate pool too.
TEST_F(CounterfactualTest, ExploreShareDrawsItsSlotsUniformly) {
  for (int pool : {0, 40}) {
    CounterfactualOptions o = EngineOptions("learned");
    o.candidate_pool = pool;
    const int kLists = 300;
    auto greedy = ListsOfOneUser(*learner_, o, 3, kLists);
    o.explore_share = 0.4;
    auto explored = ListsOfOneUser(*learner_, o, 3, kLists);
    ASSERT_EQ(greedy.size(), size_t(kLists));
    ASSERT_EQ(explored.size(), size_t(kLists));
    std::map<uint32_t, int> greedy_count;
    for (const auto& list : greedy) {
      for (uint32_t i : list) ++greedy_count[i];
    }
    // The policy's usual items: in at least 5% of its own lists.
    std::set<uint32_t> usual;
    for (auto [item, n] : greedy_count) {
      if (n * 20 >= kLists) usual.insert(item);
    }
    std::set<uint32_t> reached;
    double usual_per_list = 0, greedy_usual_per_list = 0;
    for (size_t l = 0; l < explored.size(); ++l) {
      std::set<uint32_t> distinct(explored[l].begin(), explored[l].end());
      EXPECT_EQ(distinct.size(), size_t(o.list_size)) << "pool " << pool;
      reached.insert(distinct.begin(), distinct.end());
      for (uint32_t i : explored[l]) usual_per_list += usual.count(i);
      for (uint32_t i : greedy[l]) greedy_usual_per_list += usual.count(i);
    }
    usual_per_list /= kLists;
    greedy_usual_per_list /= kLists;
    std::printf(
        "{\"pool\":%d,\"greedy_items\":%zu,\"explored_items\":%zu,"
        "\"usual\":%zu,\"usual_per_list\":%.3f,"
        "\"greedy_usual_per_list\":%.3f}\n",
        pool, greedy_count.size(), reached.size(), usual.size(), usual_per_list,
        greedy_usual_per_list);
    const double catalog = double(learner_->num_items());
    // Usual items per list with e of the 5 slots drawn uniformly.
    auto usual_with = [&](int e) {
      return greedy_usual_per_list * (5 - e) / 5 + e * usual.size() / catalog;
    };
    const double kTolerance = 0.15;
    EXPECT_NEAR(usual_per_list, usual_with(2), kTolerance) << "pool " << pool;
    // One slot more or fewer would miss it by far.
    EXPECT_GT(std::abs(usual_with(1) - usual_with(2)), 3 * kTolerance)
        << "pool " << pool;
    EXPECT_GT(std::abs(usual_with(3) - usual_with(2)), 3 * kTolerance)
        << "pool " << pool;
    EXPECT_GE(double(reached.size()), 0.95 * catalog) << "pool " << pool;
    EXPECT_LT(double(greedy_count.size()), 0.7 * catalog) << "pool " << pool;
  }
}

// Engines seeded alike draw the same policy tau and candidate pool for
// their first list; only the exploration differs. cf_explore_share 0.4 of
// K = 5 then keeps the greedy list's first three items, in their order, and
// adds two others, each at a position uniform over the list (every position
// holds one in 2 of 5 lists). From a candidate pool of exactly K items the
// two are the pool's others, the greedy list's last two; from a pool of 40
// or the catalog, they are those only by chance (about 1 in 20 each).
TEST_F(CounterfactualTest, ExploreShareKeepsThePolicysTopInOrder) {
  const int kSeeds = 200;
  for (int pool : {0, 5, 40}) {
    std::vector<int> explored_at(5, 0);
    int greedy_tail = 0;  // the greedy list's last two, in explored lists
    for (int seed = 1; seed <= kSeeds; ++seed) {
      CounterfactualOptions o = EngineOptions("learned");
      o.candidate_pool = pool;
      o.seed = seed;
      const uint32_t user = uint32_t(seed) % learner_->num_users();
      auto greedy = ListsOfOneUser(*learner_, o, user, 1);
      o.explore_share = 0.4;
      auto explored = ListsOfOneUser(*learner_, o, user, 1);
      ASSERT_EQ(greedy.size(), 1u);
      ASSERT_EQ(explored.size(), 1u);
      const std::vector<uint32_t>& g = greedy[0];
      const std::vector<uint32_t>& x = explored[0];
      ASSERT_EQ(std::set<uint32_t>(x.begin(), x.end()).size(), 5u);
      std::vector<uint32_t> kept;  // x's items among g's first three
      for (size_t at = 0; at < x.size(); ++at) {
        if (std::find(g.begin(), g.begin() + 3, x[at]) != g.begin() + 3) {
          kept.push_back(x[at]);
        } else {
          ++explored_at[at];
        }
      }
      EXPECT_EQ(kept, std::vector<uint32_t>(g.begin(), g.begin() + 3))
          << "pool " << pool << " seed " << seed;
      greedy_tail += int(std::count(x.begin(), x.end(), g[3]) +
                         std::count(x.begin(), x.end(), g[4]));
      if (pool == 5) {
        EXPECT_EQ(std::set<uint32_t>(x.begin(), x.end()),
                  std::set<uint32_t>(g.begin(), g.end()))
            << "seed " << seed;
      }
    }
    std::printf(
        "{\"pool\":%d,\"explored_at\":[%d,%d,%d,%d,%d],"
        "\"greedy_tail\":%d}\n",
        pool, explored_at[0], explored_at[1], explored_at[2], explored_at[3],
        explored_at[4], greedy_tail);
    // Binomial(200, 0.4) per position: 80 +- 6.9; 25 is 3.6 sd.
    for (int at = 0; at < 5; ++at) {
      EXPECT_NEAR(explored_at[at], 0.4 * kSeeds, 25)
          << "pool " << pool << " position " << at;
    }
    if (pool == 5) {
      EXPECT_EQ(greedy_tail, 2 * kSeeds);
    } else {
      EXPECT_LT(greedy_tail, kSeeds / 5) << "pool " << pool;
    }
  }
}

TEST_F(CounterfactualTest, WithAlphaFixedTheListIsPrsTopK) {
  auto engine = MustEngine(EngineOptions("learned"));
  SemView view = learner_->sem_view();
  std::vector<uint32_t> all(learner_->num_items());
  std::iota(all.begin(), all.end(), 0);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0, 1);
  for (uint32_t user : {0u, 17u, 123u}) {
    // tau = P_u turns tau^T Q_k + w_k alpha_k into eq. (4) itself, which
    // the learner computes independently (LibTorch) in ImpressionLogits.
    std::vector<float> tau(view.p + size_t(user) * view.dim,
                           view.p + size_t(user + 1) * view.dim);
    std::vector<float> alpha(all.size());
    for (float& a : alpha) a = normal(rng);
    auto list = engine->TopK(*learner_, tau, alpha);
    ASSERT_TRUE(list.ok()) << list.status().ToString();
    std::vector<float> logits = learner_->ImpressionLogits(user, all, alpha);
    ASSERT_EQ(logits.size(), all.size());
    std::vector<uint32_t> expected = all;
    std::stable_sort(
        expected.begin(), expected.end(),
        [&](uint32_t a, uint32_t b) { return logits[a] > logits[b]; });
    expected.resize(5);
    EXPECT_EQ(*list, expected) << "user " << user;
  }
}

class NoiseControlTest : public CounterfactualTest,
                         public ::testing::WithParamInterface<std::string> {};

TEST_P(NoiseControlTest, ExactlyKSquaredPairsFromTheExtremes) {
  CounterfactualOptions o = EngineOptions(GetParam());
  o.list_size = 7;
  o.noise_k = 3;
  o.candidate_pool = GetParam() == "learned" ? 40 : 0;
  auto engine = MustEngine(o);
  std::vector<uint32_t> users = AllUsers(*learner_);
  users.push_back(100000);  // no row: skipped
  CounterfactualEngine::Trace trace;
  auto samples = engine->Generate(*learner_, users, &trace);
  ASSERT_TRUE(samples.ok()) << samples.status().ToString();
  const size_t lists = trace.users.size();
  ASSERT_EQ(lists, learner_->num_users());
  ASSERT_EQ(samples->size(), lists * 9);
  ASSERT_EQ(trace.lists.size(), lists * 7);
  for (size_t t = 0; t < lists; ++t) {
    std::vector<uint32_t> list(trace.lists.begin() + t * 7,
                               trace.lists.begin() + (t + 1) * 7);
    std::vector<float> p(trace.probabilities.begin() + t * 7,
                         trace.probabilities.begin() + (t + 1) * 7);
    EXPECT_EQ(std::set<uint32_t>(list.begin(), list.end()).size(), 7u);
    EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-5);
    std::vector<float> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (size_t s = t * 9; s < (t + 1) * 9; ++s) {
      const CounterfactualSample& c = (*samples)[s];
      EXPECT_EQ(c.user, trace.users[t]);
      EXPECT_NE(c.pos, c.neg);
      auto at = [&](uint32_t item) {
        return p[std::find(list.begin(), list.end(), item) - list.begin()];
      };
      EXPECT_GE(at(c.pos), sorted[4]);  // among the 3 most likely
      EXPECT_LE(at(c.neg), sorted[2]);  // among the 3 least likely
    }
  }
  EXPECT_EQ(engine->stats().lists_generated, lists);
  EXPECT_EQ(engine->stats().samples_generated, lists * 9);
  EXPECT_EQ(engine->stats().users_skipped, 1u);
  EXPECT_GT(engine->stats().mean_reward, 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, NoiseControlTest,
                         ::testing::Values("random", "learned"));

TEST_F(CounterfactualTest, NoneGeneratesNothing) {
  auto engine = MustEngine(EngineOptions("none"));
  std::vector<uint32_t> users = AllUsers(*learner_);
  ASSERT_TRUE(engine->Pretrain(*learner_, users).ok());
  auto samples = engine->Generate(*learner_, users);
  ASSERT_TRUE(samples.ok());
  EXPECT_TRUE(samples->empty());
  EXPECT_EQ(engine->stats().lists_generated, 0u);
}

// The REINFORCE step alone on a toy problem with a known best center c:
// reward -||tau - c||^2 for every user.
TEST(GaussianPolicyTest, ReinforceMovesTheMeanTowardTheBestCenter) {
  const int dim = 4, users = 16, rounds = 400;
  std::mt19937_64 rng(3);
  cf::GaussianPolicy policy(dim, 16, /*init_std=*/0.3, /*learn_std=*/false,
                            /*lr=*/0.01, rng);
  std::vector<float> xs(users * dim), c = {1.0f, -0.5f, 0.25f, 0.75f};
  cf::FillNormal(rng, xs.data(), xs.size());
  for (float& x : xs) x *= 0.1f;
  auto distance = [&] {
    std::vector<float> mu(dim), h(16);
    double d = 0;
    for (int u = 0; u < users; ++u) {
      policy.Mean(xs.data() + u * dim, mu.data(), h.data());
      for (int k = 0; k < dim; ++k) d += (mu[k] - c[k]) * (mu[k] - c[k]);
    }
    return d / users;
  };
  const double start = distance();
  double baseline = 0, first_reward = 0, last_reward = 0;
  std::vector<float> taus(users * dim), noise(dim), mu(dim), h(16);
  for (int r = 0; r < rounds; ++r) {
    std::vector<double> rewards(users);
    double mean = 0;
    for (int u = 0; u < users; ++u) {
      policy.Mean(xs.data() + u * dim, mu.data(), h.data());
      cf::FillNormal(rng, noise.data(), dim);
      double reward = 0;
      for (int k = 0; k < dim; ++k) {
        float t = mu[k] + policy.Std(k) * noise[k];
        taus[u * dim + k] = t;
        reward -= (t - c[k]) * (t - c[k]);
      }
      rewards[u] = reward;
      mean += reward / users;
    }
    if (r == 0) baseline = first_reward = mean;
    last_reward = mean;
    std::vector<double> adv(users);
    for (int u = 0; u < users; ++u) adv[u] = rewards[u] - baseline;
    policy.Update(xs, taus, adv);
    baseline = 0.9 * baseline + 0.1 * mean;
  }
  const double end = distance();
  std::printf(
      "{\"toy_start_dist2\":%.4f,\"toy_end_dist2\":%.4f,"
      "\"first_reward\":%.4f,\"last_reward\":%.4f}\n",
      start, end, first_reward, last_reward);
  EXPECT_LT(end, 0.1 * start);
  EXPECT_GT(last_reward, first_reward + 0.5 * start);
}

TEST_F(CounterfactualTest, LearnedPolicyRaisesTheRankersLossOnItsLists) {
  // The ranker is fixed here, so the reward landscape is too: the policy
  // must find lists whose C(tau) the ranker gets more wrong.
  CounterfactualOptions o = EngineOptions("learned");
  o.policy_lr = 0.01;
  o.policy_std = 0.2;
  auto engine = MustEngine(o);
  std::vector<uint32_t> users = AllUsers(*learner_);
  double first = 0, last = 0;
  const int rounds = 150;
  for (int r = 0; r < rounds; ++r) {
    ASSERT_TRUE(engine->Generate(*learner_, users).ok());
    if (r < 10) first += engine->stats().mean_reward / 10;
    if (r >= rounds - 10) last += engine->stats().mean_reward / 10;
  }
  std::printf("{\"reward_first10\":%.4f,\"reward_last10\":%.4f}\n", first,
              last);
  EXPECT_EQ(engine->stats().policy_updates, uint64_t(rounds));
  EXPECT_GT(last, first);
}

TEST_F(CounterfactualTest, CheckpointRestoreGivesIdenticalOutput) {
  for (const char* mode : {"random", "learned"}) {
    CounterfactualOptions o = EngineOptions(mode);
    o.candidate_pool = 30;
    auto engine = MustEngine(o);
    std::vector<uint32_t> users = AllUsers(*learner_);
    ASSERT_TRUE(engine->Pretrain(*learner_, users).ok());
    ASSERT_TRUE(engine->Generate(*learner_, users).ok());
    auto blob = engine->SaveCheckpoint();
    ASSERT_TRUE(blob.ok());
    auto a1 = engine->Generate(*learner_, users);
    auto a2 = engine->Generate(*learner_, users);
    auto other = MustEngine(o);
    ASSERT_TRUE(other->RestoreCheckpoint(*blob).ok());
    auto b1 = other->Generate(*learner_, users);
    auto b2 = other->Generate(*learner_, users);
    ASSERT_TRUE(a1.ok() && a2.ok() && b1.ok() && b2.ok());
    auto same = [](const std::vector<CounterfactualSample>& x,
                   const std::vector<CounterfactualSample>& y) {
      return x.size() == y.size() &&
             std::equal(x.begin(), x.end(), y.begin(),
                        [](const auto& p, const auto& q) {
                          return p.user == q.user && p.pos == q.pos &&
                                 p.neg == q.neg;
                        });
    };
    EXPECT_TRUE(same(*a1, *b1)) << mode;
    EXPECT_TRUE(same(*a2, *b2)) << mode;
    EXPECT_EQ(engine->stats().baseline, other->stats().baseline);
    EXPECT_EQ(engine->PolicyMean(*learner_, 3),
              other->PolicyMean(*learner_, 3));
    // Another list size is refused.
    o.list_size = 6;
    EXPECT_FALSE(MustEngine(o)->RestoreCheckpoint(*blob).ok());
  }
}

TEST_F(CounterfactualTest, RankerLossIsTheTrainingLossAndTrainingCounts) {
  auto engine = MustEngine(EngineOptions("random"));
  auto samples = engine->Generate(*learner_, AllUsers(*learner_));
  ASSERT_TRUE(samples.ok());
  auto copy = MustCreate(SmallOptions());
  auto blob = learner_->SaveCheckpoint();
  ASSERT_TRUE(blob.ok());
  ASSERT_TRUE(copy->RestoreCheckpoint(*blob).ok());
  double before = copy->RankerLoss(*samples);
  EXPECT_EQ(before, copy->RankerLoss(*samples));  // no state change
  uint64_t steps = copy->stats().steps;
  for (int e = 0; e < 5; ++e) {
    ASSERT_TRUE(copy->TrainCounterfactual(*samples).ok());
  }
  EXPECT_LT(copy->RankerLoss(*samples), before);
  EXPECT_EQ(copy->stats().counterfactual_samples, 5 * samples->size());
  EXPECT_GT(copy->stats().steps, steps);
}

// In-list AUC on held-out impressions: clicked vs shown-but-not-clicked.
double InListAuc(Learner& learner, const SyntheticLog& log) {
  double wins = 0;
  long pairs = 0;
  for (const AppliedEvent& e : log.test) {
    std::vector<float> s(e.items.size());
    learner.Score(e.user, e.items, s);
    for (uint16_t p : e.clicked) {
      for (size_t j = 0; j < e.items.size(); ++j) {
        if (std::find(e.clicked.begin(), e.clicked.end(), j) !=
            e.clicked.end()) {
          continue;
        }
        wins += s[p] > s[j] ? 1.0 : s[p] == s[j] ? 0.5 : 0;
        ++pairs;
      }
    }
  }
  return wins / double(pairs);
}

TEST(CounterfactualTraining, CprAtLeastMatchesThePlainRanker) {
  testing::SyntheticOptions so;
  so.impressions_per_user = 6;  // sparse: simulation has something to add
  SyntheticLog log = MakeSyntheticLog(so);
  const int epochs = 8;
  auto run = [&](const std::string& mode) {
    auto learner = MustCreate(SmallOptions());
    std::unique_ptr<CounterfactualEngine> engine;
    if (mode != "none") engine = MustEngine(EngineOptions(mode));
    std::vector<uint32_t> users(so.users);
    std::iota(users.begin(), users.end(), 0);
    for (int e = 0; e < epochs; ++e) {
      EXPECT_TRUE(
          (e == 0 ? learner->Train(log.train) : learner->Replay(log.train))
              .ok());
      if (!engine || e < 2) continue;  // SEMs first (Algorithm 1, line 1)
      if (e == 2) {
        EXPECT_TRUE(engine->Pretrain(*learner, users).ok());
      }
      for (int r = 0; r < 4; ++r) {
        auto samples = engine->Generate(*learner, users);
        EXPECT_TRUE(samples.ok());
        EXPECT_TRUE(learner->TrainCounterfactual(*samples).ok());
      }
    }
    return InListAuc(*learner, log);
  };
  double base = run("none"), random = run("random"), cpr = run("learned");
  std::printf("{\"in_list_auc_base\":%.4f,\"cpr_r\":%.4f,\"cpr\":%.4f}\n", base,
              random, cpr);
  EXPECT_GT(base, 0.6);
  EXPECT_GE(cpr, base - 0.01);
}

// Throughput at a realistic size; prints one JSON line. Run with
//   counterfactual_test --gtest_also_run_disabled_tests
//     --gtest_filter='*DISABLED_GenerateThroughput*'
TEST(CounterfactualBench, DISABLED_GenerateThroughput) {
  const uint32_t users = 50000, items = 20000;
  LearnerOptions lo = SmallOptions();
  lo.dim = 64;
  lo.sem_dim = 32;
  lo.batch_size = 2048;
  lo.initial_rows = 1024;
  auto learner = MustCreate(lo);
  // One event per 1000 users so every id has rows (and clicks to learn).
  std::vector<AppliedEvent> events;
  std::mt19937_64 rng(1);
  for (uint32_t u = 0; u < users; ++u) {
    AppliedEvent e;
    e.seq = u + 1;
    e.user = u;
    e.ts_ms = 1'700'000'000'000 + u;
    for (int k = 0; k < 10; ++k) e.items.push_back(uint32_t(rng() % items));
    if (u == users - 1) e.items.back() = items - 1;
    std::sort(e.items.begin(), e.items.end());
    e.items.erase(std::unique(e.items.begin(), e.items.end()), e.items.end());
    e.clicked = {0};
    events.push_back(std::move(e));
  }
  ASSERT_TRUE(learner->Train(events).ok());
  std::vector<uint32_t> batch(256);
  for (uint32_t& u : batch) u = uint32_t(rng() % users);
  for (int list_size : {5, 10}) {
    for (const char* mode : {"random", "learned"}) {
      for (int pool : {0, 1000}) {
        if (std::string(mode) == "random" && pool != 0) continue;
        CounterfactualOptions o = EngineOptions(mode);
        o.list_size = list_size;
        o.noise_k = 2;
        o.candidate_pool = pool;
        o.policy_hidden = 32;
        auto engine = MustEngine(o);
        auto start = std::chrono::steady_clock::now();
        size_t samples = 0;
        const int rounds = 8;
        for (int r = 0; r < rounds; ++r) {
          auto s = engine->Generate(*learner, batch);
          ASSERT_TRUE(s.ok());
          samples += s->size();
        }
        double sec = std::chrono::duration<double>(
                         std::chrono::steady_clock::now() - start)
                         .count();
        std::printf(
            "{\"bench\":\"cf_generate\",\"mode\":\"%s\",\"items\":%u,"
            "\"users\":%u,\"K\":%d,\"k\":2,\"pool\":%d,\"lists_per_s\":%.0f,"
            "\"samples_per_s\":%.0f}\n",
            mode, items, users, list_size, pool, rounds * 256 / sec,
            samples / sec);
      }
    }
  }
  // Training cost of mixing at ratio 1: observed samples alone, then the
  // same number of counterfactual samples on top.
  auto engine = MustEngine(EngineOptions("random"));
  std::vector<CounterfactualSample> cf;
  while (cf.size() < 200000) {
    auto s = engine->Generate(*learner, batch);
    ASSERT_TRUE(s.ok());
    cf.insert(cf.end(), s->begin(), s->end());
  }
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(learner->TrainCounterfactual(cf).ok());
  double cf_sec =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf(
      "{\"bench\":\"cf_train\",\"items\":%u,\"users\":%u,\"samples\":%zu,"
      "\"cf_samples_per_s\":%.0f,\"observed_samples_per_s\":%.0f}\n",
      items, users, cf.size(), cf.size() / cf_sec,
      learner->stats().samples_per_sec);
}

}  // namespace
}  // namespace cfrec::learner
