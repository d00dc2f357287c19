// The ingest loop against an in-memory MessageSource (no broker): the
// Ingestor thread applies batches while other threads read the store, as the
// learner and the HTTP server do. Runs under the tsan preset (librdkafka's
// own threads are invisible to ThreadSanitizer, so the Kafka tests are not).
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cfrec/ingest/ingestor.h"
#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

namespace cfrec::ingest {
namespace {

// Serves a fixed list of messages from the assigned offsets on.
class FakeSource : public MessageSource {
 public:
  explicit FakeSource(std::vector<SourceMessage> log, std::string log_id = "")
      : log_(std::move(log)), log_id_(std::move(log_id)) {}
  Status Assign(const std::map<int32_t, int64_t>& next) override {
    auto it = next.find(0);
    pos_ = it == next.end() ? 0 : static_cast<size_t>(it->second);
    return Status::Ok();
  }
  Status Poll(size_t max, std::chrono::milliseconds,
              std::vector<SourceMessage>* out) override {
    for (size_t n = 0; n < max && pos_ < log_.size(); ++n) {
      out->push_back(log_[pos_++]);
    }
    return Status::Ok();
  }
  Result<std::map<int32_t, int64_t>> HighWatermarks() override {
    return std::map<int32_t, int64_t>{{0, static_cast<int64_t>(log_.size())}};
  }
  uint64_t gap_messages() const override { return 0; }
  Result<std::string> LogId() override { return log_id_; }

 private:
  std::vector<SourceMessage> log_;
  std::string log_id_;
  size_t pos_ = 0;
};

// `impressions` impressions imp<first>.., a click on every third.
std::vector<SourceMessage> MakeLog(int impressions, int first = 0) {
  std::vector<SourceMessage> log;
  for (int i = first; i < first + impressions; ++i) {
    const std::string user = "u" + std::to_string(i % 37);
    const std::string imp = "imp" + std::to_string(i);
    ImpressionEvent e{
        imp,
        user,
        1000 + i,
        {"n" + std::to_string(i % 101), "n" + std::to_string(i % 53 + 200)},
        {},
        {}};
    log.push_back(
        {"t", 0, static_cast<int64_t>(log.size()), user, SerializeEvent(e)});
    if (i % 3 == 0) {
      log.push_back(
          {"t", 0, static_cast<int64_t>(log.size()), user,
           SerializeEvent(ClickEvent{imp, user, e.items[1], 1001 + i})});
    }
  }
  return log;
}

TEST(Ingestor, AppliesWhileOtherThreadsReadTheStore) {
  cfrec::testing::TempDir dir;
  auto store = state::EventStore::Open(dir.path(), {});
  ASSERT_TRUE(store.ok());
  const auto log = MakeLog(3000);
  const size_t expected_events = 3000 + 1000;

  std::mutex mu;
  std::condition_variable cv;
  size_t applied = 0;
  uint64_t last_seq = 0;
  bool in_order = true;
  IngestorOptions options;
  options.topic = "t";
  options.max_batch = 100;
  Ingestor ingestor(options, std::make_unique<FakeSource>(log), store->get(),
                    [&](std::vector<state::AppliedEvent>&& events) {
                      std::lock_guard lock(mu);
                      for (const auto& e : events) {
                        in_order = in_order && e.seq == last_seq + 1;
                        last_seq = e.seq;
                      }
                      applied += events.size();
                      cv.notify_all();
                    });

  std::atomic<bool> done{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        const auto c = (*store)->Counters();
        // Published ids are always resolvable, both ways.
        const size_t users = (*store)->NumUsers();
        if (users > 0) {
          const std::string id = (*store)->UserId(users - 1);
          EXPECT_EQ((*store)->FindUser(id), users - 1);
        }
        auto stats = (*store)->AllItemStats();
        EXPECT_TRUE(stats.ok());
        EXPECT_LE(c.clicks_joined, c.impressions);
      }
    });
  }
  ASSERT_TRUE(ingestor.Start().ok());
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60),
                            [&] { return applied >= expected_events; }));
  }
  ingestor.Stop();
  done = true;
  for (auto& t : readers) t.join();

  EXPECT_TRUE(in_order);
  const auto st = ingestor.Stats();
  EXPECT_EQ(st.messages, log.size());
  EXPECT_EQ(st.impressions, 3000u);
  EXPECT_EQ(st.clicks_joined, 1000u);
  EXPECT_EQ((*store)->NextOffsets("t").at(0), static_cast<int64_t>(log.size()));
  EXPECT_EQ((*store)->NumUsers(), 37u);
}

