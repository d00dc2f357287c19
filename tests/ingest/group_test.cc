// Ingest in a consumer group (ConsumerOptions::join_group) on the embedded
// broker's multi-broker mode: partitions whose leader moves, a broker that
// goes down and comes back, and partitions that move to another member of
// the group and back. The store's offsets decide where a partition
// resumes, so every event is stored exactly once.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/ingest/ingestor.h"
#include "cfrec/ingest/kafka.h"
#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

namespace cfrec::ingest {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWait = std::chrono::seconds(60);
const std::string kTopic = "grouped";

std::string Impression(int i) {
  return SerializeEvent(ImpressionEvent{"imp" + std::to_string(i),
                                        "U" + std::to_string(i % 13),
                                        1'700'000'000'000 + i,
                                        {"N" + std::to_string(i % 50)},
                                        {},
                                        {}});
}

// One member of the group: its own store and ingest loop.
struct Member {
  cfrec::testing::TempDir dir;
  std::unique_ptr<state::EventStore> store;
  std::unique_ptr<Ingestor> ingestor;

  void Start(const EmbeddedBroker& broker) {
    auto s = state::EventStore::Open(dir.path(), {});
    ASSERT_TRUE(s.ok());
    store = std::move(s).value();
    ConsumerOptions co;
    co.brokers = broker.bootstrap_servers();
    co.topic = kTopic;
    co.group_id = "cfrec-group-test";
    co.fetch_wait_max_ms = 1;
    co.join_group = true;
    state::EventStore* st = store.get();
    co.stored_offsets = [st] { return st->NextOffsets(kTopic); };
    // Short group timers: the embedded broker's group joins are slow.
    co.extra = {{"session.timeout.ms", "6000"},
                {"heartbeat.interval.ms", "200"},
                {"topic.metadata.refresh.interval.ms", "500"}};
    auto source = CreateKafkaSource(co);
    ASSERT_TRUE(source.ok());
    IngestorOptions io;
    io.topic = kTopic;
    io.log_id = broker.log_id();
    io.discard_unidentified_offsets = true;
    io.retry_backoff = std::chrono::milliseconds(100);
    ingestor = std::make_unique<Ingestor>(io, std::move(source).value(),
                                          store.get(), [](auto&&) {});
    ASSERT_TRUE(ingestor->Start().ok());
  }
  uint64_t impressions() const { return store->Counters().impressions; }
};

class GroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmbeddedBroker::Options bo;
    bo.brokers = 3;
    bo.partitions = 4;
    auto b = EmbeddedBroker::Start(bo);
    ASSERT_TRUE(b.ok());
    broker_ = std::move(b).value();
    ASSERT_TRUE(broker_->CreateTopic(kTopic, 4).ok());
    ProducerOptions po;
    po.brokers = broker_->bootstrap_servers();
    po.topic = kTopic;
    auto p = KafkaProducer::Create(po);
    ASSERT_TRUE(p.ok());
    producer_ = std::move(p).value();
  }

  void Produce(int from, int to) {
    for (int i = from; i < to; ++i) {
      ASSERT_TRUE(
          producer_->SendBlocking("U" + std::to_string(i % 13), Impression(i))
              .ok());
    }
    ASSERT_TRUE(producer_->Flush(std::chrono::seconds(30)).ok());
  }

  static void WaitStored(const Member& m, uint64_t n) {
    const auto deadline = Clock::now() + kWait;
    while (m.impressions() < n) {
      ASSERT_LT(Clock::now(), deadline) << m.impressions() << " of " << n;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<KafkaProducer> producer_;
};

TEST_F(GroupTest, LeaderMovesAndABrokerOutageStoreEveryEventOnce) {
  Member a;
  a.Start(*broker_);
  Produce(0, 200);
  WaitStored(a, 200);
  // Every partition's leader moves to another broker.
  for (int32_t p = 0; p < 4; ++p) {
    ASSERT_TRUE(broker_->SetPartitionLeader(kTopic, p, 1 + (p + 1) % 3).ok());
  }
  Produce(200, 400);
  WaitStored(a, 400);
  // A broker goes down while events arrive, and comes back.
  ASSERT_TRUE(broker_->SetBrokerDown(2).ok());
  std::thread producer([&] { Produce(400, 600); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(broker_->SetBrokerUp(2).ok());
  producer.join();
  WaitStored(a, 600);
  a.ingestor->Stop();
  EXPECT_EQ(a.impressions(), 600u);
  EXPECT_EQ(a.ingestor->Stats().gap_messages, 0u);
}

TEST_F(GroupTest, PartitionsMoveToAnotherMemberAndBack) {
  Member a;
  a.Start(*broker_);
  Produce(0, 200);
  WaitStored(a, 200);
  // A second member joins: the group moves some partitions to it. It has
  // its own store, which reads them from their start.
  Member b;
  b.Start(*broker_);
  const auto deadline = Clock::now() + kWait;
  while (b.impressions() == 0) {
    ASSERT_LT(Clock::now(), deadline) << "no partition moved";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Produce(200, 400);
  WaitStored(b, 1);
  // It leaves: the partitions come back to the first member, which resumes
  // each at its own store's offset.
  b.ingestor->Stop();
  b.ingestor.reset();
  Produce(400, 600);
  WaitStored(a, 600);
  a.ingestor->Stop();
  EXPECT_EQ(a.impressions(), 600u) << "every event once in the first store";
  EXPECT_GT(b.impressions(), 0u);
  EXPECT_LT(b.impressions(), 600u);
}

}  // namespace
}  // namespace cfrec::ingest
