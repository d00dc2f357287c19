#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

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

// `n` MIND rows imp<first>.. of users U0..U22, one click each.
std::vector<MindRow> Rows(int first, int n) {
  std::vector<MindRow> rows;
  for (int i = first; i < first + n; ++i) {
    rows.push_back(
        {"imp" + std::to_string(i),
         "U" + std::to_string(i % 23),
         1000 + i,
         {},
         {"N" + std::to_string(i % 40), "N" + std::to_string(i % 7 + 40)},
         {0, 1}});
  }
  return rows;
}

// The restart of `cfrec serve`: a new embedded broker (empty log, offsets
// from 0 again) over a store that holds the previous broker's offsets.
TEST(EmbeddedBrokerRestart, NewBrokerOverAnExistingStoreStoresEveryMessage) {
  cfrec::testing::TempDir dir;
  auto opened = state::EventStore::Open(dir.path(), {});
  ASSERT_TRUE(opened.ok());
  std::unique_ptr<state::EventStore> store = std::move(opened).value();
  // Both halves spread over 16 partitions, as in `cfrec serve`.
  const std::vector<std::vector<MindRow>> halves = {Rows(0, 300),
                                                    Rows(300, 250)};
  size_t impressions = 0;
  for (size_t run = 0; run < halves.size(); ++run) {
    const auto& rows = halves[run];
    impressions += rows.size();
    auto broker = EmbeddedBroker::Start();
    ASSERT_TRUE(broker.ok());
    ASSERT_TRUE((*broker)->CreateTopic(kDefaultTopic, 16).ok());
    ConsumerOptions co;
    co.brokers = (*broker)->bootstrap_servers();
    co.fetch_wait_max_ms = 1;
    auto source = CreateKafkaSource(co);
    ASSERT_TRUE(source.ok());
    IngestorOptions io;
    io.log_id = (*broker)->log_id();
    io.discard_unidentified_offsets = true;
    AppliedCounter counter;
    Ingestor ingestor(io, std::move(source).value(), store.get(),
                      [&](std::vector<state::AppliedEvent>&& events) {
                        counter.Add(events.size());
                      });
    ASSERT_TRUE(ingestor.Start().ok());
    ProducerOptions po;
    po.brokers = (*broker)->bootstrap_servers();
    auto producer = KafkaProducer::Create(po);
    ASSERT_TRUE(producer.ok());
    auto summary = Replay(rows, producer->get(), ReplayOptions{});
    ASSERT_TRUE(summary.ok()) << summary.status().ToString();
    // Every impression and its click, as two applied events.
    ASSERT_TRUE(counter.WaitFor(2 * rows.size(), std::chrono::seconds(30)))
        << "stored " << store->Counters().impressions << " impressions of "
        << impressions;
    ASSERT_TRUE(ingestor.UpdateLag().ok());
    const auto st = ingestor.Stats();
    EXPECT_EQ(st.consumer_lag, 0);
    EXPECT_EQ(st.gap_messages, 0u);
    EXPECT_EQ(st.redelivered, 0u);
    EXPECT_EQ(st.log_changes, run == 0 ? 0u : 1u);
    EXPECT_EQ(*store->LogId(kDefaultTopic), (*broker)->log_id());
    ingestor.Stop();
  }
  const auto c = store->Counters();
  EXPECT_EQ(c.impressions, impressions);
  EXPECT_EQ(c.clicks_joined, impressions);
  EXPECT_EQ(c.dead_letters, 0u);
}