// Drains the source on the caller's thread.
void RunToEnd(Ingestor& ingestor) {
  ASSERT_TRUE(ingestor.Assign().ok());
  while (true) {
    auto n = ingestor.RunOnce();
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
  }
}

TEST(Ingestor, RestartResumesAtTheStoredOffsets) {
  cfrec::testing::TempDir dir;
  const auto log = MakeLog(500);
  IngestorOptions options;
  options.topic = "t";
  options.max_batch = 64;
  {
    // The first process saw only part of the log before it stopped.
    auto store = state::EventStore::Open(dir.path(), {});
    ASSERT_TRUE(store.ok());
    Ingestor ingestor(options,
                      std::make_unique<FakeSource>(std::vector<SourceMessage>(
                          log.begin(), log.begin() + 300)),
                      store->get(), nullptr);
    RunToEnd(ingestor);
    EXPECT_EQ((*store)->NextOffsets("t").at(0), 300);
  }
  auto store = state::EventStore::Open(dir.path(), {});
  ASSERT_TRUE(store.ok());
  Ingestor ingestor(options, std::make_unique<FakeSource>(log), store->get(),
                    nullptr);
  RunToEnd(ingestor);
  const auto st = ingestor.Stats();
  EXPECT_EQ(st.messages, log.size() - 300);  // resumed, not re-read
  EXPECT_EQ(st.redelivered, 0u);
  EXPECT_EQ((*store)->Counters().impressions, 500u);
  EXPECT_EQ((*store)->Counters().clicks_joined, 167u);
  EXPECT_EQ((*store)->Counters().duplicates, 0u);
}

// The embedded broker restarted: its new log numbers its messages from 0
// again while the store holds the old log's offsets. 700 new messages at
// offsets 0..699 lie partly below the stored 400, which the store would
// skip as redelivered if the offsets were kept.
TEST(Ingestor, NewLogOverAnExistingStoreIsReadFromItsStart) {
  cfrec::testing::TempDir dir;
  IngestorOptions options;
  options.topic = "t";
  options.max_batch = 64;
  const auto first = MakeLog(300);        // 400 messages
  const auto second = MakeLog(525, 300);  // 700 messages
  {
    auto store = state::EventStore::Open(dir.path(), {});
    ASSERT_TRUE(store.ok());
    options.log_id = "embedded:01";
    Ingestor ingestor(options, std::make_unique<FakeSource>(first),
                      store->get(), nullptr);
    RunToEnd(ingestor);
    EXPECT_EQ((*store)->NextOffsets("t").at(0), 400);
  }
  auto store = state::EventStore::Open(dir.path(), {});
  ASSERT_TRUE(store.ok());
  options.log_id = "embedded:02";
  Ingestor ingestor(options, std::make_unique<FakeSource>(second), store->get(),
                    nullptr);
  RunToEnd(ingestor);
  const auto st = ingestor.Stats();
  EXPECT_EQ(st.log_changes, 1u);
  EXPECT_EQ(st.redelivered, 0u);
  EXPECT_EQ(st.messages, second.size());
  EXPECT_EQ((*store)->Counters().impressions, 825u);
  EXPECT_EQ((*store)->Counters().clicks_joined, 100u + 175u);
  EXPECT_EQ(*(*store)->LogId("t"), "embedded:02");
  ASSERT_TRUE(ingestor.UpdateLag().ok());
  EXPECT_EQ(ingestor.Stats().consumer_lag, 0);
}

// Offsets stored before log ids were kept: with the embedded broker they
// cannot be its log's; from a real cluster they are taken to be.
TEST(Ingestor, OffsetsWithoutLogIdAreDiscardedOnlyWhenAsked) {
  for (bool discard : {true, false}) {
    SCOPED_TRACE(discard ? "embedded" : "cluster");
    cfrec::testing::TempDir dir;
    IngestorOptions options;
    options.topic = "t";
    const auto log = MakeLog(30);  // 40 messages
    auto store = state::EventStore::Open(dir.path(), {});
    ASSERT_TRUE(store.ok());
    {
      Ingestor ingestor(options, std::make_unique<FakeSource>(log),
                        store->get(), nullptr);
      RunToEnd(ingestor);
      EXPECT_EQ(*(*store)->LogId("t"), "");  // the source has no id
    }
    options.log_id = "log-1";
    options.discard_unidentified_offsets = discard;
    Ingestor ingestor(options, std::make_unique<FakeSource>(log), store->get(),
                      nullptr);
    RunToEnd(ingestor);
    EXPECT_EQ(*(*store)->LogId("t"), "log-1");
    const auto st = ingestor.Stats();
    EXPECT_EQ(st.log_changes, discard ? 1u : 0u);
    EXPECT_EQ(st.messages, discard ? log.size() : 0u);
    // Re-read or not, nothing is stored twice.
    EXPECT_EQ((*store)->Counters().impressions, 30u);
    EXPECT_EQ((*store)->Counters().clicks_joined, 10u);
    EXPECT_EQ(st.duplicates, discard ? 40u : 0u);
  }
}

