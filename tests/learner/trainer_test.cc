#include "cfrec/learner/trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <thread>

#include "cfrec/schemas/thread_sched.h"
#include "learner/fake_store.h"
#include "learner/synthetic.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using testing::FakeStore;
using testing::MakeSyntheticLog;
using testing::SyntheticLog;

constexpr std::chrono::seconds kWait(60);

TrainerOptions SmallTrainerOptions() {
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
  // Idle replay trains for as long as the thread happens to wait: off where
  // a test compares models or counts rounds (IdleReplay* turn it on).
  o.idle_replay_passes = 0;
  return o;
}

void EnqueueInBatches(Trainer& trainer, const std::vector<AppliedEvent>& events,
                      size_t batch) {
  for (size_t k = 0; k < events.size(); k += batch) {
    trainer.Enqueue(std::vector<AppliedEvent>(
        events.begin() + k,
        events.begin() + std::min(events.size(), k + batch)));
  }
}

class EmptyStoreTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EmptyStoreTest, PublishesAFirstSnapshot) {
  FakeStore store;
  SnapshotHolder holder;
  TrainerOptions o = SmallTrainerOptions();
  o.learner.ranker = GetParam();
  Trainer trainer(o, &store, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  auto snapshot = holder.Get();
  ASSERT_NE(snapshot, nullptr);
  EXPECT_EQ(snapshot->num_users(), 0u);
  EXPECT_TRUE(snapshot->CandidateItems().empty());
  ASSERT_TRUE(trainer.Stop().ok());
  // The checkpoint of Stop, and the block of model versions reserved
  // before the first snapshot.
  EXPECT_EQ(store.checkpoint_puts(), 2u);
  EXPECT_EQ(trainer.Counters().errors, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllRankers, EmptyStoreTest,
                         ::testing::Values("bpr", "gmf", "mlp", "neumf",
                                           "lightgcn"));

TEST(TrainerTest, RejectsInvalidOptions) {
  TrainerOptions o = SmallTrainerOptions();
  o.learner.ranker = "svd";
  SnapshotHolder holder;
  Trainer trainer(o, nullptr, &holder);
  EXPECT_TRUE(trainer.Start().IsInvalidArgument());
}

TEST(TrainerTest, TrainsFromTheQueueAndExposesStats) {
  SyntheticLog log = MakeSyntheticLog();
  SnapshotHolder holder;
  Trainer trainer(SmallTrainerOptions(), nullptr, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  EnqueueInBatches(trainer, log.train, 100);
  ASSERT_TRUE(trainer.WaitForSeq(log.train.back().seq, kWait));
  TrainingStats stats = trainer.Stats();
  EXPECT_EQ(stats.events_consumed, log.train.size());
  EXPECT_EQ(stats.applied_seq, log.train.back().seq);
  EXPECT_GT(stats.observed_samples, 0u);
  EXPECT_GT(stats.steps, 0u);
  EXPECT_GT(stats.ranker_loss, 0);
  EXPECT_EQ(stats.ranker, "bpr");
  ASSERT_TRUE(trainer.Stop().ok());
  auto snapshot = holder.Get();
  EXPECT_EQ(snapshot->stats().events_consumed, log.train.size());
  EXPECT_EQ(snapshot->num_users(), 200u);
  EXPECT_EQ(snapshot->CandidateItems().size(), 150u);
  EXPECT_EQ(snapshot->PopularItems().size(), 150u);
  EXPECT_GT(trainer.Counters().snapshots_published, 1u);
  // After Stop, enqueued events are dropped (the applied log keeps them).
  trainer.Enqueue({log.test[0]});
  EXPECT_EQ(trainer.Counters().events_dropped, 1u);
}

// Stop writes a checkpoint; a new trainer restores it and catches up from
// the applied log without training anything twice.
TEST(TrainerTest, RestartResumesFromCheckpointAndCatchesUp) {
  SyntheticLog log = MakeSyntheticLog();
  FakeStore store;
  std::vector<AppliedEvent> first(log.train.begin(),
                                  log.train.begin() + log.train.size() / 2);
  std::vector<AppliedEvent> rest(log.train.begin() + log.train.size() / 2,
                                 log.train.end());
  TrainerOptions o = SmallTrainerOptions();
  {
    SnapshotHolder holder;
    Trainer trainer(o, &store, &holder);
    ASSERT_TRUE(trainer.Start().ok());
    store.Append(first);
    EnqueueInBatches(trainer, first, 128);
    ASSERT_TRUE(trainer.WaitForSeq(first.back().seq, kWait));
    ASSERT_TRUE(trainer.Stop().ok());
  }
  // Events applied while the service was down.
  store.Append(rest);
  SnapshotHolder holder;
  Trainer trainer(o, &store, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  EXPECT_EQ(holder.Get()->stats().applied_seq, first.back().seq);
  ASSERT_TRUE(trainer.WaitForSeq(rest.back().seq, kWait));
  // The queue may repeat what catch-up already trained: it is skipped.
  EnqueueInBatches(trainer, rest, 128);
  ASSERT_TRUE(trainer.WaitUntilQuiet(kWait));
  ASSERT_TRUE(trainer.Stop().ok());
  TrainingStats stats = trainer.Stats();
  EXPECT_EQ(stats.events_consumed, log.train.size());
  EXPECT_EQ(stats.applied_seq, log.train.back().seq);
  EXPECT_EQ(trainer.Counters().events_skipped, rest.size());
  EXPECT_GT(trainer.Counters().events_replayed, 0u);
}

// With a store, Stop does not wait for the queue to be trained: the queued
// events are left to the next start, which reads them from the applied log,
// and the last snapshot and checkpoint are made on the thread that called
// Stop (at its priority: the trainer's thread may get no CPU under
// SCHED_IDLE on a busy machine). Stop raises the trainer's thread to its
// caller's policy: from SCHED_BATCH here, which needs no privilege (the
// raise from SCHED_IDLE is the same call, ThreadSched's tests).
TEST(TrainerTest, StopLeavesTheQueueToTheNextStartAndFinishesOnItsCaller) {
  SyntheticLog log = MakeSyntheticLog();
  const size_t half = log.train.size() / 2;
  std::vector<AppliedEvent> first(log.train.begin(), log.train.begin() + half);
  std::vector<AppliedEvent> rest(log.train.begin() + half, log.train.end());
  TrainerOptions o = SmallTrainerOptions();
  o.queue_capacity = 1 << 22;  // the probes below never block
  o.sched = "batch";
  const SchedPolicy test_policy = ThisThreadSched().policy;
  FakeStore store;
  store.Append(first);
  // The trainer's thread is held in its first publish after `first` is
  // trained, so what is queued next cannot be trained before Stop comes.
  std::mutex mu;
  std::condition_variable cv;
  bool held = false, released = false;
  std::thread::id last_publisher;
  SchedPolicy trainer_policy_held = SchedPolicy::kNormal;
  SchedPolicy trainer_policy_released = SchedPolicy::kNormal;
  const std::thread::id test_thread = std::this_thread::get_id();
  SnapshotHolder holder;
  holder.SetOnPublish([&](const std::shared_ptr<const ModelSnapshot>& s) {
    std::unique_lock<std::mutex> lock(mu);
    last_publisher = std::this_thread::get_id();
    if (last_publisher != test_thread && !held &&
        s->stats().applied_seq == first.back().seq) {
      held = true;
      trainer_policy_held = ThisThreadSched().policy;
      cv.notify_all();
      cv.wait(lock, [&] { return released; });
      trainer_policy_released = ThisThreadSched().policy;
    }
  });
  Trainer trainer(o, &store, &holder);
  // Releases the held thread however the test ends: declared after the
  // trainer, it runs before ~Trainer joins that thread.
  struct Release {
    std::mutex& mu;
    std::condition_variable& cv;
    bool& released;
    ~Release() {
      {
        std::lock_guard<std::mutex> lock(mu);
        released = true;
      }
      cv.notify_all();
    }
  } release{mu, cv, released};
  ASSERT_TRUE(trainer.Start().ok());
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return held; }));
  }
  EnqueueInBatches(trainer, rest, 128);
  std::thread::id stopper;
  Status stopped;
  std::thread stopping([&] {
    stopper = std::this_thread::get_id();
    stopped = trainer.Stop();
  });
  // Once Stop has closed the queue, an enqueued event is dropped at once;
  // until then the probes only join the queue.
  while (trainer.Counters().events_dropped == 0) {
    trainer.Enqueue({rest.back()});
    std::this_thread::yield();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  stopping.join();
  ASSERT_TRUE(stopped.ok()) << stopped.ToString();
  EXPECT_EQ(trainer.Stats().events_consumed, first.size());
  EXPECT_GE(trainer.Counters().events_dropped, rest.size());
  EXPECT_EQ(trainer.Counters().last_checkpoint_seq, first.back().seq);
  EXPECT_EQ(last_publisher, stopper);
  EXPECT_EQ(trainer_policy_held, SchedPolicy::kBatch);
  EXPECT_EQ(trainer_policy_released, test_policy);
  EXPECT_EQ(holder.Get()->stats().applied_seq, first.back().seq);

  // The next start trains the rest from the applied log, nothing twice.
  store.Append(rest);
  SnapshotHolder again_holder;
  Trainer again(o, &store, &again_holder);
  ASSERT_TRUE(again.Start().ok());
  ASSERT_TRUE(again.WaitForSeq(rest.back().seq, kWait));
  ASSERT_TRUE(again.Stop().ok());
  EXPECT_EQ(again.Stats().events_consumed, log.train.size());
  EXPECT_EQ(again.Stats().applied_seq, log.train.back().seq);
}

// The stream features are part of the checkpoint: a restarted trainer
// serves the same stream scores before it trains anything new; with stream
// features off a snapshot carries none.
TEST(TrainerTest, StreamFeaturesSurviveARestart) {
  SyntheticLog log = MakeSyntheticLog();
  FakeStore store;
  TrainerOptions o = SmallTrainerOptions();
  std::vector<float> before;
  {
    SnapshotHolder holder;
    Trainer trainer(o, &store, &holder);
    ASSERT_TRUE(trainer.Start().ok());
    store.Append(log.train);
    EnqueueInBatches(trainer, log.train, 128);
    ASSERT_TRUE(trainer.WaitForSeq(log.train.back().seq, kWait));
    ASSERT_TRUE(trainer.Stop().ok());
    const stream::StreamScorer* sc = holder.Get()->stream();
    ASSERT_NE(sc, nullptr);
    EXPECT_GT(sc->num_items(), 0u);
    for (uint32_t item = 0; item < 160; ++item) {
      before.push_back(sc->ItemScore(item));
    }
    EXPECT_NE(*std::max_element(before.begin(), before.end()),
              *std::min_element(before.begin(), before.end()));
  }
  SnapshotHolder holder;
  Trainer trainer(o, &store, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  const stream::StreamScorer* sc = holder.Get()->stream();
  ASSERT_NE(sc, nullptr);
  for (uint32_t item = 0; item < 160; ++item) {
    EXPECT_FLOAT_EQ(sc->ItemScore(item), before[item]) << item;
  }
  ASSERT_TRUE(trainer.Stop().ok());

  o.stream_features = false;
  SnapshotHolder off_holder;
  Trainer off(o, &store, &off_holder);
  ASSERT_TRUE(off.Start().ok());  // reads the checkpoint, ignores its stream
  EXPECT_EQ(off_holder.Get()->stream(), nullptr);
  ASSERT_TRUE(off.Stop().ok());
}

// Readers hold snapshots while the trainer swaps new ones in: each snapshot
// they see is complete and self-consistent, and versions never go back.
TEST(TrainerTest, ConcurrentReadersNeverSeeAHalfWrittenModel) {
  SyntheticLog log = MakeSyntheticLog();
  SnapshotHolder holder;
  TrainerOptions o = SmallTrainerOptions();
  o.snapshot_interval_ms = 1;
  Trainer trainer(o, nullptr, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<uint64_t> checks{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      uint64_t last_version = 0;
      std::vector<uint32_t> items;
      std::vector<float> scores;
      while (!done.load()) {
        std::shared_ptr<const ModelSnapshot> s = holder.Get();
        if (s->version() < last_version) ++bad;
        last_version = s->version();
        size_t users = s->num_users(), n = s->num_items();
        if (users == 0 || n == 0) continue;
        items.resize(n);
        std::iota(items.begin(), items.end(), 0);
        scores.resize(n);
        uint32_t u = static_cast<uint32_t>(checks.load() % users);
        s->Score(u, items, scores);
        auto uv = s->UserVector(u);
        if (uv.size() != size_t(s->dim())) ++bad;
        for (size_t i = 0; i < n; ++i) {
          // BPR: the ranking score is the retrieval dot product.
          auto iv = s->ItemVector(static_cast<uint32_t>(i));
          float dot = 0;
          for (size_t d = 0; d < uv.size(); ++d) dot += uv[d] * iv[d];
          if (!std::isfinite(scores[i]) || std::abs(dot - scores[i]) > 1e-4) {
            ++bad;
          }
        }
        ++checks;
      }
    });
  }
  EnqueueInBatches(trainer, log.train, 50);
  ASSERT_TRUE(trainer.WaitForSeq(log.train.back().seq, kWait));
  ASSERT_TRUE(trainer.Stop().ok());
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(checks.load(), 0u);
  EXPECT_GT(trainer.Counters().snapshots_published, 2u);
}

TEST(TrainerTest, EnqueueBlocksWhenFullAndLosesNothing) {
  SyntheticLog log = MakeSyntheticLog();
  SnapshotHolder holder;
  TrainerOptions o = SmallTrainerOptions();
  o.queue_capacity = 64;
  Trainer trainer(o, nullptr, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  std::thread producer([&] { EnqueueInBatches(trainer, log.train, 32); });
  producer.join();
  ASSERT_TRUE(trainer.Stop().ok());  // drains the queue first
  EXPECT_EQ(trainer.Stats().events_consumed, log.train.size());
}

// With the stream quiet, the trainer keeps revisiting the applied log (up to
// idle_replay_passes passes) and the ranker keeps improving.
TEST(TrainerTest, IdleReplayKeepsLearningAfterTheStreamStops) {
  SyntheticLog log = MakeSyntheticLog();
  FakeStore store;
  SnapshotHolder holder;
  TrainerOptions o = SmallTrainerOptions();
  o.learner.lr = 0.003;
  o.idle_replay_passes = 8;
  o.idle_replay_chunk = 256;
  o.replay_ratio = 0;
  Trainer trainer(o, &store, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  store.Append(log.train);
  EnqueueInBatches(trainer, log.train, 128);
  ASSERT_TRUE(trainer.WaitForSeq(log.train.back().seq, kWait));
  const TrainingStats after_stream = trainer.Stats();
  ASSERT_TRUE(trainer.WaitUntilQuiet(kWait));
  const TrainerCounters counters = trainer.Counters();
  const TrainingStats after_idle = trainer.Stats();
  ASSERT_TRUE(trainer.Stop().ok());
  // The budget is spent, and not overspent by more than one chunk.
  EXPECT_GE(counters.events_idle_replayed, 8 * log.train.size());
  EXPECT_LE(counters.events_idle_replayed,
            8 * log.train.size() + size_t(o.idle_replay_chunk));
  EXPECT_GT(after_idle.steps, after_stream.steps);
  EXPECT_LT(after_idle.ranker_loss, after_stream.ranker_loss - 0.05)
      << "loss after the stream " << after_stream.ranker_loss;
  // Idle replay does not count as consuming events.
  EXPECT_EQ(after_idle.events_consumed, log.train.size());
}

// A checkpoint that cannot be decoded (damaged or cut short) never stops
// the learner: it is reported, counted, and the learner starts fresh,
// training on the whole applied log again.
TEST(TrainerTest, UndecodableCheckpointIsReportedAndTheLearnerStartsFresh) {
  SyntheticLog log = MakeSyntheticLog();
  std::vector<AppliedEvent> events(log.train.begin(), log.train.begin() + 600);
  TrainerOptions o = SmallTrainerOptions();
  FakeStore store;
  store.Append(events);
  {
    SnapshotHolder holder;
    Trainer trainer(o, &store, &holder);
    ASSERT_TRUE(trainer.Start().ok());
    ASSERT_TRUE(trainer.WaitForSeq(events.back().seq, kWait));
    ASSERT_TRUE(trainer.Stop().ok());
  }
  const std::string good = *store.GetCheckpoint(o.checkpoint_name);
  ASSERT_GT(good.size(), 1000u);
  std::string flipped = good;
  flipped[flipped.size() / 4] ^= 0x10;  // inside the learner's archive
  // Each is caught by the frame's sizes or the checksum of the seal (the
  // flipped byte and the last byte cut were restored without complaint
  // before the seal: LibTorch's reader and the stream decoder missed them).
  const std::vector<std::pair<std::string, std::string>> damaged = {
      {"cut to 5 bytes", good.substr(0, 5)},
      {"cut in half", good.substr(0, good.size() / 2)},
      {"cut by one byte", good.substr(0, good.size() - 1)},
      {"garbage", std::string(good.size(), '\x5a')},
      {"a byte flipped in the learner's part", flipped},
  };
  for (const auto& [what, blob] : damaged) {
    SCOPED_TRACE(what);
    ASSERT_TRUE(store.PutCheckpoint(o.checkpoint_name, blob).ok());
    SnapshotHolder holder;
    Trainer trainer(o, &store, &holder);
    ASSERT_TRUE(trainer.Start().ok());
    EXPECT_EQ(trainer.Counters().checkpoints_unusable, 1u);
    EXPECT_EQ(holder.Get()->stats().applied_seq, 0u);  // fresh
    ASSERT_TRUE(trainer.WaitForSeq(events.back().seq, kWait));
    ASSERT_TRUE(trainer.Stop().ok());
    EXPECT_EQ(trainer.Stats().events_consumed, events.size());
    EXPECT_EQ(trainer.Counters().errors, 0u);
  }
  // The checkpoint Stop wrote last is whole again: it is used.
  SnapshotHolder holder;
  Trainer trainer(o, &store, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  EXPECT_EQ(trainer.Counters().checkpoints_unusable, 0u);
  EXPECT_EQ(holder.Get()->stats().applied_seq, events.back().seq);
  ASSERT_TRUE(trainer.Stop().ok());
}

// The store keeps the previous good checkpoint beside the newest one: a
// damaged newest one falls back to it (and the catch-up trains the rest
// from the applied log, so the end state equals an uninterrupted run's);
// with both damaged the learner starts fresh; neither crashes.
TEST(TrainerTest, DamagedCheckpointFallsBackToThePreviousOne) {
  SyntheticLog log = MakeSyntheticLog();
  ASSERT_GE(log.train.size(), 600u);
  const std::vector<AppliedEvent> first(log.train.begin(),
                                        log.train.begin() + 300);
  const std::vector<AppliedEvent> second(log.train.begin() + 300,
                                         log.train.begin() + 600);
  const uint64_t first_seq = first.back().seq;
  const uint64_t last_seq = second.back().seq;
  TrainerOptions o = SmallTrainerOptions();
  FakeStore store;
  auto run = [&](uint64_t until, uint64_t expect_restored,
                 uint64_t expect_unusable) {
    SnapshotHolder holder;
    Trainer trainer(o, &store, &holder);
    ASSERT_TRUE(trainer.Start().ok());
    EXPECT_EQ(holder.Get()->stats().applied_seq, expect_restored);
    EXPECT_EQ(trainer.Counters().checkpoints_unusable, expect_unusable);
    ASSERT_TRUE(trainer.WaitForSeq(until, kWait));
    ASSERT_TRUE(trainer.Stop().ok());
    EXPECT_EQ(trainer.Counters().errors, 0u);
  };
  store.Append(first);
  run(first_seq, 0, 0);
  const std::string checkpoint_a = *store.GetCheckpoint(o.checkpoint_name);
  // Only one checkpoint so far: nothing to keep as the previous one.
  EXPECT_TRUE(store.GetCheckpoint(o.checkpoint_name + ".previous")
                  .status()
                  .IsNotFound());
  store.Append(second);
  run(last_seq, first_seq, 0);
  const std::string checkpoint_b = *store.GetCheckpoint(o.checkpoint_name);
  EXPECT_NE(checkpoint_a, checkpoint_b);
  EXPECT_EQ(*store.GetCheckpoint(o.checkpoint_name + ".previous"),
            checkpoint_a);

  // The newest cut in half: resumes from the previous one, catches up.
  ASSERT_TRUE(
      store
          .PutCheckpoint(o.checkpoint_name,
                         checkpoint_b.substr(0, checkpoint_b.size() / 2))
          .ok());
  run(last_seq, first_seq, 1);
  // That run's checkpoint is the newest; the previous one is still A (the
  // damaged blob was not kept), and the model equals B's.
  EXPECT_EQ(*store.GetCheckpoint(o.checkpoint_name + ".previous"),
            checkpoint_a);
  EXPECT_EQ(*store.GetCheckpoint(o.checkpoint_name), checkpoint_b);

  // Both damaged: starts fresh and trains the whole log again.
  std::string flipped = checkpoint_a;
  flipped[flipped.size() / 4] ^= 0x10;
  ASSERT_TRUE(store.PutCheckpoint(o.checkpoint_name, "garbage").ok());
  ASSERT_TRUE(
      store.PutCheckpoint(o.checkpoint_name + ".previous", flipped).ok());
  run(last_seq, 0, 2);

  // Only the previous one present (the newest deleted by hand): used.
  store.EraseCheckpoint(o.checkpoint_name);
  ASSERT_TRUE(
      store.PutCheckpoint(o.checkpoint_name + ".previous", checkpoint_a).ok());
  run(last_seq, first_seq, 0);
}

// Model versions go on increasing across a restart: the restarted trainer
// publishes above every version the first one could have published (a
// block of versions is recorded before its first is used).
TEST(TrainerTest, ModelVersionsContinueAboveEveryVersionBeforeARestart) {
  FakeStore store;
  TrainerOptions o = SmallTrainerOptions();
  uint64_t last = 0;
  {
    SnapshotHolder holder;
    Trainer trainer(o, &store, &holder);
    ASSERT_TRUE(trainer.Start().ok());
    EXPECT_EQ(holder.Get()->version(), 1u);
    // A few snapshots (one every 20 ms).
    while (holder.Get()->version() < 5) std::this_thread::yield();
    ASSERT_TRUE(trainer.Stop().ok());
    last = holder.Get()->version();
  }
  ASSERT_LT(last, 1000u);
  EXPECT_EQ(*store.GetCheckpoint(o.checkpoint_name + ".versions"), "1000");
  for (uint64_t first : {1001u, 2001u}) {
    SnapshotHolder holder;
    Trainer trainer(o, &store, &holder);
    ASSERT_TRUE(trainer.Start().ok());
    EXPECT_EQ(holder.Get()->version(), first);
    ASSERT_TRUE(trainer.Stop().ok());
  }
}

}  // namespace
}  // namespace cfrec::learner
