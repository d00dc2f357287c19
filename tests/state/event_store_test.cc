#include "cfrec/state/event_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/temp_dir.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kTopic = "events";

// Builds consumed messages whose views point into owned strings.
class Batch {
 public:
  Batch& Add(int32_t partition, int64_t offset, std::string payload) {
    payloads_.push_back(std::move(payload));
    meta_.push_back({partition, offset});
    return *this;
  }
  Batch& Impression(int32_t p, int64_t off, const ImpressionEvent& e) {
    return Add(p, off, SerializeEvent(e));
  }
  Batch& Click(int32_t p, int64_t off, const ClickEvent& e) {
    return Add(p, off, SerializeEvent(e));
  }
  std::vector<ConsumedMessage> messages() const {
    std::vector<ConsumedMessage> out;
    for (size_t i = 0; i < payloads_.size(); ++i) {
      out.push_back(
          {kTopic, meta_[i].first, meta_[i].second, "", payloads_[i]});
    }
    return out;
  }

 private:
  std::vector<std::string> payloads_;
  std::vector<std::pair<int32_t, int64_t>> meta_;
};

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    store_.reset();
    auto s = EventStore::Open(dir_.path(), StoreOptions{});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  ApplyOutcome Apply(const Batch& b) {
    auto msgs = b.messages();
    auto r = store_->ApplyBatch(msgs);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : ApplyOutcome{};
  }
  std::vector<std::string> ItemNames(const std::vector<ItemIndex>& items) {
    std::vector<std::string> out;
    for (auto i : items) out.push_back(store_->ItemId(i));
    return out;
  }

  cfrec::testing::TempDir dir_;
  std::unique_ptr<EventStore> store_;
};

TEST_F(EventStoreTest, AppliesImpressionWithClicksAndAssignsIds) {
  Batch b;
  b.Impression(0, 0, {"i1", "alice", 1000, {"n1", "n2", "n3"}, {"n2"}, {"h1"}});
  auto out = Apply(b);
  EXPECT_EQ(out.impressions, 1u);
  ASSERT_EQ(out.events.size(), 1u);
  const AppliedEvent& ev = out.events[0];
  EXPECT_EQ(ev.seq, 1u);
  EXPECT_EQ(ev.kind, AppliedEvent::Kind::kImpression);
  EXPECT_EQ(ev.user, 0u);
  EXPECT_EQ(ItemNames(ev.items), (std::vector<std::string>{"n1", "n2", "n3"}));
  EXPECT_EQ(ev.clicked, (std::vector<uint16_t>{1}));
  EXPECT_EQ(ItemNames(ev.history), (std::vector<std::string>{"h1"}));
  EXPECT_EQ(store_->FindUser("alice"), 0u);
  EXPECT_EQ(store_->NumItems(), 4u);
  EXPECT_EQ(store_->NextOffsets(kTopic), (std::map<int32_t, int64_t>{{0, 1}}));

  auto stored = store_->GetImpression("i1");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->clicked, (std::vector<uint16_t>{1}));
  auto stats = store_->GetItemStats(*store_->FindItem("n2"));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(*stats, (ItemStats{1, 1, 1000}));
}

TEST_F(EventStoreTest, ApplyingTheSameBatchTwiceChangesNothing) {
  Batch b;
  b.Impression(0, 0, {"i1", "alice", 1000, {"n1", "n2"}, {}, {}})
      .Click(0, 1, {"i1", "alice", "n1", 1500})
      .Impression(3, 7, {"i2", "bob", 2000, {"n2", "n3"}, {}, {}});
  auto first = Apply(b);
  EXPECT_EQ(first.impressions, 2u);
  EXPECT_EQ(first.clicks_joined, 1u);
  const auto before = store_->Counters();

  auto second = Apply(b);
  EXPECT_EQ(second.redelivered, 3u);
  EXPECT_EQ(second.impressions, 0u);
  EXPECT_TRUE(second.events.empty());
  const auto after = store_->Counters();
  EXPECT_EQ(after.impressions, before.impressions);
  EXPECT_EQ(after.clicks_joined, before.clicks_joined);
  EXPECT_EQ(after.applied_seq, before.applied_seq);
  EXPECT_EQ(store_->GetItemStats(*store_->FindItem("n2"))->impressions, 2u);

  // Also after a reopen (offsets are durable, not only in memory).
  Reopen();
  auto third = Apply(b);
  EXPECT_EQ(third.redelivered, 3u);
  EXPECT_EQ(store_->Counters().applied_seq, before.applied_seq);
}

