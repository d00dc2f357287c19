#include "cfrec/learner/learner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <tuple>

#include "cfrec/learner/bench_train.h"
#include "learner/synthetic.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using testing::MakeSyntheticLog;
using testing::SyntheticLog;

LearnerOptions SmallOptions(const std::string& ranker,
                            const std::string& loss) {
  LearnerOptions o;
  o.ranker = ranker;
  o.loss = loss;
  o.dim = 16;
  o.mlp_hidden = {16, 8};
  o.batch_size = 256;
  o.lr = 0.01;
  o.weight_decay = 1e-4;
  o.sem_dim = 8;
  o.train_sems = false;
  o.initial_rows = 64;
  o.seed = 1234;
  return o;
}

std::unique_ptr<Learner> MustCreate(const LearnerOptions& o) {
  auto learner = Learner::Create(o);
  EXPECT_TRUE(learner.ok()) << learner.status().ToString();
  return std::move(learner).value();
}

// AUC of held-out clicked items against random items the user never
// clicked: 0.5 is chance.
double HeldOutAuc(Learner& learner, const SyntheticLog& log, uint32_t items) {
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<uint32_t> any(0, items - 1);
  double wins = 0;
  int pairs = 0;
  for (const AppliedEvent& e : log.test) {
    auto clicked = learner.ClickedItems(e.user);
    for (uint16_t p : e.clicked) {
      uint32_t pos = e.items[p];
      for (int k = 0; k < 5; ++k) {
        uint32_t neg = any(rng);
        if (std::binary_search(clicked.begin(), clicked.end(), neg) ||
            neg == pos) {
          continue;
        }
        uint32_t both[2] = {pos, neg};
        float scores[2];
        learner.Score(e.user, both, scores);
        wins += scores[0] > scores[1] ? 1.0 : scores[0] == scores[1] ? 0.5 : 0;
        ++pairs;
      }
    }
  }
  return wins / pairs;
}

class RankerTest
    : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(RankerTest, LossFallsAndHeldOutClicksRankAboveRandom) {
  auto [ranker, loss] = GetParam();
  SyntheticLog log = MakeSyntheticLog();
  auto learner = MustCreate(SmallOptions(ranker, loss));
  ASSERT_TRUE(learner->Train(log.train).ok());
  double first_loss = learner->stats().ranker_loss;
  double auc_before = HeldOutAuc(*learner, log, 150);
  ASSERT_TRUE(learner->TrainEpochs(log.train, 1).ok());
  for (int epoch = 0; epoch < 14; ++epoch) {
    ASSERT_TRUE(learner->Replay(log.train).ok());
  }
  double last_loss = learner->stats().ranker_loss;
  double auc = HeldOutAuc(*learner, log, 150);
  EXPECT_LT(last_loss, 0.8 * first_loss) << ranker << "/" << loss;
  EXPECT_GT(auc, 0.75) << ranker << "/" << loss << " (before: " << auc_before
                       << ")";
  EXPECT_GT(learner->stats().steps, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    AllRankers, RankerTest,
    ::testing::Combine(::testing::Values("bpr", "gmf", "mlp", "neumf",
                                         "lightgcn"),
                       ::testing::Values("pairwise", "pointwise")),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + std::get<1>(info.param);
    });

TEST(NegativesTest, EveryModeTrains) {
  SyntheticLog log = MakeSyntheticLog();
  for (const char* mode : {"impression", "catalog", "mix"}) {
    LearnerOptions o = SmallOptions("bpr", "pairwise");
    o.negatives = mode;
    auto learner = MustCreate(o);
    ASSERT_TRUE(learner->TrainEpochs(log.train, 8).ok());
    EXPECT_GT(HeldOutAuc(*learner, log, 150), 0.7) << mode;
  }
}

