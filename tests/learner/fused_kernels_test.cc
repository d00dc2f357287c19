// The fused training kernels (fused_mf.h, fused_sem.h) against the LibTorch
// path: the same seed, data and options must give the same parameters to
// 1e-5; threads of the fused ranker kernel change only the order of float
// sums, and a given thread count is deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cfrec/learner/learner.h"
#include "learner/synthetic.h"
#include "row_index.h"
#include "work_pool.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using testing::MakeSyntheticLog;
using testing::SyntheticLog;

constexpr uint32_t kUsers = 200, kItems = 150;  // MakeSyntheticLog's

LearnerOptions Options(const std::string& ranker, const std::string& loss,
                       const std::string& kernel) {
  LearnerOptions o;
  o.ranker = ranker;
  o.loss = loss;
  o.kernel = kernel;
  o.dim = 16;
  o.batch_size = 128;
  o.weight_decay = 1e-3;
  o.sem_dim = 8;
  o.train_sems = false;
  o.initial_rows = 64;
  o.seed = 77;
  return o;
}

std::unique_ptr<Learner> Trained(const LearnerOptions& o,
                                 const SyntheticLog& log) {
  auto learner = Learner::Create(o);
  EXPECT_TRUE(learner.ok()) << learner.status().ToString();
  std::span<const AppliedEvent> all(log.train);
  // Several rounds, as the trainer hands them over.
  const size_t round = all.size() / 3 + 1;
  for (size_t begin = 0; begin < all.size(); begin += round) {
    auto part = all.subspan(begin, std::min(round, all.size() - begin));
    EXPECT_TRUE((*learner)->Train(part).ok());
  }
  return std::move(learner).value();
}

// f(u, i) - f(u, 0) for every user and item: the scores up to a per-model
// constant (GMF's bias has no gradient under the pairwise loss; LibTorch's
// sum of its cancelling terms leaves float noise that Adam rescales).
std::vector<float> RelativeScores(Learner& learner) {
  std::vector<uint32_t> items(kItems);
  std::iota(items.begin(), items.end(), 0);
  std::vector<float> out(size_t{kUsers} * kItems);
  for (uint32_t u = 0; u < kUsers; ++u) {
    std::span<float> row = std::span<float>(out).subspan(u * kItems, kItems);
    learner.Score(u, items, row);
    const float base = row[0];
    for (float& s : row) s -= base;
  }
  return out;
}

void ExpectNear(std::span<const float> a, std::span<const float> b,
                double tolerance, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    worst = std::max(worst, std::abs(double(a[k]) - double(b[k])));
  }
  EXPECT_LE(worst, tolerance) << what;
}

class FusedRankerTest
    : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(FusedRankerTest, SameUpdatesAsLibTorch) {
  const auto& [ranker, loss] = GetParam();
  SyntheticLog log = MakeSyntheticLog();
  auto torch = Trained(Options(ranker, loss, "torch"), log);
  auto fused = Trained(Options(ranker, loss, "fused"), log);
  ASSERT_GT(fused->stats().steps, 10u);
  EXPECT_EQ(fused->stats().steps, torch->stats().steps);
  ExpectNear(RelativeScores(*fused), RelativeScores(*torch), 1e-5, "scores");
  EXPECT_NEAR(fused->stats().ranker_loss, torch->stats().ranker_loss, 1e-5);
  // The step moved the model: the comparison is not between two inits.
  auto init = Learner::Create(Options(ranker, loss, "torch"));
  ASSERT_TRUE(init.ok());
  ASSERT_TRUE((*init)->EnsureIds(kUsers, kItems).ok());
  std::vector<float> a = RelativeScores(*fused), b = RelativeScores(**init);
  double moved = 0;
  for (size_t k = 0; k < a.size(); ++k) moved += std::abs(a[k] - b[k]);
  EXPECT_GT(moved / a.size(), 1e-3);
}