TEST_F(EventStoreTest, ClickBeforeImpressionIsHeldThenJoined) {
  Batch early;
  early.Click(0, 0, {"i9", "carol", "n2", 5000})
      .Click(0, 1, {"i9", "carol", "n2", 5001});  // duplicate click
  auto out = Apply(early);
  EXPECT_EQ(out.clicks_pending, 1u);
  EXPECT_EQ(out.duplicates, 1u);
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(store_->Counters().clicks_pending, 1u);

  Reopen();  // held clicks survive a restart
  Batch late;
  late.Impression(1, 0, {"i9", "carol", 4000, {"n1", "n2", "n3"}, {}, {}});
  out = Apply(late);
  EXPECT_EQ(out.clicks_joined, 1u);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].clicked, (std::vector<uint16_t>{1}));
  EXPECT_EQ(store_->Counters().clicks_pending, 0u);
  EXPECT_EQ(store_->GetImpression("i9")->clicked, (std::vector<uint16_t>{1}));

  // Same batch: click first, then its impression.
  Batch same;
  same.Click(0, 2, {"i10", "carol", "n3", 7000})
      .Impression(0, 3, {"i10", "carol", 6000, {"n3", "n4"}, {}, {}});
  out = Apply(same);
  EXPECT_EQ(out.clicks_joined, 1u);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].clicked, (std::vector<uint16_t>{0}));
  EXPECT_EQ(store_->Counters().clicks_pending, 0u);
}

TEST_F(EventStoreTest, LateClickBecomesClickEvent) {
  Batch b;
  b.Impression(0, 0, {"i1", "alice", 1000, {"n1", "n2"}, {}, {}});
  Apply(b);
  Batch c;
  c.Click(0, 1, {"i1", "alice", "n2", 1200});
  auto out = Apply(c);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].kind, AppliedEvent::Kind::kClick);
  EXPECT_EQ(out.events[0].seq, 2u);
  EXPECT_EQ(out.events[0].clicked, (std::vector<uint16_t>{1}));
  EXPECT_EQ(out.events[0].ts_ms, 1200);
  auto log = store_->ReadApplied(1, 10);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[1], out.events[0]);
}

// The applied log is stored in segments of up to 64 events, and a click
// names its impression instead of copying its list: reading any range,
// before and after a reopen, gives back exactly the events ApplyBatch
// returned, clicks with their impression's user and list.
TEST_F(EventStoreTest, AppliedLogReadsBackEveryRangeAcrossSegments) {
  std::vector<AppliedEvent> applied;
  int64_t offset = 0;
  for (int batch = 0; batch < 4; ++batch) {
    Batch b;
    for (int i = 0; i < 50; ++i) {
      const int n = batch * 50 + i;
      const std::string id = "imp" + std::to_string(n);
      const std::string user = "u" + std::to_string(n % 7);
      std::vector<std::string> items;
      for (int k = 0; k < 3 + n % 5; ++k) {
        items.push_back("n" + std::to_string((n * 3 + k) % 40));
      }
      std::vector<std::string> inline_clicks;
      if (n % 3 == 0) inline_clicks.push_back(items[0]);
      b.Impression(0, offset++,
                   {id, user, 1000 + n, items, inline_clicks, {"h1"}});
      // A click in the same batch, and one on an impression of the
      // batch before (read from the store).
      b.Click(0, offset++, {id, user, items[1], 2000 + n});
      if (batch > 0) {
        const int old = n - 50;
        b.Click(0, offset++,
                {"imp" + std::to_string(old), "u" + std::to_string(old % 7),
                 "n" + std::to_string((old * 3 + 2) % 40), 3000 + n});
      }
    }
    ApplyOutcome out = Apply(b);
    EXPECT_EQ(out.dead_letters, 0u);
    applied.insert(applied.end(), out.events.begin(), out.events.end());
  }
  ASSERT_GT(applied.size(), 300u);  // several segments per batch
  for (int round = 0; round < 2; ++round) {
    for (uint64_t from : {1ul, 2ul, 63ul, 64ul, 65ul, 130ul, 200ul,
                          static_cast<uint64_t>(applied.size())}) {
      auto log = store_->ReadApplied(from, 77);
      ASSERT_TRUE(log.ok()) << log.status().ToString();
      const size_t want = std::min<size_t>(77, applied.size() - from + 1);
      ASSERT_EQ(log->size(), want) << "from " << from;
      for (size_t i = 0; i < want; ++i) {
        EXPECT_EQ((*log)[i], applied[from - 1 + i]) << "seq " << from + i;
      }
    }
    auto past_end = store_->ReadApplied(applied.size() + 1, 10);
    ASSERT_TRUE(past_end.ok());
    EXPECT_TRUE(past_end->empty());
    Reopen();
  }
}

