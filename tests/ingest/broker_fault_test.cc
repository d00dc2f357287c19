// Ingest under Kafka faults, injected with the embedded (mock) broker's
// fault API: a broker outage of several seconds, leader changes, request
// errors, and a producer whose queue fills while the broker is away.
// Throughout: nothing lost, nothing applied twice, nothing hangs.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/ingest/ingestor.h"
#include "cfrec/ingest/kafka.h"
#include "cfrec/server/service.h"
#include "cfrec/server/testing/fake_snapshot.h"
#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

namespace cfrec::ingest {
namespace {

using Clock = std::chrono::steady_clock;

// Kafka error codes (librdkafka's rd_kafka_resp_err_t).
constexpr int kNotLeaderForPartition = 6;
constexpr int kRequestTimedOut = 7;
constexpr int kLeaderNotAvailable = 5;
// Kafka API keys.
constexpr int16_t kProduce = 0;
constexpr int16_t kFetch = 1;

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
  size_t count() {
    std::lock_guard lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t count_ = 0;
};

std::string Impression(int i) {
  return SerializeEvent(ImpressionEvent{"imp" + std::to_string(i),
                                        "U" + std::to_string(i % 13),
                                        1'700'000'000'000 + i,
                                        {"N" + std::to_string(i % 50)},
                                        {},
                                        {}});
}

class BrokerFaultTest : public ::testing::Test {
 protected:
  void StartAll(int brokers, int partitions) {
    EmbeddedBroker::Options bo;
    bo.brokers = brokers;
    bo.partitions = partitions;
    auto b = EmbeddedBroker::Start(bo);
    ASSERT_TRUE(b.ok());
    broker_ = std::move(b).value();
    ASSERT_TRUE(broker_->CreateTopic(kDefaultTopic, partitions).ok());
    auto s = state::EventStore::Open(dir_.path(), {});
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    ConsumerOptions co;
    co.brokers = broker_->bootstrap_servers();
    co.fetch_wait_max_ms = 1;
    auto source = CreateKafkaSource(co);
    ASSERT_TRUE(source.ok());
    IngestorOptions io;
    io.log_id = broker_->log_id();
    io.discard_unidentified_offsets = true;
    io.retry_backoff = std::chrono::milliseconds(100);
    ingestor_ = std::make_unique<Ingestor>(
        io, std::move(source).value(), store_.get(),
        [this](std::vector<state::AppliedEvent>&& events) {
          applied_.Add(events.size());
        });
    ASSERT_TRUE(ingestor_->Start().ok());
    ProducerOptions po;
    po.brokers = broker_->bootstrap_servers();
    auto p = KafkaProducer::Create(po);
    ASSERT_TRUE(p.ok());
    producer_ = std::move(p).value();
  }
  void TearDown() override {
    if (ingestor_) ingestor_->Stop();
  }

  // Every event applied once: the store holds `n` impressions and ingest
  // handed exactly `n` events downstream.
  void ExpectExactlyOnce(size_t n) {
    ASSERT_TRUE(applied_.WaitFor(n, std::chrono::seconds(60)))
        << applied_.count() << " of " << n;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!ingestor_->UpdateLag().ok() ||
           ingestor_->Stats().consumer_lag != 0) {
      if (Clock::now() > deadline) break;
    }
    EXPECT_EQ(ingestor_->Stats().consumer_lag, 0);
    EXPECT_EQ(store_->Counters().impressions, n);
    EXPECT_EQ(applied_.count(), n);
    EXPECT_EQ(ingestor_->Stats().gap_messages, 0u);
    EXPECT_EQ(producer_->delivery_failures(), 0u);
  }