// p_S (eq. 5/7) puts the clicked item of a list first far more often than
// a random guess (1/K).
TEST(SelectionModelTest, RanksClickedItemFirst) {
  SyntheticLog log = MakeSyntheticLog();
  LearnerOptions o = SmallOptions("bpr", "pairwise");
  o.train_sems = true;
  o.sem_lr = 0.02;
  o.max_positions = 32;
  auto learner = MustCreate(o);
  ASSERT_TRUE(learner->Train(log.train).ok());
  double ll_before = learner->SelectionLogLikelihood(log.test);
  for (int epoch = 0; epoch < 14; ++epoch) {
    ASSERT_TRUE(learner->Replay(log.train).ok());
  }
  double ll_after = learner->SelectionLogLikelihood(log.test);
  EXPECT_GT(ll_after, ll_before);
  double hits = 0, chance = 0;
  for (const AppliedEvent& e : log.test) {
    std::vector<float> p = learner->SelectionProbabilities(e.user, e.items);
    ASSERT_EQ(p.size(), e.items.size());
    double total = 0;
    for (float x : p) total += x;
    EXPECT_NEAR(total, 1.0, 1e-4);
    size_t best = std::max_element(p.begin(), p.end()) - p.begin();
    hits +=
        std::find(e.clicked.begin(), e.clicked.end(), best) != e.clicked.end();
    chance += double(e.clicked.size()) / double(e.items.size());
  }
  EXPECT_GT(hits, 2.5 * chance) << "hits " << hits << " chance " << chance;
  EXPECT_GT(learner->stats().sem_s_loss, 0);
  EXPECT_GT(learner->stats().sem_r_loss, 0);
}

// MIND's lists run from 2 to 300 items: p_S trains on them without padding
// and still finds the clicked item far above chance.
TEST(SelectionModelTest, HandlesListsOfTwoToThreeHundredItems) {
  SyntheticLog log = MakeSyntheticLog({.users = 60,
                                       .items = 400,
                                       .impressions_per_user = 8,
                                       .test_per_user = 2,
                                       .min_list = 2,
                                       .max_list = 300});
  LearnerOptions o = SmallOptions("bpr", "pairwise");
  o.train_sems = true;
  o.sem_lr = 0.02;
  auto learner = MustCreate(o);
  ASSERT_TRUE(learner->TrainEpochs(log.train, 12).ok());
  double hits = 0, chance = 0;
  size_t shortest = 1000, longest = 0;
  for (const AppliedEvent& e : log.test) {
    shortest = std::min(shortest, e.items.size());
    longest = std::max(longest, e.items.size());
    std::vector<float> p = learner->SelectionProbabilities(e.user, e.items);
    ASSERT_EQ(p.size(), e.items.size());
    size_t best = std::max_element(p.begin(), p.end()) - p.begin();
    hits +=
        std::find(e.clicked.begin(), e.clicked.end(), best) != e.clicked.end();
    chance += double(e.clicked.size()) / double(e.items.size());
  }
  EXPECT_LT(shortest, 20u);
  EXPECT_GT(longest, 250u);
  EXPECT_GT(hits, 2.5 * chance) << "hits " << hits << " chance " << chance;
}

TEST(PosteriorTest, ElboRisesAndSamplesAreUsable) {
  SyntheticLog log = MakeSyntheticLog();
  LearnerOptions o = SmallOptions("bpr", "pairwise");
  o.train_sems = true;
  o.max_positions = 32;
  auto learner = MustCreate(o);
  ASSERT_TRUE(learner->Train(log.train).ok());
  double elbo_start = learner->EvaluateElbo(log.train);
  for (int epoch = 0; epoch < 10; ++epoch) {
    ASSERT_TRUE(learner->Replay(log.train).ok());
  }
  double elbo_end = learner->EvaluateElbo(log.train);
  EXPECT_GT(elbo_end, elbo_start);
  EXPECT_TRUE(std::isfinite(elbo_end));
  std::vector<float> beta = learner->SampleBeta(40);  // past max_positions
  ASSERT_EQ(beta.size(), 40u);
  for (float b : beta) EXPECT_TRUE(std::isfinite(b));
  std::vector<uint32_t> items = {0, 1, 2, 100000};  // last one unseen
  std::vector<float> alpha = learner->SampleAlpha(items);
  ASSERT_EQ(alpha.size(), items.size());
  std::vector<uint32_t> known = {0, 1, 2};
  std::vector<float> logits = learner->ImpressionLogits(
      0, known, std::span<const float>(alpha).first(3));
  ASSERT_EQ(logits.size(), known.size());
  std::vector<float> p = learner->SelectionProbabilities(
      0, std::vector<uint32_t>{1, 2, 3}, std::vector<float>{0.5f, -1.f, 2.f});
  ASSERT_EQ(p.size(), 3u);
  // Unknown ids are not simulated.
  EXPECT_TRUE(learner->ImpressionLogits(0, items).empty());
  EXPECT_TRUE(
      learner->SelectionProbabilities(100000, std::vector<uint32_t>{1, 2})
          .empty());
}

