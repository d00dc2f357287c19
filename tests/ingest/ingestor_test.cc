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
  explicit FakeSource(std::vector<SourceMessage> log) : log_(std::move(log)) {}
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

 private:
  std::vector<SourceMessage> log_;
  size_t pos_ = 0;
};

std::vector<SourceMessage> MakeLog(int impressions) {
  std::vector<SourceMessage> log;
  for (int i = 0; i < impressions; ++i) {
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

}  // namespace
}  // namespace cfrec::ingest
