#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "cfrec/ingest/ingestor.h"
#include "cfrec/ingest/kafka.h"
#include "cfrec/ingest/replay.h"
#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

namespace cfrec::ingest {
namespace {

// Counts applied events and lets the test wait for a number of them.
class AppliedCounter {
 public:
  void Add(size_t n) {
    std::lock_guard lock(mu_);
    count_ += n;
    cv_.notify_all();
  }
  bool WaitFor(size_t n, std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t count_ = 0;
};

class IngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = EmbeddedBroker::Start();
    ASSERT_TRUE(b.ok());
    broker_ = std::move(b).value();
    ASSERT_TRUE(broker_->CreateTopic(kDefaultTopic, 2).ok());
    auto s = state::EventStore::Open(dir_.path(), {});
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    ConsumerOptions co;
    co.brokers = broker_->bootstrap_servers();
    co.fetch_wait_max_ms = 1;
    auto source = CreateKafkaSource(co);
    ASSERT_TRUE(source.ok());
    ingestor_ = std::make_unique<Ingestor>(
        IngestorOptions{}, std::move(source).value(), store_.get(),
        [this](std::vector<state::AppliedEvent>&& events) {
          counter_.Add(events.size());
        });
    ASSERT_TRUE(ingestor_->Start().ok());
    ProducerOptions po;
    po.brokers = broker_->bootstrap_servers();
    auto p = KafkaProducer::Create(po);
    ASSERT_TRUE(p.ok());
    producer_ = std::move(p).value();
  }
  void TearDown() override { ingestor_.reset(); }

  cfrec::testing::TempDir dir_;
  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<state::EventStore> store_;
  AppliedCounter counter_;
  std::unique_ptr<Ingestor> ingestor_;
  std::unique_ptr<KafkaProducer> producer_;
};

TEST_F(IngestTest, ReplayedEventsAreAppliedAndHandedDownstream) {
  std::vector<MindRow> rows;
  for (int i = 0; i < 50; ++i) {
    rows.push_back({"imp" + std::to_string(i),
                    "U" + std::to_string(i % 7),
                    1000 + i,
                    {"H1"},
                    {"N1", "N2", "N3"},
                    {0, 1, 0}});
  }
  ReplayOptions ro;
  ro.click_delay_ms = 10;
  auto summary = Replay(rows, producer_.get(), ro);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->impressions, 50u);
  EXPECT_EQ(summary->clicks, 50u);
  // 50 impressions + 50 late clicks applied as click events.
  ASSERT_TRUE(counter_.WaitFor(100, std::chrono::seconds(30)));
  const auto c = store_->Counters();
  EXPECT_EQ(c.impressions, 50u);
  EXPECT_EQ(c.clicks_joined, 50u);
  EXPECT_EQ(store_->NumUsers(), 7u);
}

TEST_F(IngestTest, InvalidMessagesGoToDeadLettersAndIngestContinues) {
  ASSERT_TRUE(producer_->Send("u", "garbage").ok());
  ASSERT_TRUE(producer_->Send("u", R"({"type":"click"})").ok());
  ImpressionEvent ok{"i1", "u", 5, {"a"}, {"a"}, {}};
  ASSERT_TRUE(producer_->Send("u", SerializeEvent(ok)).ok());
  ASSERT_TRUE(producer_->Flush(std::chrono::seconds(10)).ok());
  ASSERT_TRUE(counter_.WaitFor(1, std::chrono::seconds(30)));
  // Dead letters are written in the same batch or before the good event
  // (same key, same partition, in order).
  const auto c = store_->Counters();
  EXPECT_EQ(c.impressions, 1u);
  EXPECT_EQ(c.dead_letters, 2u);
  auto dl = store_->ReadDeadLetters(1, 10);
  ASSERT_TRUE(dl.ok());
  ASSERT_EQ(dl->size(), 2u);
  EXPECT_EQ((*dl)[0].payload, "garbage");
}

TEST_F(IngestTest, SurvivesABrokerOutage) {
  ImpressionEvent first{"i1", "u", 5, {"a"}, {}, {}};
  ASSERT_TRUE(producer_->Send("u", SerializeEvent(first)).ok());
  ASSERT_TRUE(producer_->Flush(std::chrono::seconds(10)).ok());
  ASSERT_TRUE(counter_.WaitFor(1, std::chrono::seconds(30)));

  ASSERT_TRUE(broker_->SetBrokerDown(1).ok());
  ImpressionEvent second{"i2", "u", 6, {"b"}, {}, {}};
  ASSERT_TRUE(producer_->Send("u", SerializeEvent(second)).ok());
  ASSERT_TRUE(broker_->SetBrokerUp(1).ok());
  ASSERT_TRUE(producer_->Flush(std::chrono::seconds(30)).ok());
  ASSERT_TRUE(counter_.WaitFor(2, std::chrono::seconds(30)));
  EXPECT_EQ(store_->Counters().impressions, 2u);
  EXPECT_EQ(producer_->delivery_failures(), 0u);
}

}  // namespace
}  // namespace cfrec::ingest
