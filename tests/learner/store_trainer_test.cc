// The trainer against the real RocksDB EventStore: events applied by the
// store feed the trainer; a restart (with the store reopened from disk)
// restores the checkpoint and catches up from the applied log.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cfrec/learner/trainer.h"
#include "cfrec/schemas/event.h"
#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"
#include "learner/synthetic.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using state::EventStore;

constexpr std::chrono::seconds kWait(60);

// The synthetic log as impression JSON messages, the way ingest sees them.
std::vector<std::string> ToMessages(const std::vector<AppliedEvent>& events) {
  std::vector<std::string> out;
  for (const AppliedEvent& e : events) {
    ImpressionEvent imp;
    imp.impression_id = "imp" + std::to_string(e.seq);
    imp.user_id = "u" + std::to_string(e.user);
    imp.ts_ms = e.ts_ms;
    for (uint32_t i : e.items) imp.items.push_back("i" + std::to_string(i));
    for (uint16_t p : e.clicked) imp.clicks.push_back(imp.items[p]);
    out.push_back(SerializeEvent(Event(imp)));
  }
  return out;
}

// Applies messages [begin, end) in batches; returns the applied events.
std::vector<std::vector<AppliedEvent>> Apply(EventStore& store,
                                             const std::vector<std::string>& m,
                                             size_t begin, size_t end,
                                             int64_t& offset) {
  std::vector<std::vector<AppliedEvent>> batches;
  for (size_t k = begin; k < end; k += 100) {
    std::vector<state::ConsumedMessage> batch;
    for (size_t j = k; j < std::min(end, k + 100); ++j) {
      batch.push_back({"cfrec.events", 0, offset++, "key", m[j]});
    }
    auto outcome = store.ApplyBatch(batch);
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    if (!outcome.ok()) break;
    EXPECT_EQ(outcome->dead_letters, 0u);
    batches.push_back(std::move(outcome->events));
  }
  return batches;
}

TEST(StoreTrainerTest, RestartResumesFromCheckpointAndCatchesUp) {
  cfrec::testing::TempDir dir;
  testing::SyntheticLog log = testing::MakeSyntheticLog();
  std::vector<std::string> messages = ToMessages(log.train);
  size_t half = messages.size() / 2;
  TrainerOptions o;
  o.learner.dim = 16;
  o.learner.sem_dim = 8;
  o.learner.batch_size = 256;
  o.learner.max_positions = 32;
  o.learner.initial_rows = 16;
  o.snapshot_interval_ms = 50;
  o.checkpoint_interval_s = 0;
  o.idle_replay_passes = 0;  // the comparison needs the same rounds
  int64_t offset = 0;
  {
    auto store = EventStore::Open(dir.path(), state::StoreOptions{});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    // The store is written only while no trainer reads it: Debian's
    // librocksdb is not built with ThreadSanitizer, which then reports its
    // (correct) concurrent memtable reads and writes as races.
    std::vector<std::vector<AppliedEvent>> applied =
        Apply(**store, messages, 0, half, offset);
    uint64_t last = (*store)->Counters().applied_seq;
    ASSERT_EQ(last, half);
    SnapshotHolder holder;
    Trainer trainer(o, store->get(), &holder);
    ASSERT_TRUE(trainer.Start().ok());
    // Catch-up reads them from the applied log; the same events arriving
    // through the queue are recognised by seq and skipped.
    for (auto& batch : applied) trainer.Enqueue(std::move(batch));
    ASSERT_TRUE(trainer.WaitForSeq(last, kWait));
    ASSERT_TRUE(trainer.Stop().ok());
    EXPECT_EQ(trainer.Stats().events_consumed, half);
    // Applied while the trainer is down: only the applied log has them.
    Apply(**store, messages, half, messages.size(), offset);
  }
  auto store = EventStore::Open(dir.path(), state::StoreOptions{});
  ASSERT_TRUE(store.ok());
  uint64_t last = (*store)->Counters().applied_seq;
  ASSERT_EQ(last, messages.size());
  SnapshotHolder holder;
  Trainer trainer(o, store->get(), &holder);
  ASSERT_TRUE(trainer.Start().ok());
  EXPECT_EQ(holder.Get()->stats().applied_seq, half);  // from the checkpoint
  ASSERT_TRUE(trainer.WaitForSeq(last, kWait));
  ASSERT_TRUE(trainer.Stop().ok());
  TrainingStats stats = trainer.Stats();
  EXPECT_EQ(stats.events_consumed, messages.size());  // nothing twice
  EXPECT_EQ(stats.applied_seq, last);
  auto snapshot = holder.Get();
  EXPECT_EQ(snapshot->num_users(), 200u);
  // Ids resolve through the store's dictionary.
  auto item = snapshot->FindItem("i3");
  ASSERT_TRUE(item.has_value());
  EXPECT_EQ(snapshot->ItemId(*item), "i3");
  auto user = snapshot->FindUser("u7");
  ASSERT_TRUE(user.has_value());
  EXPECT_FALSE(snapshot->ClickedItems(*user).empty());
  EXPECT_FALSE(snapshot->CandidateItems().empty());
}

}  // namespace
}  // namespace cfrec::learner