// A position past the end of every partition's log (what a restarted
// broker presented before the store kept log ids): each partition is read
// again from its start, one at a time, and nothing counts as lost. Reading
// them again used to re-assign all partitions per partition in error, which
// aborted librdkafka 2.0.2 (rd_kafka_assignment_partition_stopped: assert
// rktp_started) when the errors came in quick succession.
TEST(KafkaSource, PositionsPastTheEndOfTheLogRestartEachPartition) {
  constexpr int kPartitions = 16;
  auto broker = EmbeddedBroker::Start();
  ASSERT_TRUE(broker.ok());
  ASSERT_TRUE((*broker)->CreateTopic(kDefaultTopic, kPartitions).ok());
  ProducerOptions po;
  po.brokers = (*broker)->bootstrap_servers();
  auto producer = KafkaProducer::Create(po);
  ASSERT_TRUE(producer.ok());
  const auto rows = Rows(0, 200);
  ASSERT_TRUE(Replay(rows, producer->get(), ReplayOptions{}).ok());
  const size_t produced = 2 * rows.size();

  ConsumerOptions co;
  co.brokers = (*broker)->bootstrap_servers();
  co.fetch_wait_max_ms = 1;
  auto source = CreateKafkaSource(co);
  ASSERT_TRUE(source.ok());
  std::map<int32_t, int64_t> past_the_end;
  for (int32_t p = 0; p < kPartitions; ++p) past_the_end[p] = 1000;
  ASSERT_TRUE((*source)->Assign(past_the_end).ok());

  std::set<std::pair<int32_t, int64_t>> seen;
  std::set<int32_t> restarted;
  std::vector<SourceMessage> batch;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((seen.size() < produced || restarted.size() < kPartitions) &&
         std::chrono::steady_clock::now() < deadline) {
    batch.clear();
    ASSERT_TRUE(
        (*source)->Poll(1000, std::chrono::milliseconds(50), &batch).ok());
    for (const auto& m : batch) seen.insert({m.partition, m.offset});
    for (int32_t p : (*source)->TakeRestartedPartitions()) restarted.insert(p);
  }
  EXPECT_EQ(seen.size(), produced);
  EXPECT_EQ(restarted.size(), static_cast<size_t>(kPartitions));
  EXPECT_EQ((*source)->gap_messages(), 0u);
  // Read from the start: each partition's offsets are 0, 1, ...
  std::map<int32_t, int64_t> next;
  for (const auto& [p, off] : seen) {
    EXPECT_EQ(off, next[p]) << "partition " << p;
    next[p] = off + 1;
  }
}

// The embedded broker keeps at most 5 MiB per partition: 7 MB written
// before the consumer starts lose the oldest. The consumer names and counts
// exactly the offsets it can no longer read and continues after them.
TEST(KafkaSource, OffsetsDroppedByTheBrokerAreCountedAsLost) {
  auto broker = EmbeddedBroker::Start();
  ASSERT_TRUE(broker.ok());
  ASSERT_TRUE((*broker)->CreateTopic(kDefaultTopic, 1).ok());
  ProducerOptions po;
  po.brokers = (*broker)->bootstrap_servers();
  auto producer = KafkaProducer::Create(po);
  ASSERT_TRUE(producer.ok());
  constexpr int kMessages = 70;
  const std::string payload(100 * 1000, 'x');
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE((*producer)->SendBlocking("k", payload).ok());
    // One message set each, so that the broker drops whole messages.
    ASSERT_TRUE((*producer)->Flush(std::chrono::seconds(10)).ok());
  }

  ConsumerOptions co;
  co.brokers = (*broker)->bootstrap_servers();
  co.fetch_wait_max_ms = 1;
  auto source = CreateKafkaSource(co);
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE((*source)->Assign({{0, 0}}).ok());
  std::vector<SourceMessage> got;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((got.empty() || got.back().offset + 1 < kMessages) &&
         std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE((*source)->Poll(100, std::chrono::milliseconds(50), &got).ok());
  }
  ASSERT_FALSE(got.empty());
  const uint64_t lost = (*source)->gap_messages();
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(got.front().offset, static_cast<int64_t>(lost));
  EXPECT_EQ(got.size() + lost, static_cast<size_t>(kMessages));
  EXPECT_TRUE((*source)->TakeRestartedPartitions().empty());
}

}  // namespace
}  // namespace cfrec::ingest