// Counterfactual samples with loss weights (0, 0.5, 1, 2, 3.5 over several
// batches, between observed rounds): the fused kernel's weighted step
// gives the LibTorch path's parameters to 1e-5, and the weights matter
// (all-1 weights end elsewhere).
TEST_P(FusedRankerTest, WeightedStepsMatchLibTorch) {
  const auto& [ranker, loss] = GetParam();
  SyntheticLog log = MakeSyntheticLog();
  std::vector<CounterfactualSample> weighted, plain;
  const float kWeights[] = {0.0f, 0.5f, 1.0f, 2.0f, 3.5f};
  for (uint32_t k = 0; k < 300; ++k) {
    const uint32_t u = (k * 7) % kUsers, i = (k * 13) % kItems,
                   j = (k * 29 + 5) % kItems;
    weighted.push_back({u, i, j, kWeights[k % 5]});
    plain.push_back({u, i, j, 1.0f});
  }
  auto run = [&](const std::string& kernel,
                 const std::vector<CounterfactualSample>& samples) {
    auto learner = Learner::Create(Options(ranker, loss, kernel));
    EXPECT_TRUE(learner.ok()) << learner.status().ToString();
    std::span<const AppliedEvent> all(log.train);
    const size_t half = all.size() / 2;
    EXPECT_TRUE((*learner)->Train(all.first(half)).ok());
    EXPECT_TRUE((*learner)->EnsureIds(kUsers, kItems).ok());
    EXPECT_TRUE((*learner)->TrainCounterfactual(samples).ok());
    EXPECT_TRUE((*learner)->Train(all.subspan(half)).ok());
    EXPECT_TRUE((*learner)->TrainCounterfactual(samples).ok());
    return std::move(learner).value();
  };
  auto torch = run("torch", weighted);
  auto fused = run("fused", weighted);
  auto unweighted = run("fused", plain);
  EXPECT_EQ(fused->stats().steps, torch->stats().steps);
  EXPECT_GT(fused->stats().counterfactual_samples, 0u);
  // Every step, weighted or not, went through the fused kernel.
  EXPECT_EQ(fused->train_times().ranker_torch, 0.0);
  EXPECT_GT(torch->train_times().ranker_torch, 0.0);
  std::vector<float> sf = RelativeScores(*fused);
  ExpectNear(sf, RelativeScores(*torch), 1e-5, "scores");
  EXPECT_NEAR(fused->stats().ranker_loss, torch->stats().ranker_loss, 1e-5);
  std::vector<float> su = RelativeScores(*unweighted);
  double apart = 0;
  for (size_t k = 0; k < sf.size(); ++k) apart += std::abs(sf[k] - su[k]);
  EXPECT_GT(apart / sf.size(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(MatrixFactorisation, FusedRankerTest,
                         ::testing::Combine(::testing::Values("bpr", "gmf"),
                                            ::testing::Values("pairwise",
                                                              "pointwise")));

// p_R and p_S (and the posteriors, which read them) after rounds with
// train_sems: every parameter within 1e-5 of the LibTorch run.
TEST(FusedSemTest, SameUpdatesAsLibTorch) {
  SyntheticLog log = MakeSyntheticLog();
  LearnerOptions t = Options("mlp", "pairwise", "torch");
  t.train_sems = true;
  LearnerOptions f = t;
  f.kernel = "fused";
  auto torch = Trained(t, log);
  auto fused = Trained(f, log);
  SemView a = fused->sem_view(), b = torch->sem_view();
  ASSERT_EQ(a.num_users, b.num_users);
  ASSERT_EQ(a.num_items, b.num_items);
  const size_t u = a.num_users * a.dim, i = a.num_items * a.dim;
  auto span = [](const float* p, size_t n) {
    return std::span<const float>(p, n);
  };
  ExpectNear(span(a.p, u), span(b.p, u), 1e-5, "P");
  ExpectNear(span(a.q, i), span(b.q, i), 1e-5, "Q");
  ExpectNear(span(a.w_r, a.num_items), span(b.w_r, b.num_items), 1e-5, "w_R");
  ExpectNear(span(a.x, u), span(b.x, u), 1e-5, "X");
  ExpectNear(span(a.y, i), span(b.y, i), 1e-5, "Y");
  ExpectNear(span(a.w_s, a.max_positions), span(b.w_s, b.max_positions), 1e-5,
             "w_S");
  ExpectNear(span(a.mu_alpha, a.num_items), span(b.mu_alpha, b.num_items), 1e-5,
             "mu_alpha");
  ExpectNear(span(a.mu_beta, a.max_positions), span(b.mu_beta, b.max_positions),
             1e-5, "mu_beta");
  EXPECT_NEAR(fused->stats().sem_r_loss, torch->stats().sem_r_loss, 1e-5);
  EXPECT_NEAR(fused->stats().sem_s_loss, torch->stats().sem_s_loss, 1e-5);
  EXPECT_GT(fused->stats().sem_s_loss, 0);
}

// Two threads split the batch: the same model as one thread up to the
// order of float sums, and bit-identical from run to run.
TEST(FusedThreadsTest, TwoThreadsMatchOneAndRepeat) {
  SyntheticLog log = MakeSyntheticLog();
  for (const char* ranker : {"bpr", "gmf"}) {
    LearnerOptions one = Options(ranker, "pairwise", "fused");
    LearnerOptions two = one;
    two.train_threads = 2;
    auto a = Trained(one, log);
    auto b = Trained(two, log);
    auto c = Trained(two, log);
    std::vector<float> sb = RelativeScores(*b);
    ExpectNear(RelativeScores(*a), sb, 1e-5, ranker);
    EXPECT_EQ(sb, RelativeScores(*c)) << ranker;
  }
}

// RowIndex's bits (what the update pass of another thread reads) say the
// same as its slots, through Slot and Clear, for rows sharing a word.
TEST(RowIndexTest, HasAgreesWithTheSlots) {
  RowIndex index;
  index.Reset(200, /*bits=*/true);
  const int64_t rows[] = {0, 63, 64, 65, 130, 63, 199, 1, 0};
  for (int round = 0; round < 2; ++round) {
    for (int64_t r : rows) index.Slot(r);
    EXPECT_EQ(index.size(), 7);
    for (int64_t r = 0; r < 200; ++r) {
      EXPECT_EQ(index.Has(r), index.slot_of_row[r] >= 0) << r;
    }
    index.Clear();
    for (int64_t r = 0; r < 200; ++r) EXPECT_FALSE(index.Has(r)) << r;
  }
  index.Slot(5);
  EXPECT_TRUE(index.Has(5));
  EXPECT_FALSE(index.Has(4));
}

// The bits of a batch are cleared even when the next batch is reset
// without them, and a table grown while bits are set keeps none stale.
TEST(RowIndexTest, NoStaleBitsWhenTheFlagChangesOrTheTableGrows) {
  RowIndex index;
  index.Reset(100, /*bits=*/true);
  index.Slot(7);
  index.Slot(99);
  index.Reset(300, /*bits=*/false);  // as Step does before Clear
  index.Clear();
  index.Reset(300, /*bits=*/true);
  for (int64_t r = 0; r < 300; ++r) EXPECT_FALSE(index.Has(r)) << r;
  index.Slot(250);
  for (int64_t r = 0; r < 300; ++r) EXPECT_EQ(index.Has(r), r == 250) << r;
}

TEST(FusedThreadsTest, RejectsBadOptions) {
  LearnerOptions o = Options("bpr", "pairwise", "fast");
  EXPECT_FALSE(Learner::Create(o).ok());
  o.kernel = "fused";
  o.train_threads = 0;
  EXPECT_FALSE(Learner::Create(o).ok());
}

TEST(WorkPoolTest, RunsEveryTaskOncePerCall) {
  WorkPool pool(3);
  for (int tasks : {1, 2, 3, 7}) {
    std::vector<std::atomic<int>> calls(tasks);
    for (int round = 0; round < 500; ++round) {
      pool.Run(tasks, [&](int t) { calls[t].fetch_add(1); });
      for (int t = 0; t < tasks; ++t) {
        ASSERT_EQ(calls[t].load(), round + 1) << tasks << " tasks";
      }
    }
  }
}

// A task that waits for another task finishes once some thread takes the
// other: the caller does not wait for a particular worker.
TEST(WorkPoolTest, TasksRunConcurrentlyWhenThreadsAreFree) {
  WorkPool pool(2);
  std::atomic<int> started{0};
  std::atomic<bool> both{false};
  pool.Run(2, [&](int) {
    started.fetch_add(1);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (started.load() < 2 && std::chrono::steady_clock::now() < deadline) {
    }
    if (started.load() == 2) both.store(true);
  });
  EXPECT_TRUE(both.load());
}

// The pool's threads start wherever the pool is made, but run the work of
// the thread that calls Run under that thread's scheduling (the trainer's
// background priority, not its creator's).
TEST(WorkPoolTest, WorkersTakeTheCallersScheduling) {
  WorkPool pool(2);
  const ThreadSched start = ThisThreadSched();
  const ThreadSched want{start.policy == SchedPolicy::kIdle
                             ? SchedPolicy::kIdle
                             : SchedPolicy::kBatch,
                         std::max(start.nice, 11)};
  std::vector<ThreadSched> seen(2);
  std::atomic<int> started{0};
  bool both = false;
  std::thread caller([&] {
    ASSERT_TRUE(LowerThisThreadTo(want).ok());
    // Each task waits for the other, so the worker must take one.
    pool.Run(2, [&](int t) {
      seen[t] = ThisThreadSched();
      started.fetch_add(1);
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (started.load() < 2 &&
             std::chrono::steady_clock::now() < deadline) {
      }
    });
    both = started.load() == 2;
  });
  caller.join();
  ASSERT_TRUE(both);
  EXPECT_EQ(seen[0], want);
  EXPECT_EQ(seen[1], want);
}

}  // namespace
}  // namespace cfrec::learner
