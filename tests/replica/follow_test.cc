// The publisher and the follower through the embedded broker, in process:
// a follower serves exactly the versions the trainer published, a late one
// catches up, and a follower whose trainer stops keeps its model and
// follows the next trainer.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "cfrec/ingest/kafka.h"
#include "cfrec/replica/follower.h"
#include "cfrec/replica/publisher.h"
#include "replica/replica_testing.h"

namespace cfrec::replica {
namespace {

using Clock = std::chrono::steady_clock;
using learner::SnapshotHolder;
using learner::Trainer;
using state::AppliedEvent;

constexpr auto kWait = std::chrono::seconds(60);

// Versions a holder was given, in order.
class Recorder {
 public:
  explicit Recorder(SnapshotHolder* h) {
    h->SetOnPublish([this](const auto& s) {
      std::lock_guard lock(mu_);
      versions_.push_back(s->version());
    });
  }
  std::vector<uint64_t> versions() const {
    std::lock_guard lock(mu_);
    return versions_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<uint64_t> versions_;
};

bool WaitFor(const std::function<bool()>& done) {
  const auto deadline = Clock::now() + kWait;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

uint64_t VersionOf(const SnapshotHolder& h) {
  auto s = h.Get();
  return s ? s->version() : 0;
}

struct TrainerNode {
  SnapshotHolder trained, served;
  std::unique_ptr<Trainer> trainer;
  std::unique_ptr<ModelPublisher> publisher;

  void Start(const std::string& brokers, const std::string& topic) {
    trainer = std::make_unique<Trainer>(testing::SmallTrainer("bpr"), nullptr,
                                        &trained);
    ASSERT_TRUE(trainer->Start().ok());
    PublisherOptions po;
    po.brokers = brokers;
    po.topic = topic;
    po.full_interval = std::chrono::milliseconds(600);
    po.delta_interval = std::chrono::milliseconds(40);
    po.chunk_bytes = 4096;  // many chunks per image
    auto p = ModelPublisher::Start(po, &trained, &served, [this] {
      auto s = trained.Get();
      return testing::DecimalIds(*s, 64);
    });
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    publisher = std::move(p).value();
  }
  void Train(const std::vector<AppliedEvent>& events) {
    trainer->Enqueue(events);
    ASSERT_TRUE(trainer->WaitForSeq(events.back().seq, kWait));
  }
  void Stop() {
    if (trainer) {
      ASSERT_TRUE(trainer->Stop().ok());
    }
    if (publisher) publisher->Stop();
  }
};

// Waits until `replica` serves the version `node` serves, then compares.
void ExpectFollows(TrainerNode& node, SnapshotHolder& replica) {
  // A version that has trained on the events (a restarted trainer starts
  // from an empty model here: it has no store).
  ASSERT_TRUE(WaitFor([&] {
    const auto served = node.served.Get();
    return served != nullptr && served->num_users() > 0 &&
           VersionOf(replica) == served->version();
  })) << "trainer serves "
      << VersionOf(node.served) << ", replica " << VersionOf(replica);
  const auto t = node.served.Get();
  const auto r = replica.Get();
  if (t->version() != r->version()) return;  // moved on meanwhile: retry
  testing::ExpectSameAnswers(*t, *r);
}

TEST(FollowTest, ReplicasFollowCatchUpAndOutliveTheirTrainer) {
  auto broker = ingest::EmbeddedBroker::Start();
  ASSERT_TRUE(broker.ok());
  const std::string topic = "models";
  ASSERT_TRUE((*broker)->CreateTopic(topic, 1).ok());
  const std::string brokers = (*broker)->bootstrap_servers();
  const auto log = learner::testing::MakeSyntheticLog();
  const size_t quarter = log.train.size() / 4;
  auto part = [&](size_t k) {
    return std::vector<AppliedEvent>(log.train.begin() + k * quarter,
                                     log.train.begin() + (k + 1) * quarter);
  };

  auto node = std::make_unique<TrainerNode>();
  node->Start(brokers, topic);
  Recorder published(&node->served);
  SnapshotHolder early;
  Recorder early_versions(&early);
  FollowerOptions fo;
  fo.brokers = brokers;
  fo.topic = topic;
  auto a = ModelFollower::Start(fo, &early);
  ASSERT_TRUE(a.ok()) << a.status().ToString();

  node->Train(part(0));
  ExpectFollows(*node, early);
  node->Train(part(1));
  ExpectFollows(*node, early);

  // A replica started now builds the model from the topic alone.
  SnapshotHolder late;
  auto b = ModelFollower::Start(fo, &late);
  ASSERT_TRUE(b.ok());
  ExpectFollows(*node, late);
  EXPECT_TRUE((*b)->Stats().caught_up);

  // The trainer stops: both keep serving its last version.
  const uint64_t last = VersionOf(node->served);
  node->Stop();
  const uint64_t final_version = node->publisher->Stats().last_version;
  ASSERT_TRUE(WaitFor([&] {
    return VersionOf(early) == final_version &&
           VersionOf(late) == final_version;
  }));
  EXPECT_GE(final_version, last);
  const std::vector<uint64_t> first_run = published.versions();
  node.reset();

  // A new trainer (a restart) publishes higher versions; both follow.
  auto second = std::make_unique<TrainerNode>();
  second->Start(brokers, topic);
  second->Train(part(2));
  ExpectFollows(*second, early);
  ExpectFollows(*second, late);
  EXPECT_GT(VersionOf(early), final_version);
  Recorder more(&second->served);  // versions from here on
  second->Train(part(3));
  ExpectFollows(*second, early);
  ExpectFollows(*second, late);
  second->Stop();

  // No follower ever served a version the trainers did not publish, and
  // versions only rose.
  std::set<uint64_t> all(first_run.begin(), first_run.end());
  const auto tail = more.versions();
  all.insert(tail.begin(), tail.end());
  const auto seen = early_versions.versions();
  ASSERT_FALSE(seen.empty());
  for (size_t i = 0; i < seen.size(); ++i) {
    if (i > 0) {
      EXPECT_GT(seen[i], seen[i - 1]);
    }
    if (seen[i] <= final_version) {
      EXPECT_TRUE(all.contains(seen[i])) << "version " << seen[i];
    }
  }
  EXPECT_EQ((*a)->Stats().apply_failures, 0u);
  EXPECT_EQ((*a)->Stats().chunks.rejected_chunks, 0u);
}

}  // namespace
}  // namespace cfrec::replica