std::vector<float> ScoreAll(Learner& learner, uint32_t users, uint32_t items) {
  std::vector<uint32_t> all(items);
  std::iota(all.begin(), all.end(), 0);
  std::vector<float> out(size_t{users} * items);
  for (uint32_t u = 0; u < users; ++u) {
    learner.Score(u, all,
                  std::span<float>(out).subspan(size_t{u} * items, items));
  }
  return out;
}

class CheckpointTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CheckpointTest, RestoreGivesIdenticalScores) {
  SyntheticLog log = MakeSyntheticLog();
  LearnerOptions o = SmallOptions(GetParam(), "pairwise");
  o.train_sems = true;
  auto learner = MustCreate(o);
  ASSERT_TRUE(learner->TrainEpochs(log.train, 2).ok());
  auto blob = learner->SaveCheckpoint();
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  auto restored = MustCreate(o);
  ASSERT_TRUE(restored->RestoreCheckpoint(*blob).ok());
  EXPECT_EQ(ScoreAll(*learner, 200, 150), ScoreAll(*restored, 200, 150));
  EXPECT_EQ(restored->applied_seq(), learner->applied_seq());
  EXPECT_EQ(restored->stats().steps, learner->stats().steps);
  EXPECT_EQ(learner->SelectionProbabilities(3, log.test[0].items),
            restored->SelectionProbabilities(3, log.test[0].items));
}

// Train on half, checkpoint, restore, train on the rest: the same model as
// one uninterrupted run (every random choice is in the checkpoint).
TEST_P(CheckpointTest, ResumeMatchesUninterruptedRun) {
  SyntheticLog log = MakeSyntheticLog();
  LearnerOptions o = SmallOptions(GetParam(), "pairwise");
  o.train_sems = true;
  std::span<const AppliedEvent> all(log.train);
  auto first = all.subspan(0, all.size() / 2);
  auto rest = all.subspan(all.size() / 2);

  auto straight = MustCreate(o);
  ASSERT_TRUE(straight->Train(first).ok());
  ASSERT_TRUE(straight->Train(rest).ok());

  auto half = MustCreate(o);
  ASSERT_TRUE(half->Train(first).ok());
  auto blob = half->SaveCheckpoint();
  ASSERT_TRUE(blob.ok());
  half.reset();
  auto resumed = MustCreate(o);
  ASSERT_TRUE(resumed->RestoreCheckpoint(*blob).ok());
  ASSERT_TRUE(resumed->Train(rest).ok());

  std::vector<float> a = ScoreAll(*straight, 200, 150);
  std::vector<float> b = ScoreAll(*resumed, 200, 150);
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) ASSERT_NEAR(a[k], b[k], 1e-5) << k;
  EXPECT_EQ(straight->stats().steps, resumed->stats().steps);
  EXPECT_NEAR(straight->EvaluateElbo(log.test), resumed->EvaluateElbo(log.test),
              1e-5);
}

INSTANTIATE_TEST_SUITE_P(Rankers, CheckpointTest,
                         ::testing::Values("bpr", "neumf", "lightgcn"));

