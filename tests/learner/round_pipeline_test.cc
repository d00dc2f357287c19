// Pipelined rounds (LearnerOptions::train_pipeline, round_pipeline.h): the
// next round is prepared while the round before trains on the pipeline's
// thread, with the same triples and steps in the same order, so the model
// is bit-identical to training without it, for any kernel thread count, and
// a checkpoint taken between rounds resumes as an uninterrupted run.
#include "round_pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "cfrec/learner/learner.h"
#include "learner/synthetic.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using testing::MakeSyntheticLog;
using testing::SyntheticLog;

constexpr uint32_t kUsers = 200, kItems = 150;  // MakeSyntheticLog's

LearnerOptions Options(const std::string& ranker, int threads, bool pipeline) {
  LearnerOptions o;
  o.ranker = ranker;
  o.loss = "pairwise";
  o.kernel = "fused";
  o.dim = 16;
  o.batch_size = 64;
  o.weight_decay = 1e-3;
  o.train_sems = false;
  o.initial_rows = 64;  // the tables grow during the rounds
  o.seed = 5;
  o.train_threads = threads;
  o.train_pipeline = pipeline;
  return o;
}

std::unique_ptr<Learner> Make(const LearnerOptions& o) {
  auto learner = Learner::Create(o);
  EXPECT_TRUE(learner.ok()) << learner.status().ToString();
  return std::move(learner).value();
}

// Rounds of `round` events from `begin` to `end` of the log.
void TrainRounds(Learner& learner, std::span<const AppliedEvent> all,
                 size_t begin, size_t end, size_t round) {
  for (size_t b = begin; b < end; b += round) {
    ASSERT_TRUE(learner.Train(all.subspan(b, std::min(round, end - b))).ok());
  }
}

std::vector<float> AllScores(Learner& learner) {
  std::vector<uint32_t> items(kItems);
  std::iota(items.begin(), items.end(), 0);
  std::vector<float> out(size_t{kUsers} * kItems);
  for (uint32_t u = 0; u < kUsers; ++u) {
    learner.Score(u, items,
                  std::span<float>(out).subspan(size_t{u} * kItems, kItems));
  }
  return out;
}

TEST(RoundPipelineTest, PipelinedRoundsTrainTheSameModel) {
  SyntheticLog log = MakeSyntheticLog();
  std::span<const AppliedEvent> all(log.train);
  for (const char* ranker : {"bpr", "gmf"}) {
    for (int threads : {1, 2}) {
      auto plain = Make(Options(ranker, threads, false));
      auto piped = Make(Options(ranker, threads, true));
      TrainRounds(*plain, all, 0, all.size(), 300);
      TrainRounds(*piped, all, 0, all.size(), 300);
      const std::string what =
          std::string(ranker) + " threads " + std::to_string(threads);
      EXPECT_EQ(piped->stats().steps, plain->stats().steps) << what;
      EXPECT_EQ(piped->stats().ranker_loss, plain->stats().ranker_loss) << what;
      EXPECT_EQ(AllScores(*piped), AllScores(*plain)) << what;
      // Scores, then more rounds: each call waits for the round in training.
      TrainRounds(*plain, all, 0, 600, 200);
      TrainRounds(*piped, all, 0, 600, 200);
      EXPECT_EQ(AllScores(*piped), AllScores(*plain)) << what;
    }
  }
}

TEST(RoundPipelineTest, ResumesAsAnUninterruptedRun) {
  SyntheticLog log = MakeSyntheticLog();
  std::span<const AppliedEvent> all(log.train);
  const size_t half = all.size() / 2 / 250 * 250;  // a round boundary
  ASSERT_GT(half, 0u);
  auto whole = Make(Options("bpr", 1, true));
  TrainRounds(*whole, all, 0, all.size(), 250);
  auto first = Make(Options("bpr", 1, true));
  TrainRounds(*first, all, 0, half, 250);
  // Taken right after a Train: the round in training is part of it.
  auto blob = first->SaveCheckpoint();
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  auto resumed = Make(Options("bpr", 1, true));
  ASSERT_TRUE(resumed->RestoreCheckpoint(*blob).ok());
  TrainRounds(*resumed, all, half, all.size(), 250);
  EXPECT_EQ(resumed->stats().steps, whole->stats().steps);
  std::vector<float> a = AllScores(*whole), b = AllScores(*resumed);
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) ASSERT_NEAR(a[k], b[k], 1e-5) << k;
}

// A replayed event whose clicked item has no row: its round fails in the
// fused step (the row's range check), before it changes anything.
AppliedEvent EventWithAnItemBeyondTheTables() {
  AppliedEvent e;
  e.user = 3;
  e.items = {1, 1000000, 2};
  e.clicked = {1};
  return e;
}