// Joined clicks live in their impression's row: a click joined in a later
// batch shows in GetImpression, and the same click again is a duplicate,
// also after a reopen.
TEST_F(EventStoreTest, LateClicksJoinTheImpressionRowOnce) {
  Batch b;
  b.Impression(0, 0, {"i1", "alice", 1000, {"n1", "n2", "n3"}, {"n3"}, {}});
  b.Click(0, 1, {"i1", "alice", "n1", 1100});
  Apply(b);
  EXPECT_EQ(store_->GetImpression("i1")->clicked,
            (std::vector<uint16_t>{0, 2}));
  Reopen();
  Batch c;
  c.Click(0, 2, {"i1", "alice", "n2", 1200});
  c.Click(0, 3, {"i1", "alice", "n1", 1300});  // joined before
  auto out = Apply(c);
  EXPECT_EQ(out.clicks_joined, 1u);
  EXPECT_EQ(out.duplicates, 1u);
  EXPECT_EQ(store_->GetImpression("i1")->clicked,
            (std::vector<uint16_t>{0, 1, 2}));
  Reopen();
  Batch d;
  d.Click(0, 4, {"i1", "alice", "n2", 1400});
  EXPECT_EQ(Apply(d).duplicates, 1u);
  EXPECT_EQ(store_->Counters().clicks_joined, 2u);
}

// Lists encoded as varints of every width: item indexes past 2^7 and 2^14
// (two and three bytes), clicked positions past 127, lists of 300. The
// applied log, the impression rows (read back, and joined by a click of a
// later batch) and the item stats give back what was applied, also after
// a reopen.
TEST_F(EventStoreTest, LongListsAndLargeIndexesReadBackExactly) {
  constexpr int kImpressions = 60;
  constexpr int kListLength = 300;  // 18,000 distinct items in all
  std::vector<AppliedEvent> applied;
  int64_t offset = 0;
  for (int batch = 0; batch < 2; ++batch) {
    Batch b;
    for (int i = 0; i < kImpressions / 2; ++i) {
      const int n = batch * (kImpressions / 2) + i;
      std::vector<std::string> items;
      for (int k = 0; k < kListLength; ++k) {
        items.push_back("n" + std::to_string(n * kListLength + k));
      }
      b.Impression(0, offset++,
                   {"imp" + std::to_string(n),
                    "u" + std::to_string(n % 5),
                    1000 + n,
                    items,
                    {items[200 + n]},
                    {items[0], "h1"}});
      if (batch > 0) {
        // A click on an impression of the batch before, past position 127.
        const int old = n - kImpressions / 2;
        b.Click(0, offset++,
                {"imp" + std::to_string(old), "u" + std::to_string(old % 5),
                 "n" + std::to_string(old * kListLength + 250), 5000 + n});
      }
    }
    ApplyOutcome out = Apply(b);
    EXPECT_EQ(out.dead_letters, 0u);
    applied.insert(applied.end(), out.events.begin(), out.events.end());
  }
  ASSERT_EQ(applied.size(), kImpressions + kImpressions / 2);
  std::vector<ItemStats> want_stats(store_->NumItems());
  for (const AppliedEvent& e : applied) {
    if (e.kind == AppliedEvent::Kind::kImpression) {
      for (ItemIndex item : e.items) {
        ++want_stats[item].impressions;
        want_stats[item].last_impression_ms =
            std::max(want_stats[item].last_impression_ms, e.ts_ms);
      }
    }
    for (uint16_t pos : e.clicked) ++want_stats[e.items[pos]].clicks;
  }
  EXPECT_GT(want_stats.size(), 18000u);
  for (int round = 0; round < 2; ++round) {
    auto log = store_->ReadApplied(1, applied.size() + 1);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    ASSERT_EQ(*log, applied);
    for (int n = 0; n < kImpressions; ++n) {
      auto row = store_->GetImpression("imp" + std::to_string(n));
      ASSERT_TRUE(row.ok()) << row.status().ToString();
      ASSERT_EQ(row->items.size(), static_cast<size_t>(kListLength));
      EXPECT_EQ(store_->ItemId(row->items[kListLength - 1]),
                "n" + std::to_string(n * kListLength + kListLength - 1));
      std::vector<uint16_t> clicked = {static_cast<uint16_t>(200 + n)};
      if (n < kImpressions / 2) clicked.push_back(250);
      std::sort(clicked.begin(), clicked.end());
      EXPECT_EQ(row->clicked, clicked) << "imp" << n;
      EXPECT_EQ(row->history.size(), 2u);
    }
    auto stats = store_->AllItemStats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(*stats, want_stats);
    Reopen();
  }
}

