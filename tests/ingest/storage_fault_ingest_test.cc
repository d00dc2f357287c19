// The ingest loop over a store whose disk fails: while writes fail (a full
// disk here, through the store's fault switch) ingest applies nothing and
// the store reports why; once the fault clears the loop goes on from the
// stored offsets, and every event reaches the store and the learner's
// callback exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "cfrec/ingest/ingestor.h"
#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

namespace cfrec::ingest {
namespace {

// Serves a fixed log of one partition from the assigned offset on.
class LogSource : public MessageSource {
 public:
  explicit LogSource(std::vector<SourceMessage> log) : log_(std::move(log)) {}
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
    const std::string user = "u" + std::to_string(i % 13);
    ImpressionEvent e{"imp" + std::to_string(i),
                      user,
                      1000 + i,
                      {"n" + std::to_string(i % 29), "n" + std::to_string(50)},
                      {},
                      {}};
    log.push_back(
        {"t", 0, static_cast<int64_t>(log.size()), user, SerializeEvent(e)});
  }
  return log;
}

template <typename Pred>
bool PollUntil(Pred pred) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(IngestStorageFault, StopsApplyingWhileTheDiskIsFullAndAppliesOnceAfter) {
  cfrec::testing::TempDir dir;
  auto faults = std::make_shared<state::StorageFaults>();
  state::StoreOptions store_options;
  store_options.faults = faults;
  auto store = state::EventStore::Open(dir.path(), store_options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  constexpr int kEvents = 600;
  const auto log = MakeLog(kEvents);

  std::mutex mu;
  std::multiset<uint64_t> seqs;  // every seq handed to the learner
  IngestorOptions options;
  options.topic = "t";
  options.max_batch = 50;
  options.retry_backoff = std::chrono::milliseconds(5);
  auto source = std::make_unique<LogSource>(log);
  faults->Set(state::StorageFault::kNoSpace);
  Ingestor ingestor(options, std::move(source), store->get(),
                    [&](std::vector<state::AppliedEvent>&& events) {
                      std::lock_guard lock(mu);
                      for (const auto& e : events) seqs.insert(e.seq);
                    });
  ASSERT_TRUE(ingestor.Start().ok());

  // Full disk: batch after batch fails, nothing is applied, the store says
  // why.
  ASSERT_TRUE(PollUntil([&] { return ingestor.Stats().storage_errors >= 3; }));
  EXPECT_EQ((*store)->Counters().impressions, 0u);
  EXPECT_EQ(ingestor.Stats().messages, 0u);
  const Status health = (*store)->StorageHealth();
  ASSERT_FALSE(health.ok());
  EXPECT_NE(health.message().find("is full"), std::string::npos)
      << health.ToString();
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(seqs.empty());
  }

  // Space again: ingest goes on by itself and applies the whole log once.
  faults->Clear();
  ASSERT_TRUE(PollUntil(
      [&] { return (*store)->Counters().impressions == uint64_t{kEvents}; }));
  ASSERT_TRUE(PollUntil([&] {
    std::lock_guard lock(mu);
    return seqs.size() == size_t{kEvents};
  }));
  ingestor.Stop();
  EXPECT_TRUE((*store)->StorageHealth().ok());
  EXPECT_EQ((*store)->NextOffsets("t").at(0), kEvents);
  EXPECT_EQ(ingestor.Stats().messages, size_t{kEvents});
  EXPECT_EQ(ingestor.Stats().duplicates, 0u);
  std::lock_guard lock(mu);
  ASSERT_EQ(seqs.size(), size_t{kEvents});
  uint64_t expected = 1;
  for (uint64_t s : seqs) EXPECT_EQ(s, expected++);  // each once, no gaps
}

}  // namespace
}  // namespace cfrec::ingest
