// The counterfactual engine inside the online Trainer (CPR Algorithm 1 run
// online): each intervention end to end, inline and background.
#include <gtest/gtest.h>

#include <algorithm>

#include "cfrec/learner/trainer.h"
#include "learner/fake_store.h"
#include "learner/synthetic.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using testing::FakeStore;
using testing::MakeSyntheticLog;
using testing::SyntheticLog;

constexpr std::chrono::seconds kWait(60);

TrainerOptions CfTrainerOptions(const std::string& intervention,
                                bool background) {
  TrainerOptions o;
  o.learner.dim = 16;
  o.learner.sem_dim = 8;
  o.learner.batch_size = 256;
  o.learner.lr = 0.01;
  o.learner.max_positions = 32;
  o.learner.initial_rows = 16;
  o.snapshot_interval_ms = 20;
  o.checkpoint_interval_s = 0;  // only on Stop
  o.max_events_per_round = 256;
  o.replay_ratio = 0;
  o.idle_replay_passes = 0;
  o.intervention = intervention;
  o.counterfactual.background = background;
  o.counterfactual.users_per_round = 64;
  o.counterfactual.pretrain_rounds = 3;
  o.counterfactual.pretrain_users = 64;
  o.counterfactual.policy_hidden = 16;
  o.counterfactual.refresh_interval_ms = 20;
  return o;
}

// Enqueues the events in chunks of `chunk`, waiting for each to be trained,
// until `done` holds after a chunk (or the events run out).
template <typename Done>
void Feed(Trainer& trainer, const std::vector<AppliedEvent>& events,
          size_t chunk, Done done) {
  for (size_t k = 0; k < events.size(); k += chunk) {
    size_t end = std::min(events.size(), k + chunk);
    trainer.Enqueue(
        std::vector<AppliedEvent>(events.begin() + k, events.begin() + end));
    ASSERT_TRUE(trainer.WaitForSeq(events[end - 1].seq, kWait));
    if (done()) return;
  }
}

class InlineModeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(InlineModeTest, TrainsCounterfactualSamplesAtTheConfiguredRatio) {
  const std::string mode = GetParam();
  SyntheticLog log = MakeSyntheticLog();
  FakeStore store;
  SnapshotHolder holder;
  TrainerOptions o = CfTrainerOptions(mode, /*background=*/false);
  o.counterfactual.mix_ratio = 0.5;
  {
    Trainer trainer(o, &store, &holder);
    ASSERT_TRUE(trainer.Start().ok());
    Feed(trainer, log.train, 100, [] { return false; });
    ASSERT_TRUE(trainer.Stop().ok());
    TrainingStats s = trainer.Stats();
    TrainerCounters c = trainer.Counters();
    EXPECT_EQ(s.intervention, mode);
    if (mode == "none") {
      EXPECT_EQ(s.counterfactual_samples, 0u);
      EXPECT_EQ(c.cf_lists, 0u);
      return;
    }
    EXPECT_GT(c.cf_lists, 0u);
    EXPECT_EQ(c.cf_samples_trained, s.counterfactual_samples);
    // Owed samples are trained in whole steps, so the ratio is reached
    // within the last step's worth.
    const double observed = double(s.observed_samples);
    EXPECT_NEAR(double(s.counterfactual_samples), 0.5 * observed,
                64.0 + 0.05 * observed);
    EXPECT_NEAR(c.cf_mix_ratio, 0.5, 0.1);
    // And the same share of the ranker's steps: counterfactual steps are
    // as large as the observed ones (one step per generation round gave
    // 129 counterfactual steps against 72 observed here).
    ASSERT_GT(c.observed_steps, 0u);
    EXPECT_NEAR(double(c.cf_steps) / double(c.observed_steps), 0.5, 0.15);
    EXPECT_GT(s.policy_reward, 0);
    if (mode == "learned") {
      EXPECT_GT(c.cf_policy_updates, 0u);
    }
    EXPECT_TRUE(store.GetCheckpoint("learner.counterfactual").ok());
  }
  // A restart restores the engine with the learner.
  Trainer again(o, &store, &holder);
  ASSERT_TRUE(again.Start().ok());
  EXPECT_GT(again.Counters().cf_lists, 0u);
  ASSERT_TRUE(again.Stop().ok());
}

INSTANTIATE_TEST_SUITE_P(Modes, InlineModeTest,
                         ::testing::Values("none", "random", "learned"));

class BackgroundModeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BackgroundModeTest, SamplesFlowFromTheGeneratorThread) {
  testing::SyntheticOptions so;
  so.impressions_per_user = 30;
  SyntheticLog log = MakeSyntheticLog(so);
  SnapshotHolder holder;
  TrainerOptions o = CfTrainerOptions(GetParam(), /*background=*/true);
  Trainer trainer(o, nullptr, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  Feed(trainer, log.train, 50,
       [&] { return trainer.Counters().cf_samples_trained > 0; });
  ASSERT_TRUE(trainer.Stop().ok());
  TrainerCounters c = trainer.Counters();
  EXPECT_GT(c.cf_refreshes, 0u);
  EXPECT_GT(c.cf_lists, 0u);
  EXPECT_GT(c.cf_samples_trained, 0u);
  EXPECT_EQ(trainer.Stats().counterfactual_samples, c.cf_samples_trained);
  EXPECT_LE(c.cf_samples_trained, c.cf_samples_generated);
}

INSTANTIATE_TEST_SUITE_P(Modes, BackgroundModeTest,
                         ::testing::Values("random", "learned"));

}  // namespace
}  // namespace cfrec::learner