// A data directory of format 1 is refused with a message that says what to
// do, and left as it was.
TEST(EventStoreFormat, RefusesFormatOneWithAClearMessage) {
  cfrec::testing::TempDir dir;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir.path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), "format", "cfrec-state-1").ok());
  }
  auto store = EventStore::Open(dir.path(), StoreOptions{});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  const std::string message = store.status().message();
  EXPECT_NE(message.find("cfrec-state-1"), std::string::npos) << message;
  EXPECT_NE(message.find("new data directory"), std::string::npos) << message;
  store = EventStore::Open(dir.path(), StoreOptions{});
  EXPECT_FALSE(store.ok());  // nothing was converted or overwritten
}

TEST_F(EventStoreTest, IdsSurviveReopenAndContinueInArrivalOrder) {
  Batch b;
  b.Impression(0, 0, {"i1", "u-a", 1, {"x", "y"}, {}, {}})
      .Impression(0, 1, {"i2", "u-b", 2, {"y", "z"}, {}, {}});
  Apply(b);
  Reopen();
  EXPECT_EQ(store_->FindUser("u-a"), 0u);
  EXPECT_EQ(store_->FindUser("u-b"), 1u);
  EXPECT_EQ(store_->FindItem("z"), 2u);
  EXPECT_EQ(store_->ItemId(1), "y");
  Batch more;
  more.Impression(0, 2, {"i3", "u-c", 3, {"w"}, {}, {}});
  Apply(more);
  EXPECT_EQ(store_->FindUser("u-c"), 2u);
  EXPECT_EQ(store_->FindItem("w"), 3u);
  EXPECT_EQ(store_->Counters().applied_seq, 3u);
}

TEST_F(EventStoreTest, BadMessagesBecomeDeadLettersWithReason) {
  Batch b;
  b.Add(0, 0, "{not json")
      .Add(0, 1,
           R"({"type":"impression","impression_id":"i1","user_id":"u","ts":1})")
      .Impression(0, 2, {"i2", "u", 10, {"a", "b"}, {}, {}})
      .Click(0, 3, {"i2", "mallory", "a", 11})  // wrong user
      .Click(0, 4, {"i2", "u", "zzz", 12});     // not in the list
  auto out = Apply(b);
  EXPECT_EQ(out.dead_letters, 4u);
  EXPECT_EQ(out.impressions, 1u);
  auto dl = store_->ReadDeadLetters(1, 10);
  ASSERT_TRUE(dl.ok());
  ASSERT_EQ(dl->size(), 4u);
  EXPECT_EQ((*dl)[0].reason, "invalid JSON");
  EXPECT_EQ((*dl)[0].payload, "{not json");
  EXPECT_EQ((*dl)[0].offset, 0);
  EXPECT_NE((*dl)[1].reason.find("'items': is required"), std::string::npos);
  EXPECT_NE((*dl)[2].reason.find("differs from the user"), std::string::npos);
  EXPECT_NE((*dl)[3].reason.find("'zzz' is not in impression"),
            std::string::npos);
  // The offsets still advance past bad messages: they are never re-read.
  EXPECT_EQ(store_->NextOffsets(kTopic).at(0), 5);
  // Unknown users named only by a rejected click get no id.
  EXPECT_FALSE(store_->FindUser("mallory").has_value());
}

TEST_F(EventStoreTest, DuplicateImpressionIdIsIgnored) {
  Batch b;
  b.Impression(0, 0, {"i1", "u", 10, {"a"}, {}, {}})
      .Impression(1, 0, {"i1", "u", 10, {"a"}, {}, {}});
  auto out = Apply(b);
  EXPECT_EQ(out.impressions, 1u);
  EXPECT_EQ(out.duplicates, 1u);
}

