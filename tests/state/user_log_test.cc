// The impression indexes written per window (format 3,
// state/src/impression_index.h): a user's impressions, and all impressions
// in a time window, come back in the order and with the limits format 2's
// rows per impression gave them, whether they sit in the open window, in
// closed windows' rows, in format-2 rows of an upgraded store, or in any
// mix; across reopen and with the pipelined apply. (While the store is being
// written: user_log_concurrent_test.cc.)
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kTopic = "events";

struct Sent {
  std::string user_id;
  int64_t ts_ms;
  std::string impression_id;
};

// A stream of small batches: impressions of a few users with many equal
// times and ids whose byte order is not their numeric order, repeated
// impressions, and clicks.
class Stream {
 public:
  // `rising`: each new impression's ts is later than every earlier one's.
  explicit Stream(uint32_t seed, bool rising = false)
      : rng_(seed), rising_(rising) {}

  // The next batch; its impressions (the first time each id is sent) are
  // added to `sent`.
  std::vector<std::string> NextBatch(std::vector<Sent>* sent) {
    std::vector<std::string> payloads;
    const int n = std::uniform_int_distribution<int>(1, 7)(rng_);
    for (int k = 0; k < n; ++k) {
      const int kind = std::uniform_int_distribution<int>(0, 9)(rng_);
      if (kind < 7 || ids_.empty()) {
        ImpressionEvent e;
        e.impression_id = "i" + std::to_string(next_id_++);
        e.user_id = "u" + std::to_string(
                              std::uniform_int_distribution<int>(0, 6)(rng_));
        e.ts_ms = rising_ ? static_cast<int64_t>(next_id_) * 10
                          : std::uniform_int_distribution<int64_t>(0, 40)(rng_);
        e.items = {"a", "b", "c"};
        payloads.push_back(SerializeEvent(e));
        ids_.push_back(e);
        sent->push_back({e.user_id, e.ts_ms, e.impression_id});
      } else {
        const ImpressionEvent& e = ids_[std::uniform_int_distribution<size_t>(
            0, ids_.size() - 1)(rng_)];
        if (kind == 7) {
          payloads.push_back(SerializeEvent(e));  // a repeat
        } else {
          payloads.push_back(SerializeEvent(
              ClickEvent{e.impression_id, e.user_id, "b", e.ts_ms + 1}));
        }
      }
    }
    return payloads;
  }

 private:
  std::mt19937 rng_;
  bool rising_;
  uint64_t next_id_ = 1;
  std::vector<ImpressionEvent> ids_;
};

std::vector<ConsumedMessage> Messages(const std::vector<std::string>& payloads,
                                      int64_t* offset) {
  std::vector<ConsumedMessage> out;
  for (const auto& p : payloads) out.push_back({kTopic, 0, (*offset)++, "", p});
  return out;
}

// What format 2 answered: the user's rows in key order (ts as BE64, then the
// id's bytes), from `from_ms` (at least 0) up to `to_ms`, at most `limit`.
// An empty `user`: every user's (format 2's time_index).
std::vector<std::string> Expected(const std::vector<Sent>& sent,
                                  std::string_view user, int64_t from_ms,
                                  int64_t to_ms, size_t limit) {
  std::vector<const Sent*> rows;
  for (const Sent& s : sent) {
    if ((user.empty() || s.user_id == user) &&
        s.ts_ms >= std::max<int64_t>(from_ms, 0) && s.ts_ms < to_ms) {
      rows.push_back(&s);
    }
  }
  std::sort(rows.begin(), rows.end(), [](const Sent* a, const Sent* b) {
    return std::tie(a->ts_ms, a->impression_id) <
           std::tie(b->ts_ms, b->impression_id);
  });
  std::vector<std::string> ids;
  for (size_t i = 0; i < rows.size() && i < limit; ++i) {
    ids.push_back(rows[i]->impression_id);
  }
  return ids;
}