TEST(CheckpointTest, RejectsOtherModelOptions) {
  auto learner = MustCreate(SmallOptions("bpr", "pairwise"));
  auto blob = learner->SaveCheckpoint();
  ASSERT_TRUE(blob.ok());
  LearnerOptions other = SmallOptions("bpr", "pairwise");
  other.dim = 32;
  auto mismatch = MustCreate(other);
  EXPECT_EQ(mismatch->RestoreCheckpoint(*blob).code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(mismatch->RestoreCheckpoint("not a checkpoint").ok());
}

// New users and items grow the tables by doubling; rows that existed keep
// their exact values.
TEST(GrowthTest, GrowingTablesKeepsOldRows) {
  for (const char* ranker : {"bpr", "neumf"}) {
    LearnerOptions o = SmallOptions(ranker, "pairwise");
    o.initial_rows = 8;
    o.train_sems = false;  // so the newcomer below triggers no SEM step
    auto learner = MustCreate(o);
    SyntheticLog log = MakeSyntheticLog({.users = 8,
                                         .items = 8,
                                         .impressions_per_user = 4,
                                         .min_list = 3,
                                         .max_list = 6});
    ASSERT_TRUE(learner->Train(log.train).ok());
    std::vector<float> before = ScoreAll(*learner, 8, 8);
    std::vector<float> logits_before =
        learner->ImpressionLogits(2, std::vector<uint32_t>{0, 1, 2});
    AppliedEvent newcomer;  // no clicks: grows tables without a step
    newcomer.seq = 10'000;
    newcomer.user = 5000;
    newcomer.items = {3000};
    ASSERT_TRUE(learner->Train(std::span(&newcomer, 1)).ok());
    EXPECT_EQ(learner->num_users(), 5001u);
    EXPECT_EQ(learner->num_items(), 3001u);
    EXPECT_EQ(ScoreAll(*learner, 8, 8), before) << ranker;
    EXPECT_EQ(learner->ImpressionLogits(2, std::vector<uint32_t>{0, 1, 2}),
              logits_before);
    uint32_t item = 3000;
    float score = 0;
    learner->Score(5000, std::span(&item, 1), std::span(&score, 1));
    EXPECT_TRUE(std::isfinite(score));
  }
}

// The snapshot scores like the learner, copies clicks, and is unaffected
// by later training.
TEST(SnapshotTest, MatchesLearnerAndStaysImmutable) {
  for (const char* ranker : {"bpr", "gmf", "mlp", "neumf", "lightgcn"}) {
    SyntheticLog log = MakeSyntheticLog();
    auto learner = MustCreate(SmallOptions(ranker, "pairwise"));
    ASSERT_TRUE(learner->TrainEpochs(log.train, 2).ok());
    SnapshotInputs in;
    in.version = 7;
    in.candidates = {1, 2, 3};
    in.popular = {3, 1, 2};
    auto made = learner->MakeSnapshot(in);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    std::shared_ptr<const ModelSnapshot> snapshot = *made;
    EXPECT_EQ(snapshot->version(), 7u);
    EXPECT_EQ(snapshot->num_users(), 200u);
    EXPECT_EQ(snapshot->num_items(), 150u);
    std::vector<uint32_t> items(150);
    std::iota(items.begin(), items.end(), 0);
    std::vector<float> expected(150), got(150);
    learner->Score(4, items, expected);
    snapshot->Score(4, items, got);
    for (size_t k = 0; k < items.size(); ++k) {
      EXPECT_NEAR(got[k], expected[k], 1e-4) << ranker << " item " << k;
    }
    auto clicked = learner->ClickedItems(4);
    auto snap_clicked = snapshot->ClickedItems(4);
    EXPECT_TRUE(std::equal(clicked.begin(), clicked.end(), snap_clicked.begin(),
                           snap_clicked.end()));
    EXPECT_EQ(snapshot->UserVector(4).size(), size_t(snapshot->dim()));
    EXPECT_EQ(snapshot->FindItem("12"), 12u);
    EXPECT_EQ(snapshot->ItemId(12), "12");
    float unknown = 0;
    uint32_t i0 = 0;
    snapshot->Score(100000, std::span(&i0, 1), std::span(&unknown, 1));
    EXPECT_TRUE(std::isinf(unknown));
    ASSERT_TRUE(learner->Replay(log.train).ok());
    snapshot->Score(4, items, got);
    for (size_t k = 0; k < items.size(); ++k) {
      ASSERT_NEAR(got[k], expected[k], 1e-4) << ranker;
    }
  }
}

TEST(LearnerTest, DeterministicForASeed) {
  SyntheticLog log = MakeSyntheticLog();
  LearnerOptions o = SmallOptions("neumf", "pointwise");
  o.train_sems = true;
  auto a = MustCreate(o);
  auto b = MustCreate(o);
  ASSERT_TRUE(a->TrainEpochs(log.train, 2).ok());
  ASSERT_TRUE(b->TrainEpochs(log.train, 2).ok());
  EXPECT_EQ(ScoreAll(*a, 200, 150), ScoreAll(*b, 200, 150));
}

TEST(LearnerTest, HistoryBecomesClicksAndSamples) {
  auto learner = MustCreate(SmallOptions("bpr", "pairwise"));
  AppliedEvent e;
  e.seq = 1;
  e.user = 3;
  e.items = {10, 11, 12};
  e.history = {20, 5};
  ASSERT_TRUE(learner->Train(std::span(&e, 1)).ok());
  auto clicked = learner->ClickedItems(3);
  EXPECT_EQ(std::vector<uint32_t>(clicked.begin(), clicked.end()),
            (std::vector<uint32_t>{5, 20}));
  EXPECT_EQ(learner->stats().observed_samples, 2u * 5u);
}

// Counterfactual sample weights scale each sample's loss in the step's
// mean: a batch of B at weight 2 and as many samples A at weight 0 takes
// the same step as B alone at weight 1 (the fused step; scores compared
// up to a constant per user), for both losses,
// and leaves the rows only A touches where they were (no weight decay,
// Adam's moments start at zero). Negative weights are refused.
TEST(LearnerTest, CounterfactualSampleWeightsScaleTheirLoss) {
  constexpr uint32_t kUsers = 40, kItems = 60;
  for (const char* ranker : {"bpr", "gmf"}) {
    for (const char* loss : {"pairwise", "pointwise"}) {
      SCOPED_TRACE(std::string(ranker) + " " + loss);
      LearnerOptions o = SmallOptions(ranker, loss);
      o.weight_decay = 0;
      o.batch_size = 4096;
      std::vector<CounterfactualSample> a, b;
      for (uint32_t k = 0; k < 30; ++k) {
        // A: users 0-19, items 0-29; B: users 20-39, items 30-59.
        a.push_back({k % 20, k, (k + 7) % 30, 0.0f});
        b.push_back({20 + k % 20, 30 + k, 30 + (k + 11) % 30, 2.0f});
      }
      std::vector<CounterfactualSample> mixed;
      for (size_t k = 0; k < a.size(); ++k) {
        mixed.push_back(a[k]);
        mixed.push_back(b[k]);
      }
      std::vector<CounterfactualSample> alone = b;
      for (CounterfactualSample& c : alone) c.weight = 1.0f;
      auto init = MustCreate(o), weighted = MustCreate(o),
           plain = MustCreate(o);
      for (Learner* l : {init.get(), weighted.get(), plain.get()}) {
        ASSERT_TRUE(l->EnsureIds(kUsers, kItems).ok());
      }
      ASSERT_TRUE(weighted->TrainCounterfactual(mixed).ok());
      ASSERT_TRUE(plain->TrainCounterfactual(alone).ok());
      EXPECT_EQ(weighted->stats().steps, 1u);
      std::vector<uint32_t> items(kItems);
      std::iota(items.begin(), items.end(), 0);
      std::vector<float> w(kItems), p(kItems), i0(kItems);
      double worst = 0, moved = 0, untouched = 0;
      for (uint32_t u = 0; u < kUsers; ++u) {
        weighted->Score(u, items, w);
        plain->Score(u, items, p);
        init->Score(u, items, i0);
        for (uint32_t i = 0; i < kItems; ++i) {
          // Up to a constant per user: GMF's bias has no gradient under the
          // pairwise loss, and LibTorch's float noise there is rescaled by
          // Adam (as in fused_kernels_test).
          worst =
              std::max(worst, double(std::abs((w[i] - w[0]) - (p[i] - p[0]))));
          moved += std::abs(p[i] - i0[i]);
          if (u < 20 && i < 30) {
            untouched = std::max(untouched, double(std::abs(w[i] - i0[i])));
          }
        }
      }
      EXPECT_LE(worst, 1e-5);
      EXPECT_GT(moved / (kUsers * kItems), 1e-3);  // the step did something
      if (std::string(ranker) == "bpr") {
        EXPECT_LE(untouched, 1e-6);
      }
    }
  }
  auto learner = MustCreate(SmallOptions("bpr", "pairwise"));
  ASSERT_TRUE(learner->EnsureIds(4, 4).ok());
  std::vector<CounterfactualSample> bad = {{0, 1, 2, -1.0f}};
  EXPECT_FALSE(learner->TrainCounterfactual(bad).ok());
}

}  // namespace
}  // namespace cfrec::learner