// Same log id, but the log is shorter than the stored offset (the topic was
// recreated): read again from its start, counted as a restart, not a loss;
// the lag is never negative.
TEST(Ingestor, StoredOffsetPastTheEndOfTheLogRestartsThePartition) {
  cfrec::testing::TempDir dir;
  IngestorOptions options;
  options.topic = "t";
  auto store = state::EventStore::Open(dir.path(), {});
  ASSERT_TRUE(store.ok());
  {
    Ingestor ingestor(options,
                      std::make_unique<FakeSource>(MakeLog(300), "kafka:c1/t"),
                      store->get(), nullptr);
    RunToEnd(ingestor);
  }
  const auto shorter = MakeLog(60, 1000);  // 80 messages
  Ingestor ingestor(options,
                    std::make_unique<FakeSource>(shorter, "kafka:c1/t"),
                    store->get(), nullptr);
  // Before Assign, the stored 400 is past the log's 80: no negative lag.
  ASSERT_TRUE(ingestor.UpdateLag().ok());
  EXPECT_EQ(ingestor.Stats().consumer_lag, 0);
  RunToEnd(ingestor);
  const auto st = ingestor.Stats();
  EXPECT_EQ(st.partition_restarts, 1u);
  EXPECT_EQ(st.log_changes, 0u);
  EXPECT_EQ(st.gap_messages, 0u);
  EXPECT_EQ(st.messages, shorter.size());
  EXPECT_EQ((*store)->Counters().impressions, 360u);
  EXPECT_EQ((*store)->NextOffsets("t").at(0), 80);
  ASSERT_TRUE(ingestor.UpdateLag().ok());
  EXPECT_EQ(ingestor.Stats().consumer_lag, 0);
}

// A source whose broker has gone away: it cannot be asked for watermarks,
// but remembers those it last saw, and says since when it is unreachable.
class UnreachableSource : public FakeSource {
 public:
  using FakeSource::FakeSource;
  Result<std::map<int32_t, int64_t>> HighWatermarks() override {
    return Status::Unavailable("Kafka unreachable");
  }
  std::map<int32_t, int64_t> CachedHighWatermarks() const override {
    return {{0, 55}};
  }
  BrokerHealth Health() const override {
    BrokerHealth h;
    h.brokers_up = 0;
    h.unreachable_since =
        std::chrono::steady_clock::now() - std::chrono::seconds(12);
    h.outages = 2;
    h.last_error = "Local: All broker connections are down";
    return h;
  }
};

TEST(Ingestor, ABrokerOutageShowsInStatsAndReadiness) {
  cfrec::testing::TempDir dir;
  auto store = state::EventStore::Open(dir.path(), {});
  ASSERT_TRUE(store.ok());
  IngestorOptions options;
  options.topic = "t";
  const auto log = MakeLog(30);  // 40 messages
  {
    // Reachable (the default health): ready, nothing known of brokers.
    Ingestor ingestor(options, std::make_unique<FakeSource>(log), store->get(),
                      nullptr);
    RunToEnd(ingestor);
    EXPECT_EQ(ingestor.NotReadyReason(), "");
    EXPECT_EQ(ingestor.Stats().brokers_up, -1);
    EXPECT_EQ(ingestor.Stats().broker_outage_seconds, 0);
  }
  ASSERT_EQ((*store)->NextOffsets("t").at(0), 40);
  Ingestor ingestor(options, std::make_unique<UnreachableSource>(log),
                    store->get(), nullptr);
  // The broker cannot be asked: the lag comes from the watermarks last seen
  // (55 - 40), and the error is returned.
  EXPECT_FALSE(ingestor.UpdateLag().ok());
  EXPECT_EQ(ingestor.Stats().consumer_lag, 15);
  const IngestStats st = ingestor.Stats();
  EXPECT_EQ(st.brokers_up, 0);
  EXPECT_EQ(st.broker_outages, 2u);
  EXPECT_GE(st.broker_outage_seconds, 12);
  EXPECT_LT(st.broker_outage_seconds, 60);
  EXPECT_EQ(ingestor.NotReadyReason(),
            "kafka unreachable for 12 s: Local: All broker connections are "
            "down");
}

}  // namespace
}  // namespace cfrec::ingest