// Every user's impressions, and every user's together, whole and in part,
// against Expected.
void ExpectSameAnswers(const EventStore& store, const std::vector<Sent>& sent) {
  struct Query {
    int64_t from_ms, to_ms;
    size_t limit;
  };
  const Query queries[] = {{std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max(), 10000},
                           {0, 41, 3},
                           {10, 30, 100},
                           {20, 20, 100},
                           {25, 26, 1}};
  for (const Query& q : queries) {
    auto got = store.ImpressionsInWindow(q.from_ms, q.to_ms, q.limit);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    std::vector<std::string> ids;
    for (const auto& imp : *got) ids.push_back(imp.impression_id);
    EXPECT_EQ(ids, Expected(sent, "", q.from_ms, q.to_ms, q.limit))
        << "all users [" << q.from_ms << ", " << q.to_ms << ") limit "
        << q.limit;
  }
  for (int u = 0; u <= 6; ++u) {
    const std::string user_id = "u" + std::to_string(u);
    const auto user = store.FindUser(user_id);
    if (!user.has_value()) continue;
    for (const Query& q : queries) {
      auto got = store.UserImpressions(*user, q.from_ms, q.to_ms, q.limit);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      std::vector<std::string> ids;
      for (const auto& imp : *got) {
        ids.push_back(imp.impression_id);
        EXPECT_EQ(imp.user, *user);
      }
      EXPECT_EQ(ids, Expected(sent, user_id, q.from_ms, q.to_ms, q.limit))
          << user_id << " [" << q.from_ms << ", " << q.to_ms << ") limit "
          << q.limit;
    }
  }
}

// Each user's newest impressions, when newer impressions have later times
// (so the newest by window are the latest by time): the last `limit` of the
// user's impressions in time order.
void ExpectNewest(const EventStore& store, const std::vector<Sent>& sent) {
  for (int u = 0; u <= 6; ++u) {
    const std::string user_id = "u" + std::to_string(u);
    const auto user = store.FindUser(user_id);
    if (!user.has_value()) continue;
    const std::vector<std::string> all =
        Expected(sent, user_id, 0, std::numeric_limits<int64_t>::max(),
                 std::numeric_limits<size_t>::max());
    for (const size_t limit : {size_t{1}, size_t{2}, size_t{7}, size_t{1000}}) {
      auto got = store.RecentUserImpressions(*user, limit);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      std::vector<std::string> ids;
      for (const auto& imp : *got) {
        ids.push_back(imp.impression_id);
        EXPECT_EQ(imp.user, *user);
      }
      const size_t n = std::min(limit, all.size());
      EXPECT_EQ(ids, std::vector<std::string>(all.end() - n, all.end()))
          << user_id << " newest " << limit;
    }
  }
}

Result<std::unique_ptr<EventStore>> Open(const std::string& dir,
                                         size_t window) {
  StoreOptions options;
  options.user_log_window = window;
  return EventStore::Open(dir, options);
}

// Applies 60 batches of Stream(seed, rising) to a store with a user log
// window of `window`, one at a time and again pipelined, checking the store
// against what was sent after every batch and after a reopen every 17
// batches (`check`), and after the last batch (`last_check`, if any).
void ApplyEveryBatchAndReopen(
    size_t window, uint32_t seed, bool rising,
    const std::function<void(const EventStore&, const std::vector<Sent>&)>&
        check,
    const std::function<void(const EventStore&, const std::vector<Sent>&)>&
        last_check = nullptr) {
  for (const bool pipelined : {false, true}) {
    cfrec::testing::TempDir dir;
    auto store = Open(dir.path(), window);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    Stream stream(seed, rising);
    std::vector<Sent> sent;
    std::vector<std::vector<std::string>> kept;  // messages of the batch in
                                                 // flight must stay valid
    int64_t offset = 0;
    for (int batch = 0; batch < 60; ++batch) {
      kept.push_back(stream.NextBatch(&sent));
      const auto msgs = Messages(kept.back(), &offset);
      if (pipelined) {
        ASSERT_TRUE((*store)->SubmitBatch(msgs).ok());
        ASSERT_TRUE((*store)->CompleteBatch().ok());
      } else {
        ASSERT_TRUE((*store)->ApplyBatch(msgs).ok());
      }
      check(**store, sent);
      if (batch % 17 == 16) {
        store->reset();
        store = Open(dir.path(), window);
        ASSERT_TRUE(store.ok()) << store.status().ToString();
        check(**store, sent);
      }
    }
    if (last_check) last_check(**store, sent);
  }
}