// A failed round is reported by the next Train, which still trains its own
// events: the model equals a learner without the pipeline that saw the same
// calls (where the failed round reported itself).
TEST(RoundPipelineTest, AFailedRoundDoesNotTakeTheNextRoundWithIt) {
  SyntheticLog log = MakeSyntheticLog();
  std::span<const AppliedEvent> all(log.train);
  const std::vector<AppliedEvent> bad = {EventWithAnItemBeyondTheTables()};
  auto plain = Make(Options("bpr", 1, false));
  auto piped = Make(Options("bpr", 1, true));
  TrainRounds(*plain, all, 0, 600, 200);
  TrainRounds(*piped, all, 0, 600, 200);

  // Reported by the next Train.
  EXPECT_FALSE(plain->Replay(bad).ok());
  EXPECT_TRUE(piped->Replay(bad).ok());  // still training
  ASSERT_TRUE(plain->Train(all.subspan(600, 200)).ok());
  Status reported = piped->Train(all.subspan(600, 200));
  EXPECT_FALSE(reported.ok());
  EXPECT_NE(reported.ToString().find("out of range"), std::string::npos)
      << reported.ToString();
  EXPECT_TRUE(piped->Train(all.subspan(800, 200)).ok());  // once
  ASSERT_TRUE(plain->Train(all.subspan(800, 200)).ok());
  EXPECT_EQ(piped->stats().steps, plain->stats().steps);
  EXPECT_EQ(AllScores(*piped), AllScores(*plain));

  // The same when a query waited for the failed round before that Train.
  EXPECT_FALSE(plain->Replay(bad).ok());
  EXPECT_TRUE(piped->Replay(bad).ok());
  EXPECT_EQ(AllScores(*piped), AllScores(*plain));  // waits for the round
  ASSERT_TRUE(plain->Train(all.subspan(1000, 200)).ok());
  EXPECT_FALSE(piped->Train(all.subspan(1000, 200)).ok());
  EXPECT_TRUE(piped->Train(all.subspan(1200, 200)).ok());
  ASSERT_TRUE(plain->Train(all.subspan(1200, 200)).ok());
  EXPECT_EQ(piped->stats().steps, plain->stats().steps);
  EXPECT_EQ(AllScores(*piped), AllScores(*plain));
}

// A restored checkpoint replaces the state a failed round left, and its
// failure with it: the next Train reports nothing and trains.
TEST(RoundPipelineTest, RestoringACheckpointClearsAFailedRound) {
  SyntheticLog log = MakeSyntheticLog();
  std::span<const AppliedEvent> all(log.train);
  const std::vector<AppliedEvent> bad = {EventWithAnItemBeyondTheTables()};
  auto piped = Make(Options("bpr", 1, true));
  TrainRounds(*piped, all, 0, 600, 200);
  auto blob = piped->SaveCheckpoint();
  ASSERT_TRUE(blob.ok()) << blob.status().ToString();
  EXPECT_TRUE(piped->Replay(bad).ok());
  piped->stats();  // waits for the failed round
  ASSERT_TRUE(piped->RestoreCheckpoint(*blob).ok());
  EXPECT_TRUE(piped->Train(all.subspan(600, 200)).ok());

  auto plain = Make(Options("bpr", 1, false));
  ASSERT_TRUE(plain->RestoreCheckpoint(*blob).ok());
  ASSERT_TRUE(plain->Train(all.subspan(600, 200)).ok());
  EXPECT_EQ(piped->stats().steps, plain->stats().steps);
  EXPECT_EQ(AllScores(*piped), AllScores(*plain));
}

TEST(RoundPipelineTest, RunsJobsInOrderAndReportsAFailureOnce) {
  RoundPipeline pipeline;
  std::vector<int> order;  // written by the pipeline's thread only
  for (int k = 0; k < 50; ++k) {
    EXPECT_EQ(pipeline.Submit([&order, k] { order.push_back(k); }), nullptr);
  }
  pipeline.Wait();
  std::vector<int> want(50);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(order, want);

  EXPECT_EQ(pipeline.Submit([] { throw std::runtime_error("round failed"); }),
            nullptr);
  EXPECT_THROW(pipeline.Wait(), std::runtime_error);
  EXPECT_NO_THROW(pipeline.Wait());
  // A failure is handed back by the next Submit, which still starts its
  // job; Wait then has nothing to report.
  bool ran = false;
  EXPECT_EQ(pipeline.Submit([] { throw std::runtime_error("round failed"); }),
            nullptr);
  std::exception_ptr before = pipeline.Submit([&ran] { ran = true; });
  EXPECT_NE(before, nullptr);
  EXPECT_THROW(std::rethrow_exception(before), std::runtime_error);
  EXPECT_NO_THROW(pipeline.Wait());
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace cfrec::learner
