// The pipelined apply (EventStore::SubmitBatch) against the plain one
// (ApplyBatch): the same messages, cut into the same small batches, must
// leave the same store behind, also when the batches interact across the
// write in flight (a click whose impression is being written, a click held
// by the batch being written, duplicates and redeliveries of its messages,
// an item-stats flush on top of it), and when a write fails under a batch
// already built on it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kTopic = "events";

struct Message {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string payload;
};

// A stream of impressions and clicks in which clicks come before and after
// their impressions, impressions and clicks repeat, some clicks name the
// wrong user or item and some messages are not events at all.
std::vector<Message> MakeStream(uint32_t seed, int impressions) {
  std::mt19937 rng(seed);
  const auto uniform = [&rng](int n) {
    return static_cast<int>(rng() % static_cast<uint32_t>(n));
  };
  // (position in the stream, payload); sorted by position at the end.
  std::vector<std::pair<double, std::string>> placed;
  for (int k = 0; k < impressions; ++k) {
    ImpressionEvent imp;
    imp.impression_id = "imp" + std::to_string(k);
    imp.user_id = "u" + std::to_string(uniform(40));
    imp.ts_ms = 1'000'000 + k * 10;
    const int n = 2 + uniform(8);
    for (int i = 0; i < n; ++i) {
      std::string item = "n" + std::to_string(uniform(300));
      if (std::find(imp.items.begin(), imp.items.end(), item) ==
          imp.items.end()) {
        imp.items.push_back(std::move(item));
      }
    }
    if (uniform(4) == 0) imp.clicks.push_back(imp.items[0]);
    if (uniform(3) == 0)
      imp.history.push_back("n" + std::to_string(uniform(300)));
    const double at = k;
    placed.emplace_back(at, SerializeEvent(imp));
    if (uniform(8) == 0) {  // the same impression again, soon after
      placed.emplace_back(at + 1 + uniform(12), SerializeEvent(imp));
    }
    const int clicks = uniform(3);
    for (int c = 0; c < clicks; ++c) {
      ClickEvent click{imp.impression_id, imp.user_id,
                       imp.items[uniform(static_cast<int>(imp.items.size()))],
                       imp.ts_ms + 5};
      switch (uniform(10)) {
        case 0:
          click.user_id = "someone-else";
          break;
        case 1:
          click.item_id = "not-shown";
          break;
        default:
          break;
      }
      // Before the impression (held) as often as after it.
      const double when =
          at + (uniform(2) == 0 ? -1.0 : 1.0) * (0.5 + uniform(15));
      placed.emplace_back(when, SerializeEvent(click));
      if (uniform(6) == 0) {
        placed.emplace_back(when + 0.25 + uniform(10), SerializeEvent(click));
      }
    }
    if (uniform(25) == 0) placed.emplace_back(at + 0.5, "{not json");
  }
  std::stable_sort(
      placed.begin(), placed.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Message> out;
  std::vector<int64_t> next(3, 0);
  for (auto& [at, payload] : placed) {
    const auto p = static_cast<int32_t>(out.size() % 3);
    out.push_back({p, next[p]++, std::move(payload)});
  }
  return out;
}

// Cuts the stream into batches of 1-9 messages; some batches start with the
// last messages of the one before (a redelivery: same offsets).
std::vector<std::vector<Message>> MakeBatches(const std::vector<Message>& all,
                                              uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<Message>> batches;
  size_t i = 0;
  while (i < all.size()) {
    std::vector<Message> batch;
    if (!batches.empty() && rng() % 5 == 0) {
      const auto& prev = batches.back();
      const size_t again = std::min<size_t>(prev.size(), 1 + rng() % 3);
      batch.insert(batch.end(), prev.end() - static_cast<ptrdiff_t>(again),
                   prev.end());
    }
    const size_t n = std::min<size_t>(all.size() - i, 1 + rng() % 9);
    batch.insert(batch.end(), all.begin() + static_cast<ptrdiff_t>(i),
                 all.begin() + static_cast<ptrdiff_t>(i + n));
    i += n;
    batches.push_back(std::move(batch));
  }
  return batches;
}

std::vector<ConsumedMessage> Consumed(const std::vector<Message>& batch) {
  std::vector<ConsumedMessage> out;
  for (const auto& m : batch) {
    out.push_back({kTopic, m.partition, m.offset, "", m.payload});
  }
  return out;
}

std::unique_ptr<EventStore> OpenStore(const std::string& dir,
                                      std::shared_ptr<StorageFaults> faults) {
  StoreOptions options;
  options.faults = std::move(faults);
  auto store = EventStore::Open(dir, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// Everything a reader can see, as text, with ids by name (both stores
// assign indexes in the same order, but names make a failure readable).
std::string Dump(const EventStore& store, int impressions) {
  std::ostringstream out;
  const StoreCounters c = store.Counters();
  out << "counters " << c.impressions << " " << c.clicks_joined << " "
      << c.clicks_pending << " " << c.duplicates << " " << c.dead_letters << " "
      << c.applied_seq << " users " << c.users << " items " << c.items << "\n";
  for (size_t u = 0; u < store.NumUsers(); ++u) {
    out << "user " << u << " " << store.UserId(static_cast<UserIndex>(u))
        << "\n";
  }
  for (size_t i = 0; i < store.NumItems(); ++i) {
    out << "item " << i << " " << store.ItemId(static_cast<ItemIndex>(i))
        << "\n";
  }
  for (const auto& [p, next] : store.NextOffsets(kTopic)) {
    out << "offset " << p << " " << next << "\n";
  }
  for (int k = 0; k < impressions; ++k) {
    auto imp = store.GetImpression("imp" + std::to_string(k));
    if (!imp.ok()) continue;
    out << "impression " << imp->impression_id << " user " << imp->user
        << " ts " << imp->ts_ms << " items";
    for (auto i : imp->items) out << " " << i;
    out << " clicked";
    for (auto p : imp->clicked) out << " " << p;
    out << " history";
    for (auto h : imp->history) out << " " << h;
    out << "\n";
  }
  auto applied = store.ReadApplied(1, 1'000'000);
  EXPECT_TRUE(applied.ok());
  if (applied.ok()) {
    for (const auto& e : *applied) {
      out << "applied " << e.seq << " " << static_cast<int>(e.kind) << " "
          << e.user << " " << e.ts_ms << " n" << e.items.size() << " clicked";
      for (auto p : e.clicked) out << " " << p;
      out << "\n";
    }
  }
  auto dead = store.ReadDeadLetters(1, 1'000'000);
  EXPECT_TRUE(dead.ok());
  if (dead.ok()) {
    for (const auto& d : *dead) {
      out << "dead " << d.seq << " " << d.reason << " " << d.partition << " "
          << d.offset << "\n";
    }
  }
  auto stats = store.AllItemStats();
  EXPECT_TRUE(stats.ok());
  if (stats.ok()) {
    for (size_t i = 0; i < stats->size(); ++i) {
      const ItemStats& s = (*stats)[i];
      out << "stats " << i << " " << s.impressions << " " << s.clicks << " "
          << s.last_impression_ms << "\n";
    }
  }
  return out.str();
}

// The sequence numbers of the events handed out, in order.
void Collect(const ApplyOutcome& outcome, std::vector<uint64_t>* seqs) {
  for (const auto& e : outcome.events) seqs->push_back(e.seq);
}

constexpr int kImpressions = 700;

TEST(PipelinedApply, LeavesTheSameStoreAsApplyingOneBatchAtATime) {
  const auto stream = MakeStream(7, kImpressions);
  const auto batches = MakeBatches(stream, 11);
  // More batches than an item-stats flush period, so flushes happen with a
  // batch in flight.
  ASSERT_GT(batches.size(), 200u);

  cfrec::testing::TempDir plain_dir, piped_dir;
  auto plain = OpenStore(plain_dir.path(), nullptr);
  auto piped = OpenStore(piped_dir.path(), nullptr);
  ASSERT_TRUE(plain && piped);
  std::vector<uint64_t> plain_seqs, piped_seqs;
  for (const auto& batch : batches) {
    const auto msgs = Consumed(batch);
    auto a = plain->ApplyBatch(msgs);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    Collect(*a, &plain_seqs);
    auto b = piped->SubmitBatch(msgs);  // `batches` outlives the store's use
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    if (b->has_value()) Collect(**b, &piped_seqs);
  }
  auto last = piped->CompleteBatch();
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  ASSERT_TRUE(last->has_value());
  Collect(**last, &piped_seqs);
  auto none = piped->CompleteBatch();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  // The stream exercised what it is meant to.
  const StoreCounters c = plain->Counters();
  EXPECT_GT(c.clicks_joined, 100u);
  EXPECT_GT(c.duplicates, 20u);
  EXPECT_GT(c.dead_letters, 20u);
  ASSERT_EQ(c.impressions, uint64_t{kImpressions});

  EXPECT_EQ(piped_seqs, plain_seqs);
  const std::string expected = Dump(*plain, kImpressions);
  EXPECT_EQ(Dump(*piped, kImpressions), expected);
  // Durable, and the same after a reopen (item stats rebuilt from the last
  // flush and the applied log).
  piped.reset();
  piped = OpenStore(piped_dir.path(), nullptr);
  ASSERT_TRUE(piped);
  EXPECT_EQ(Dump(*piped, kImpressions), expected);
}

// Disabled in the suite: with the Debian 12 RocksDB (7.8) its error
// recovery can deadlock or abort when a background compaction fails with a
// retryable error while the recovery thread resumes the store (the
// compaction joins the recovery thread, which waits for the compaction; two
// failing writers can also join it twice: fixed upstream in 8.x). Run by hand
// it hit one or the other in about one run in ten. Run it with
// --gtest_also_run_disabled_tests.
TEST(PipelinedApply, DISABLED_AFailedWriteTakesTheBatchBuiltOnItWithIt) {
  const auto stream = MakeStream(23, 200);
  const auto batches = MakeBatches(stream, 29);
  ASSERT_GT(batches.size(), 40u);

  cfrec::testing::TempDir plain_dir, piped_dir;
  auto plain = OpenStore(plain_dir.path(), nullptr);
  auto faults = std::make_shared<StorageFaults>();
  auto piped = OpenStore(piped_dir.path(), faults);
  ASSERT_TRUE(plain && piped);
  for (const auto& batch : batches) {
    ASSERT_TRUE(plain->ApplyBatch(Consumed(batch)).ok());
  }

  // Every 11th batch is submitted while the disk is full: its write fails,
  // and so does the submission of the next batch (built on it); both are
  // submitted again once the disk has room, as the ingestor does after
  // rewinding to the stored offsets.
  size_t failures = 0;
  std::vector<ConsumedMessage> msgs;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (i % 11 == 3 && i + 1 < batches.size()) {
      auto done = piped->CompleteBatch();
      ASSERT_TRUE(done.ok()) << done.status().ToString();
      const auto before = piped->Counters().applied_seq;
      faults->Set(StorageFault::kNoSpace);
      const auto first = Consumed(batches[i]);
      ASSERT_TRUE(piped->SubmitBatch(first).ok());  // built; write fails
      const auto second = Consumed(batches[i + 1]);
      auto r = piped->SubmitBatch(second);
      ASSERT_FALSE(r.ok());
      ++failures;
      EXPECT_FALSE(piped->StorageHealth().ok());
      EXPECT_EQ(piped->Counters().applied_seq, before);
      faults->Clear();
    }
    msgs = Consumed(batches[i]);
    // The first write after the fault resumes the store; it may take a few
    // tries while RocksDB recovers in the background (as the ingest loop
    // retries after a backoff).
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(20);
    Status s = piped->SubmitBatch(msgs).status();
    while (!s.ok() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      s = piped->SubmitBatch(msgs).status();
    }
    ASSERT_TRUE(s.ok()) << s.ToString();
    // The messages of the batch in flight must stay valid: complete before
    // `msgs` is reused.
    auto done = piped->CompleteBatch();
    ASSERT_TRUE(done.ok()) << done.status().ToString();
  }
  EXPECT_GE(failures, 3u);
  EXPECT_TRUE(piped->StorageHealth().ok());
  EXPECT_EQ(Dump(*piped, 200), Dump(*plain, 200));
}

}  // namespace
}  // namespace cfrec::state