TEST_F(EventStoreTest, TimeOrderedQueries) {
  Batch b;
  b.Impression(0, 0, {"late", "u", 3000, {"a"}, {}, {}})
      .Impression(0, 1, {"early", "u", 1000, {"b"}, {"b"}, {}})
      .Impression(0, 2, {"other", "v", 2000, {"c"}, {}, {}});
  Apply(b);
  auto user = store_->UserImpressions(*store_->FindUser("u"), 0, 10000, 10);
  ASSERT_TRUE(user.ok());
  ASSERT_EQ(user->size(), 2u);
  EXPECT_EQ((*user)[0].impression_id, "early");
  EXPECT_EQ((*user)[0].clicked, (std::vector<uint16_t>{0}));
  EXPECT_EQ((*user)[1].impression_id, "late");
  auto window = store_->ImpressionsInWindow(1500, 3001, 10);
  ASSERT_TRUE(window.ok());
  ASSERT_EQ(window->size(), 2u);
  EXPECT_EQ((*window)[0].impression_id, "other");
  EXPECT_EQ((*window)[1].impression_id, "late");
  auto all = store_->AllItemStats();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[*store_->FindItem("b")], (ItemStats{1, 1, 1000}));
}

TEST_F(EventStoreTest, CheckpointsReplaceAtomically) {
  EXPECT_TRUE(store_->GetCheckpoint("model").status().IsNotFound());
  ASSERT_TRUE(store_->PutCheckpoint("model", std::string(1 << 20, 'a')).ok());
  ASSERT_TRUE(store_->PutCheckpoint("model", "v2").ok());
  Reopen();
  EXPECT_EQ(*store_->GetCheckpoint("model"), "v2");
}

TEST_F(EventStoreTest, ItemStatsSurviveReopenAcrossFlushes) {
  // 150 single-impression batches: crosses the periodic stats flush, so the
  // reopened store combines flushed values with the applied log after them.
  for (int i = 0; i < 150; ++i) {
    Batch b;
    b.Impression(0, i,
                 {"i" + std::to_string(i),
                  "u",
                  100 + i,
                  {"a", "b"},
                  i % 3 == 0 ? std::vector<std::string>{"b"}
                             : std::vector<std::string>{},
                  {}});
    Apply(b);
  }
  const auto before = *store_->AllItemStats();
  EXPECT_EQ(before[*store_->FindItem("a")], (ItemStats{150, 0, 249}));
  EXPECT_EQ(before[*store_->FindItem("b")], (ItemStats{150, 50, 249}));
  Reopen();
  EXPECT_EQ(*store_->AllItemStats(), before);
}

TEST_F(EventStoreTest, LogIdIsRecordedPerTopicAndSurvivesReopen) {
  EXPECT_EQ(*store_->LogId(kTopic), "");
  ASSERT_TRUE(store_->SetLogId(kTopic, "embedded:01", false).ok());
  ASSERT_TRUE(store_->SetLogId("other", "kafka:c1/other", false).ok());
  Reopen();
  EXPECT_EQ(*store_->LogId(kTopic), "embedded:01");
  EXPECT_EQ(*store_->LogId("other"), "kafka:c1/other");
  EXPECT_EQ(*store_->LogId("third"), "");
}