  cfrec::testing::TempDir dir_;
  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<state::EventStore> store_;
  AppliedCounter applied_;
  std::unique_ptr<Ingestor> ingestor_;
  std::unique_ptr<KafkaProducer> producer_;
};

// GET /readyz as the service answers it: a snapshot is published, and
// ingest's readiness is the only other condition.
server::HttpResponse Readyz(const Ingestor& ingestor) {
  learner::SnapshotHolder snapshots;
  snapshots.Publish(std::make_shared<server::testing::FakeSnapshot>(1, 2));
  server::ServiceContext context;
  context.snapshots = &snapshots;
  context.readiness_checks.push_back(
      [&ingestor] { return ingestor.NotReadyReason(); });
  return server::Handle(context, {"GET", "/readyz", "", "", ""});
}

// Ingest survives a broker outage of several seconds while events keep
// arriving: what the producer queued meanwhile is delivered and applied
// once the broker is back, each event once. Throughout, readiness and the
// figures behind the metrics say what is going on, and asking for the lag
// never hangs.
TEST_F(BrokerFaultTest, ThreeSecondOutageLosesNothingAndAppliesNothingTwice) {
  StartAll(/*brokers=*/1, /*partitions=*/4);
  int sent = 0;
  for (; sent < 100; ++sent) {
    ASSERT_TRUE(producer_->Send("k", Impression(sent)).ok());
  }
  ASSERT_TRUE(producer_->Flush(std::chrono::seconds(10)).ok());
  ASSERT_TRUE(applied_.WaitFor(100, std::chrono::seconds(30)));
  // Connected, nothing left to read, ready.
  ASSERT_TRUE(ingestor_->UpdateLag().ok());
  EXPECT_EQ(ingestor_->Stats().consumer_lag, 0);
  EXPECT_EQ(ingestor_->Stats().broker_outage_seconds, 0);
  EXPECT_EQ(ingestor_->NotReadyReason(), "");
  EXPECT_EQ(Readyz(*ingestor_).status, 200);
  // The first statistics (every second) count the connected broker.
  const auto known_by = Clock::now() + std::chrono::seconds(10);
  while (ingestor_->Stats().brokers_up != 1 && Clock::now() < known_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(ingestor_->Stats().brokers_up, 1);

  ASSERT_TRUE(broker_->SetBrokerDown(1).ok());
  const auto down_at = Clock::now();
  // Events keep arriving through the outage, about 500 a second (queued by
  // the producer).
  std::optional<Clock::duration> noticed_after;
  auto slowest_lag_update = Clock::duration::zero();
  while (Clock::now() - down_at < std::chrono::seconds(3)) {
    ASSERT_TRUE(producer_->Send("k", Impression(sent)).ok()) << sent;
    ++sent;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // pacing
    if (sent % 100 == 0) {
      EXPECT_EQ(store_->Counters().impressions, 100u);  // none got through
      const auto asked = Clock::now();
      static_cast<void>(ingestor_->UpdateLag());
      slowest_lag_update = std::max(slowest_lag_update, Clock::now() - asked);
      EXPECT_EQ(ingestor_->Stats().consumer_lag, 0);  // never negative
    }
    if (!noticed_after && !ingestor_->NotReadyReason().empty()) {
      noticed_after = Clock::now() - down_at;
    }
  }
  // The outage is seen within a second or two (the connection's loss, or
  // the next statistics), and shows in readiness and the metrics' figures.
  ASSERT_TRUE(noticed_after.has_value()) << "the outage was never noticed";
  EXPECT_LT(*noticed_after, std::chrono::milliseconds(2500));
  const IngestStats during = ingestor_->Stats();
  EXPECT_EQ(during.brokers_up, 0);
  EXPECT_EQ(during.broker_outages, 1u);
  EXPECT_GE(during.broker_outage_seconds, 0.4);
  EXPECT_LE(during.broker_outage_seconds, 3.1);
  const server::HttpResponse unready = Readyz(*ingestor_);
  EXPECT_EQ(unready.status, 503);
  EXPECT_NE(unready.body.find("kafka unreachable for "), std::string::npos)
      << unready.body;
  EXPECT_TRUE(!ingestor_->UpdateLag().ok());  // fails at once, not in 5 s
  // Each lag refresh during the outage returned at once (it took up to
  // 5 s per partition before).
  EXPECT_LT(slowest_lag_update, std::chrono::milliseconds(100));

  ASSERT_TRUE(broker_->SetBrokerUp(1).ok());
  const auto up_at = Clock::now();
  // Back: ready again within a couple of seconds (librdkafka's reconnect
  // backoff, capped at 1 s; its default 10 s kept ingest away that long).
  while (!ingestor_->NotReadyReason().empty() &&
         Clock::now() - up_at < std::chrono::seconds(15)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_LT(Clock::now() - up_at, std::chrono::milliseconds(2500));
  ASSERT_TRUE(producer_->Flush(std::chrono::seconds(30)).ok());
  ExpectExactlyOnce(static_cast<size_t>(sent));
  // Connected, ready, the outage over and counted once.
  const auto back_by = Clock::now() + std::chrono::seconds(10);
  while (ingestor_->Stats().brokers_up != 1 && Clock::now() < back_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const IngestStats after = ingestor_->Stats();
  EXPECT_EQ(after.brokers_up, 1);
  EXPECT_EQ(after.broker_outage_seconds, 0);
  EXPECT_EQ(after.broker_outages, 1u);
  EXPECT_EQ(Readyz(*ingestor_).status, 200);
}

TEST_F(BrokerFaultTest, LeaderChangesAndRequestErrorsLoseNothing) {
  StartAll(/*brokers=*/3, /*partitions=*/4);
  int sent = 0;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 50; ++i, ++sent) {
      ASSERT_TRUE(producer_->Send("k", Impression(sent)).ok());
    }
    // Move every partition's leader to the next broker, and fail some
    // fetches and produce requests with retriable errors.
    for (int32_t p = 0; p < 4; ++p) {
      ASSERT_TRUE(
          broker_->SetPartitionLeader(kDefaultTopic, p, 1 + (round + p) % 3)
              .ok());
    }
    ASSERT_TRUE(broker_
                    ->PushRequestErrors(
                        kFetch, {kNotLeaderForPartition, kLeaderNotAvailable})
                    .ok());
    ASSERT_TRUE(
        broker_->PushRequestErrors(kProduce, {kNotLeaderForPartition}).ok());
    if (round == 3) {
      ASSERT_TRUE(
          broker_->PushRequestErrors(kProduce, {kRequestTimedOut}).ok());
    }
    ASSERT_TRUE(producer_->Flush(std::chrono::seconds(30)).ok());
  }
  ExpectExactlyOnce(static_cast<size_t>(sent));
}

// The consumer cannot fetch for a few seconds (each Fetch request fails,
// ~0.5 s apart) while the broker takes new events: the lag is asked of the
// broker, so it shows them (the watermarks the consumer cached from its
// fetches would not), and it returns to 0 once they are applied. The
// brokers stay reachable: this is no outage, and the service stays ready.
TEST_F(BrokerFaultTest, FailingFetchesShowAsLag) {
  StartAll(/*brokers=*/1, /*partitions=*/4);
  int sent = 0;
  for (; sent < 50; ++sent) {
    ASSERT_TRUE(producer_->Send("k", Impression(sent)).ok());
  }
  ASSERT_TRUE(producer_->Flush(std::chrono::seconds(10)).ok());
  ASSERT_TRUE(applied_.WaitFor(50, std::chrono::seconds(30)));
  ASSERT_TRUE(
      broker_->PushRequestErrors(kFetch, std::vector<int>(8, kRequestTimedOut))
          .ok());
  for (; sent < 350; ++sent) {
    ASSERT_TRUE(producer_->Send("k", Impression(sent)).ok());
  }
  ASSERT_TRUE(producer_->Flush(std::chrono::seconds(10)).ok());
  ASSERT_TRUE(ingestor_->UpdateLag().ok());
  EXPECT_EQ(ingestor_->Stats().consumer_lag, 300);
  EXPECT_EQ(applied_.count(), 50u);
  EXPECT_EQ(ingestor_->NotReadyReason(), "");
  EXPECT_EQ(Readyz(*ingestor_).status, 200);
  ExpectExactlyOnce(350);
  EXPECT_EQ(ingestor_->Stats().broker_outages, 0u);
}

// POST /v1/events against a producer that cannot deliver: once its queue
// is full the answer is 503, at once, never a wait.
TEST_F(BrokerFaultTest, EventsEndpointAnswers503WhenTheProducerQueueIsFull) {
  StartAll(/*brokers=*/1, /*partitions=*/4);
  ProducerOptions po;
  po.brokers = broker_->bootstrap_servers();
  po.queue_max_messages = 50;
  auto small = KafkaProducer::Create(po);
  ASSERT_TRUE(small.ok());
  ASSERT_TRUE(broker_->SetBrokerDown(1).ok());

  server::ServiceContext context;
  learner::SnapshotHolder snapshots;
  context.snapshots = &snapshots;
  context.sink = small->get();
  int accepted = 0;
  int refused = 0;
  auto slowest = Clock::duration::zero();
  for (int i = 0; i < 200 && refused < 5; ++i) {
    std::string body = "[";
    for (int k = 0; k < 5; ++k) {
      body += (k ? "," : "") + Impression(10 * i + k);
    }
    body += "]";
    const auto start = Clock::now();
    const server::HttpResponse r = server::Handle(
        context, {"POST", "/v1/events", "application/json", body, ""});
    slowest = std::max(slowest, Clock::now() - start);
    if (r.status == 202) {
      ++accepted;
    } else {
      ASSERT_EQ(r.status, 503) << r.body;
      EXPECT_NE(r.body.find("queue is full"), std::string::npos) << r.body;
      ++refused;
    }
  }
  EXPECT_EQ(accepted, 10);  // 50 messages, 5 per request
  EXPECT_EQ(refused, 5);
  EXPECT_LT(slowest, std::chrono::milliseconds(200));
  ASSERT_TRUE(broker_->SetBrokerUp(1).ok());
  // What was accepted is delivered once the broker is back.
  ASSERT_TRUE((*small)->Flush(std::chrono::seconds(30)).ok());
  EXPECT_EQ((*small)->delivered(), 50u);
}

// POST /v1/events?ack=durable answers 202 only once the log has the
// events (they are then consumed and applied), and 503 when the broker
// cannot confirm them within timeout_ms; those are delivered once it is
// back, so nothing is lost either way.
TEST_F(BrokerFaultTest, DurableEventsAreConfirmedByTheLogOr503) {
  StartAll(/*brokers=*/1, /*partitions=*/4);
  server::ServiceContext context;
  learner::SnapshotHolder snapshots;
  context.snapshots = &snapshots;
  context.sink = producer_.get();
  auto post = [&](int first, const std::string& query) {
    std::string body = "[";
    for (int k = 0; k < 3; ++k) body += (k ? "," : "") + Impression(first + k);
    body += "]";
    return server::Handle(
        context, {"POST", "/v1/events" + query, "application/json", body, ""});
  };
  server::HttpResponse r = post(0, "?ack=durable&timeout_ms=10000");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_NE(r.body.find("\"ack\":\"durable\""), std::string::npos) << r.body;
  // Confirmed means in the log: nothing of it is still outstanding.
  EXPECT_EQ(producer_->outstanding(), 0u);
  EXPECT_EQ(producer_->delivered(), 3u);

  ASSERT_TRUE(broker_->SetBrokerDown(1).ok());
  const auto start = Clock::now();
  r = post(3, "?ack=durable&timeout_ms=300");
  const auto waited = Clock::now() - start;
  ASSERT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("did not confirm"), std::string::npos) << r.body;
  EXPECT_GE(waited, std::chrono::milliseconds(300));
  EXPECT_LT(waited, std::chrono::seconds(5));
  ASSERT_TRUE(broker_->SetBrokerUp(1).ok());
  ExpectExactlyOnce(6);
}

}  // namespace
}  // namespace cfrec::ingest