class UserLogTest : public ::testing::TestWithParam<size_t> {};

// Windows of 1 (every batch closes one), 5 (a window spans a few batches)
// and 100,000 (none closes): the same answers after every batch, applied one
// at a time or pipelined, and across reopen (the open window comes back from
// its tail rows).
TEST_P(UserLogTest, AnswersAsFormatTwoAfterEveryBatchAndReopen) {
  ApplyEveryBatchAndReopen(GetParam(), 7, /*rising=*/false, ExpectSameAnswers);
}

// With two batches staged at once (one written while the next is built),
// what is published in the end is the same.
TEST_P(UserLogTest, PipelinedBatchesInFlightGiveTheSameAnswers) {
  cfrec::testing::TempDir dir;
  auto store = Open(dir.path(), GetParam());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Stream stream(11);
  std::vector<Sent> sent;
  std::vector<std::vector<std::string>> kept;
  std::vector<std::vector<ConsumedMessage>> msgs;
  int64_t offset = 0;
  for (int batch = 0; batch < 50; ++batch) {
    kept.push_back(stream.NextBatch(&sent));
    msgs.push_back(Messages(kept.back(), &offset));
  }
  for (const auto& m : msgs) ASSERT_TRUE((*store)->SubmitBatch(m).ok());
  ASSERT_TRUE((*store)->CompleteBatch().ok());
  ExpectSameAnswers(**store, sent);
  store->reset();
  store = Open(dir.path(), GetParam());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ExpectSameAnswers(**store, sent);
}

// A user's newest impressions come from the open window and the newest
// closed windows' rows, the same after every batch, pipelined or not, and
// across reopen.
TEST_P(UserLogTest, NewestImpressionsOfAUserAfterEveryBatchAndReopen) {
  ApplyEveryBatchAndReopen(GetParam(), 5, /*rising=*/true, ExpectNewest,
                           ExpectSameAnswers);
}

INSTANTIATE_TEST_SUITE_P(Windows, UserLogTest,
                         ::testing::Values(size_t{1}, size_t{5},
                                           size_t{100000}));

// Opens the store's RocksDB directly, with every column family.
struct RawDb {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::vector<std::string> names;

  explicit RawDb(const std::string& dir) {
    rocksdb::Options options;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(options, dir, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const auto& n : names) families.emplace_back(n, options);
    rocksdb::DB* raw = nullptr;
    EXPECT_TRUE(rocksdb::DB::Open(options, dir, families, &handles, &raw).ok());
    db.reset(raw);
  }
  ~RawDb() {
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  }
  rocksdb::ColumnFamilyHandle* cf(std::string_view name) const {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) return handles[i];
    }
    ADD_FAILURE() << "no column family " << name;
    return nullptr;
  }
};

std::string BE(uint64_t v, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  return out;
}