// The restart of the embedded broker: the stored offsets belong to the log
// of the previous start; the new log's messages start again at offset 0.
TEST_F(EventStoreTest, NewLogIdDiscardsTheTopicsOffsetsAndItsLogIsApplied) {
  ASSERT_TRUE(store_->SetLogId(kTopic, "embedded:01", false).ok());
  Batch old_log;
  old_log.Impression(0, 0, {"a1", "u", 10, {"n1", "n2"}, {}, {}})
      .Click(0, 1, {"a1", "u", "n1", 11})
      .Impression(0, 2, {"a2", "v", 12, {"n2"}, {}, {}})
      .Impression(1, 0, {"a3", "v", 13, {"n3"}, {}, {}});
  ASSERT_EQ(Apply(old_log).impressions, 3u);
  // Another topic's offsets are not touched.
  const std::string payload =
      SerializeEvent(ImpressionEvent{"x1", "w", 14, {"n9"}, {}, {}});
  std::vector<ConsumedMessage> other = {{"other", 0, 40, "", payload}};
  ASSERT_TRUE(store_->ApplyBatch(other).ok());

  ASSERT_TRUE(store_->SetLogId(kTopic, "embedded:02", true).ok());
  EXPECT_TRUE(store_->NextOffsets(kTopic).empty());
  EXPECT_EQ(store_->NextOffsets("other"),
            (std::map<int32_t, int64_t>{{0, 41}}));
  Reopen();  // one durable write: id and offsets together
  EXPECT_EQ(*store_->LogId(kTopic), "embedded:02");
  EXPECT_TRUE(store_->NextOffsets(kTopic).empty());
  EXPECT_EQ(store_->NextOffsets("other").at(0), 41);

  // The new log: one event already stored (re-sent), then new ones at the
  // offsets the old log had used.
  Batch new_log;
  new_log.Impression(0, 0, {"a2", "v", 12, {"n2"}, {}, {}})
      .Impression(0, 1, {"b1", "u", 20, {"n1", "n4"}, {}, {}})
      .Click(0, 2, {"b1", "u", "n4", 21})
      .Impression(1, 0, {"b2", "v", 22, {"n3"}, {}, {}});
  auto out = Apply(new_log);
  EXPECT_EQ(out.redelivered, 0u);
  EXPECT_EQ(out.impressions, 2u);
  EXPECT_EQ(out.clicks_joined, 1u);
  EXPECT_EQ(out.duplicates, 1u);  // a2, recognised by its impression id
  const auto c = store_->Counters();
  EXPECT_EQ(c.impressions, 6u);  // a1 a2 a3, x1 (other topic), b1 b2
  EXPECT_EQ(c.clicks_joined, 2u);
  EXPECT_EQ(store_->NextOffsets(kTopic),
            (std::map<int32_t, int64_t>{{0, 3}, {1, 1}}));
}

TEST_F(EventStoreTest, DiscardOffsetsForgetsOnlyTheGivenPartitions) {
  Batch b;
  b.Impression(0, 100, {"i1", "u", 10, {"n1"}, {}, {}})
      .Impression(1, 200, {"i2", "u", 11, {"n1"}, {}, {}})
      .Impression(2, 300, {"i3", "u", 12, {"n1"}, {}, {}});
  Apply(b);
  const std::vector<int32_t> restarted = {0, 2};
  ASSERT_TRUE(store_->DiscardOffsets(kTopic, restarted).ok());
  EXPECT_EQ(store_->NextOffsets(kTopic),
            (std::map<int32_t, int64_t>{{1, 201}}));
  Reopen();
  EXPECT_EQ(store_->NextOffsets(kTopic),
            (std::map<int32_t, int64_t>{{1, 201}}));
  // Partition 0 is read from its start again; partition 1 still skips.
  Batch again;
  again.Impression(0, 0, {"i4", "u", 13, {"n1"}, {}, {}})
      .Impression(1, 0, {"i5", "u", 14, {"n1"}, {}, {}});
  auto out = Apply(again);
  EXPECT_EQ(out.impressions, 1u);
  EXPECT_EQ(out.redelivered, 1u);
}

TEST(AppliedEventCoding, RoundTrips) {
  AppliedEvent e{123456789,       AppliedEvent::Kind::kClick,
                 70000,           1573568086000,
                 {1, 300, 70000}, {2},
                 {5, 5}};
  auto d = DecodeAppliedEvent(EncodeAppliedEvent(e));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, e);
  EXPECT_FALSE(DecodeAppliedEvent("\xff").ok());
}

}  // namespace
}  // namespace cfrec::state