namespace cfrec::learner {
namespace {

TEST(BenchTrainTest, MeasuresEveryRankerAndPrintsOneJsonLine) {
  BenchTrainOptions o;
  o.users = 500;
  o.items = 300;
  o.batch_size = 256;
  o.dim = 16;
  o.seconds = 0.2;
  auto result = RunBenchTrain(o);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->models.size(), 2u);
  for (const BenchTrainModel& m : result->models) {
    EXPECT_GT(m.samples, 0u) << m.ranker;
    EXPECT_GT(m.steps, 0u) << m.ranker;
    EXPECT_GT(m.samples_per_sec, 0) << m.ranker;
  }
  EXPECT_GT(result->peak_rss_kb, 0);
  std::string json = BenchTrainResultToJson(*result);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_NE(json.find("\"bench\":\"train\""), std::string::npos);
  EXPECT_NE(json.find("\"neumf\""), std::string::npos);
  o.seconds = 0;
  EXPECT_TRUE(RunBenchTrain(o).status().IsInvalidArgument());
}

// --sems: p_R, p_S and the posteriors on generated lists, each step timed.
TEST(BenchTrainTest, MeasuresTheSemsOnLists) {
  BenchTrainOptions o;
  o.users = 300;
  o.items = 200;
  o.batch_size = 128;
  o.dim = 8;
  o.seconds = 0.2;
  o.rankers = {"bpr"};
  o.sems = true;
  o.sem_list_length = 6;
  auto result = RunBenchTrain(o);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_TRUE(result->has_sem);
  EXPECT_GT(result->sem.lists, 0u);
  EXPECT_GT(result->sem.impression_s, 0);
  EXPECT_GT(result->sem.selection_s, 0);
  EXPECT_GT(result->sem.posterior_s, 0);
  EXPECT_GE(result->sem.sems_s, result->sem.impression_s +
                                    result->sem.selection_s +
                                    result->sem.posterior_s);
  std::string json = BenchTrainResultToJson(*result);
  EXPECT_NE(json.find("\"sem\":{"), std::string::npos);
  EXPECT_NE(json.find("\"p_r_lists_per_sec\""), std::string::npos);
  EXPECT_NE(json.find("\"cores\""), std::string::npos);
  o.sem_list_length = 1;  // p_S needs two items to choose from
  EXPECT_TRUE(RunBenchTrain(o).status().IsInvalidArgument());
}

}  // namespace
}  // namespace cfrec::learner