// A format-2 store (one user_log and one time_index row per impression)
// opens with a message saying it was upgraded, answers as before, and keeps
// doing so once format-3 rows are written next to its rows.
TEST(UserLogFormat, FormatTwoStoreIsUpgradedAndReadAsItIs) {
  cfrec::testing::TempDir dir;
  Stream stream(3);
  std::vector<Sent> sent;
  std::vector<std::vector<std::string>> kept;
  int64_t offset = 0;
  std::map<std::string, UserIndex> users;
  {
    auto store = Open(dir.path(), 4);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int batch = 0; batch < 20; ++batch) {
      kept.push_back(stream.NextBatch(&sent));
      ASSERT_TRUE((*store)->ApplyBatch(Messages(kept.back(), &offset)).ok());
    }
    for (const Sent& s : sent)
      users[s.user_id] = *(*store)->FindUser(s.user_id);
  }
  {
    // Rewrite the user log as format 2 wrote it.
    RawDb raw(dir.path());
    rocksdb::ColumnFamilyHandle* log = raw.cf("user_log");
    rocksdb::ColumnFamilyHandle* meta = raw.cf("default");
    rocksdb::WriteBatch wb;
    std::unique_ptr<rocksdb::Iterator> it(
        raw.db->NewIterator(rocksdb::ReadOptions(), log));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ASSERT_TRUE(wb.Delete(log, it->key()).ok());
    }
    it.reset(raw.db->NewIterator(rocksdb::ReadOptions(), meta));
    for (it->Seek("user_log_tail");
         it->Valid() && it->key().starts_with("user_log_tail"); it->Next()) {
      ASSERT_TRUE(wb.Delete(meta, it->key()).ok());
    }
    it.reset();
    rocksdb::ColumnFamilyHandle* time = raw.cf("time_index");
    it.reset(raw.db->NewIterator(rocksdb::ReadOptions(), time));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ASSERT_TRUE(wb.Delete(time, it->key()).ok());
    }
    it.reset();
    for (const Sent& s : sent) {
      ASSERT_TRUE(
          wb.Put(time, BE(static_cast<uint64_t>(s.ts_ms), 8) + s.impression_id,
                 BE(users.at(s.user_id), 4))
              .ok());
      ASSERT_TRUE(wb.Put(log,
                         BE(users.at(s.user_id), 4) +
                             BE(static_cast<uint64_t>(s.ts_ms), 8) +
                             s.impression_id,
                         "")
                      .ok());
    }
    ASSERT_TRUE(wb.Put(meta, "format", "cfrec-state-2").ok());
    ASSERT_TRUE(raw.db->Write(rocksdb::WriteOptions(), &wb).ok());
  }
  ::testing::internal::CaptureStderr();
  auto store = Open(dir.path(), 4);
  const std::string note = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_NE(note.find("upgraded from format 'cfrec-state-2' to "
                      "'cfrec-state-3'"),
            std::string::npos)
      << note;
  ExpectSameAnswers(**store, sent);
  {
    // Only format-2 rows: the newest are the latest by time.
    for (const auto& [user_id, user] : users) {
      const std::vector<std::string> all =
          Expected(sent, user_id, 0, std::numeric_limits<int64_t>::max(),
                   std::numeric_limits<size_t>::max());
      for (const size_t limit : {size_t{1}, size_t{3}, size_t{1000}}) {
        auto got = (*store)->RecentUserImpressions(user, limit);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        std::vector<std::string> ids;
        for (const auto& imp : *got) ids.push_back(imp.impression_id);
        const size_t n = std::min(limit, all.size());
        EXPECT_EQ(ids, std::vector<std::string>(all.end() - n, all.end()))
            << user_id << " newest " << limit;
      }
    }
  }
  for (int batch = 0; batch < 20; ++batch) {
    kept.push_back(stream.NextBatch(&sent));
    ASSERT_TRUE((*store)->ApplyBatch(Messages(kept.back(), &offset)).ok());
    ExpectSameAnswers(**store, sent);
  }
  // Format-3 rows next to format-2 rows: a limit above the user's count
  // gives all of them.
  for (const auto& [user_id, user] : users) {
    auto got = (*store)->RecentUserImpressions(user, 1000);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    std::vector<std::string> ids;
    for (const auto& imp : *got) ids.push_back(imp.impression_id);
    EXPECT_EQ(ids, Expected(sent, user_id, 0,
                            std::numeric_limits<int64_t>::max(), 1000))
        << user_id;
  }
  store->reset();
  ::testing::internal::CaptureStderr();
  store = Open(dir.path(), 4);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");  // once only
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ExpectSameAnswers(**store, sent);
}

}  // namespace
}  // namespace cfrec::state