namespace cfrec::state {
namespace {

// Thousands of ids across batches: the dictionary's table grows several
// times, and every id must map back to itself before and after reopen, with
// indexes in arrival order.
// Known and new ids mixed in a list and its history, ids shared between the
// two: indexes are assigned in order of first appearance (list, then
// history), and the stored row, the applied events and later clicks (in the
// same batch and the next) all see the list as sent.
TEST_F(EventStoreTest, ListsMixingKnownAndNewIdsKeepTheirOrder) {
  Batch first;
  first.Impression(0, 0, {"i1", "u", 1000, {"a", "b", "c"}, {}, {}});
  Apply(first);
  Batch second;
  second
      .Impression(
          0, 1,
          {"i2", "u", 2000, {"c", "x", "a", "y"}, {"x"}, {"y", "b", "z", "x"}})
      .Click(0, 2, {"i2", "u", "y", 2001});
  const ApplyOutcome out = Apply(second);
  EXPECT_EQ(store_->FindItem("x"), 3u);
  EXPECT_EQ(store_->FindItem("y"), 4u);
  EXPECT_EQ(store_->FindItem("z"), 5u);
  ASSERT_EQ(out.events.size(), 2u);
  const std::vector<std::string> list = {"c", "x", "a", "y"};
  EXPECT_EQ(ItemNames(out.events[0].items), list);
  EXPECT_EQ(ItemNames(out.events[0].history),
            (std::vector<std::string>{"y", "b", "z", "x"}));
  EXPECT_EQ(out.events[0].clicked, (std::vector<uint16_t>{1}));
  EXPECT_EQ(ItemNames(out.events[1].items), list);
  EXPECT_EQ(out.events[1].clicked, (std::vector<uint16_t>{3}));
  Batch third;
  third.Click(0, 3, {"i2", "u", "a", 2002});
  const ApplyOutcome late = Apply(third);
  ASSERT_EQ(late.events.size(), 1u);
  EXPECT_EQ(ItemNames(late.events[0].items), list);
  EXPECT_EQ(late.events[0].clicked, (std::vector<uint16_t>{2}));
  const auto check = [&] {
    auto row = store_->GetImpression("i2");
    ASSERT_TRUE(row.ok()) << row.status().ToString();
    EXPECT_EQ(ItemNames(row->items), list);
    EXPECT_EQ(ItemNames(row->history),
              (std::vector<std::string>{"y", "b", "z", "x"}));
    EXPECT_EQ(row->clicked, (std::vector<uint16_t>{1, 2, 3}));
  };
  check();
  Reopen();
  check();
}

TEST_F(EventStoreTest, ManyIdsRoundTripThroughGrowthAndReopen) {
  constexpr int kBatches = 4;
  constexpr int kPerBatch = 300;
  constexpr int kItemsPerList = 10;
  int64_t offset = 0;
  for (int b = 0; b < kBatches; ++b) {
    Batch batch;
    for (int i = 0; i < kPerBatch; ++i) {
      const int n = b * kPerBatch + i;
      ImpressionEvent e;
      e.impression_id = "imp-" + std::to_string(n);
      e.user_id = "user-" + std::to_string(n % 997);
      e.ts_ms = 1000 + n;
      // Each list shares half its items with the previous list.
      for (int k = 0; k < kItemsPerList; ++k) {
        e.items.push_back("item-" + std::to_string(n * kItemsPerList / 2 + k));
      }
      e.clicks.push_back(e.items[n % kItemsPerList]);
      batch.Impression(0, offset++, e);
    }
    EXPECT_EQ(Apply(batch).impressions, static_cast<size_t>(kPerBatch));
  }
  const int total = kBatches * kPerBatch;
  const size_t items =
      static_cast<size_t>((total - 1) * kItemsPerList / 2 + kItemsPerList);
  const auto check = [&] {
    ASSERT_EQ(store_->NumItems(), items);
    ASSERT_EQ(store_->NumUsers(), 997u);
    for (size_t i = 0; i < items; ++i) {
      const std::string id = "item-" + std::to_string(i);
      ASSERT_EQ(store_->FindItem(id), std::optional<ItemIndex>(i)) << id;
      ASSERT_EQ(store_->ItemId(static_cast<ItemIndex>(i)), id);
    }
    for (int u = 0; u < 997; ++u) {
      const std::string id = "user-" + std::to_string(u);
      ASSERT_EQ(store_->FindUser(id), std::optional<UserIndex>(u)) << id;
    }
    EXPECT_FALSE(store_->FindItem("item-" + std::to_string(items)));
    auto stats = store_->AllItemStats();
    ASSERT_TRUE(stats.ok());
    ASSERT_EQ(stats->size(), items);
    uint64_t impressions = 0, clicks = 0;
    for (const auto& s : *stats) {
      impressions += s.impressions;
      clicks += s.clicks;
    }
    EXPECT_EQ(impressions, static_cast<uint64_t>(total * kItemsPerList));
    EXPECT_EQ(clicks, static_cast<uint64_t>(total));
  };
  check();
  Reopen();
  check();
}

}  // namespace
}  // namespace cfrec::state
