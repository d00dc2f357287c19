// The whole service under SIGKILL: `cfrec serve` (ingest, learner, HTTP) as
// a child process, fed by a steady stream produced by the test into a Kafka
// (mock) cluster that the test hosts, so the log outlives every kill, and by
// a steady POST /v1/events load. It is killed at random moments chosen by a
// fixed seed: after a random number of applied events, at its start, and at
// fail points (CFREC_FAILPOINTS) during a checkpoint write, right after one,
// during a snapshot build and between a durable batch and its hand-off to
// the learner (each kind twice first, then at random). Twice the test
// damages the learner's checkpoint while the service is down. After every
// kill, and at the end:
//   - the store holds exactly the events of the log up to its offsets (the
//     events acknowledged by the broker), none missing, none twice;
//   - the restarted learner resumes from the last checkpoint written (never
//     an older one), or, after the damage, reports it and starts fresh;
//   - /readyz answers 200 within kReadyWithin of the start;
//   - the model version is above every version published before the kill.
// The number of kills is CFREC_SOAK_KILLS (default 20, about a minute and a
// half; scripts/soak.sh runs more); the seed CFREC_SOAK_SEED. One JSON line
// with the totals is printed at the end.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/ingest/kafka.h"
#include "cfrec/schemas/event.h"
#include "cfrec/state/event_store.h"
#include "common/serve_child.h"
#include "common/temp_dir.h"

namespace cfrec::app {
namespace {

using cfrec::testing::ChildProcess;
using cfrec::testing::Clock;
using cfrec::testing::GetMetrics;
using cfrec::testing::HttpCall;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kPartitions = 16;
const std::string kTopic = "cfrec.events";
// What the service promises after a start (SIGKILL included): /readyz 200
// within this time.
constexpr seconds kReadyWithin{30};
constexpr seconds kStep{60};  // any other wait

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::strtoull(v, nullptr, 10);
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Every message of the topic, in the order of its offsets, read by a
// consumer of the test's own as the broker takes them.
class LogMirror {
 public:
  explicit LogMirror(const std::string& brokers) {
    ingest::ConsumerOptions co;
    co.brokers = brokers;
    co.topic = kTopic;
    co.group_id = "soak-mirror";
    co.fetch_wait_max_ms = 5;
    auto source = ingest::CreateKafkaSource(co);
    EXPECT_TRUE(source.ok());
    source_ = std::move(source).value();
    EXPECT_TRUE(source_->Assign({}).ok());
    thread_ = std::thread([this] { Run(); });
  }
  ~LogMirror() {
    stop_ = true;
    thread_.join();
  }

  // Waits until every offset below `next` is mirrored.
  bool WaitFor(const std::map<int32_t, int64_t>& next,
               Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, deadline, [&] {
      for (const auto& [p, n] : next) {
        if (static_cast<int64_t>(log_[p].size()) < n) return false;
      }
      return true;
    });
  }
  // The payloads of offsets below `next` of every partition.
  std::vector<std::string> Prefix(const std::map<int32_t, int64_t>& next) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& [p, n] : next) {
      const auto& part = log_[p];
      out.insert(out.end(), part.begin(), part.begin() + n);
    }
    return out;
  }
  std::map<int32_t, int64_t> HighWatermarks() {
    auto high = source_->HighWatermarks();
    EXPECT_TRUE(high.ok()) << high.status().ToString();
    return high.ok() ? *high : std::map<int32_t, int64_t>{};
  }

 private:
  void Run() {
    std::vector<ingest::SourceMessage> batch;
    while (!stop_) {
      batch.clear();
      if (!source_->Poll(1000, milliseconds(50), &batch).ok()) continue;
      std::lock_guard lock(mu_);
      for (auto& m : batch) {
        auto& part = log_[m.partition];
        // The mock broker's log starts at 0 and has no holes.
        EXPECT_EQ(m.offset, static_cast<int64_t>(part.size()));
        part.push_back(std::move(m.payload));
      }
      cv_.notify_all();
    }
  }

  std::unique_ptr<ingest::MessageSource> source_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int32_t, std::vector<std::string>> log_;  // guarded by mu_
  std::thread thread_;
};

// What a log prefix must leave in the store.
struct Expected {
  std::map<std::string, std::set<std::string>> clicks;  // impression -> items
  std::set<std::string> impressions;
  std::set<std::pair<std::string, std::string>> pending;  // held clicks
  uint64_t duplicate_messages = 0;
  // Click events joined to their impression (the store's clicks_joined;
  // inline clicks are the impression's own).
  uint64_t joined = 0;
  uint64_t all_clicks = 0;  // inline and joined, of impressions present
};

Expected FromLog(const std::vector<std::string>& payloads) {
  Expected e;
  std::set<std::pair<std::string, std::string>> click_events;
  for (const std::string& payload : payloads) {
    auto event = ParseEvent(payload);
    EXPECT_TRUE(event.ok()) << payload;
    if (!event.ok()) continue;
    if (const auto* imp = std::get_if<ImpressionEvent>(&*event)) {
      if (!e.impressions.insert(imp->impression_id).second) {
        ++e.duplicate_messages;
      }
      for (const auto& c : imp->clicks) e.clicks[imp->impression_id].insert(c);
    } else {
      const auto& click = std::get<ClickEvent>(*event);
      if (!click_events.insert({click.impression_id, click.item_id}).second) {
        ++e.duplicate_messages;
      }
    }
  }
  for (const auto& [imp, item] : click_events) {
    if (e.impressions.count(imp) > 0) {
      e.joined += e.clicks[imp].insert(item).second ? 1 : 0;
    } else {
      e.pending.insert({imp, item});
    }
  }
  for (const auto& [imp, items] : e.clicks) {
    if (e.impressions.count(imp) > 0) e.all_clicks += items.size();
  }
  return e;
}

struct StoreCheck {
  uint64_t lost = 0;     // events of the log prefix missing from the store
  uint64_t doubled = 0;  // events stored more than once
  uint64_t applied_seq = 0;
  uint64_t impressions = 0;
  std::map<int32_t, int64_t> next;
};

// The store of the stopped service against the log up to its offsets.
StoreCheck CheckStore(const std::string& data_dir, LogMirror& mirror) {
  StoreCheck out;
  auto store = state::EventStore::Open(data_dir, {});
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return out;
  out.next = (*store)->NextOffsets(kTopic);
  EXPECT_TRUE(mirror.WaitFor(out.next, Clock::now() + kStep));
  const Expected e = FromLog(mirror.Prefix(out.next));
  const auto c = (*store)->Counters();
  out.applied_seq = c.applied_seq;
  out.impressions = c.impressions;
  for (const std::string& id : e.impressions) {
    auto imp = (*store)->GetImpression(id);
    if (!imp.ok()) {
      ++out.lost;
      continue;
    }
    std::set<std::string> clicked;
    for (uint16_t pos : imp->clicked) {
      clicked.insert((*store)->ItemId(imp->items[pos]));
    }
    const auto it = e.clicks.find(id);
    const std::set<std::string> want =
        it == e.clicks.end() ? std::set<std::string>{} : it->second;
    for (const auto& item : want) out.lost += clicked.count(item) == 0;
  }
  // Counts beyond the expected ones were stored twice (or came from
  // nowhere); fewer are counted as lost above.
  if (c.impressions > e.impressions.size()) {
    out.doubled += c.impressions - e.impressions.size();
  }
  if (c.clicks_joined > e.joined) out.doubled += c.clicks_joined - e.joined;
  EXPECT_EQ(c.impressions, e.impressions.size());
  EXPECT_EQ(c.clicks_joined, e.joined);
  EXPECT_EQ(c.clicks_pending, e.pending.size());
  EXPECT_EQ(c.duplicates, e.duplicate_messages);
  EXPECT_EQ(c.dead_letters, 0u);
  // The applied log holds each impression once and each later click once,
  // in seqs 1..applied_seq without a gap.
  auto log = (*store)->ReadApplied(1, 1 << 22);
  EXPECT_TRUE(log.ok());
  if (log.ok()) {
    EXPECT_EQ(log->size(), c.applied_seq);
    uint64_t impressions = 0, clicks = 0;
    for (size_t i = 0; i < log->size(); ++i) {
      EXPECT_EQ((*log)[i].seq, i + 1);
      impressions +=
          (*log)[i].kind == state::AppliedEvent::Kind::kImpression ? 1 : 0;
      clicks += (*log)[i].clicked.size();
    }
    EXPECT_EQ(impressions, e.impressions.size());
    EXPECT_EQ(clicks, e.all_clicks);
    if (impressions > e.impressions.size()) {
      out.doubled += impressions - e.impressions.size();
    }
  }
  return out;
}

std::string ImpressionJson(const std::string& id, int i, bool inline_click) {
  ImpressionEvent e;
  e.impression_id = id;
  e.user_id = "U" + std::to_string(i % 53);
  e.ts_ms = 1'700'000'000'000 + int64_t{i} * 1000;
  for (int k = 0; k < 8; ++k) {
    e.items.push_back("N" + std::to_string((i * 7 + k) % 300));
  }
  if (inline_click) e.clicks = {e.items[3]};
  return SerializeEvent(e);
}

std::string ClickJson(const std::string& id, int i, int position) {
  return SerializeEvent(
      ClickEvent{id, "U" + std::to_string(i % 53),
                 "N" + std::to_string((i * 7 + position) % 300),
                 1'700'000'000'000 + int64_t{i} * 1000 + 500});
}

// The replay stream, produced by the test: one impression every 8 ms, a
// third of them clicked after, a fifth clicked before they arrive (the
// click is held, then joined), a seventh with an inline click.
class ReplayLoad {
 public:
  explicit ReplayLoad(const std::string& brokers) {
    ingest::ProducerOptions po;
    po.brokers = brokers;
    po.topic = kTopic;
    auto p = ingest::KafkaProducer::Create(po);
    EXPECT_TRUE(p.ok());
    producer_ = std::move(p).value();
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    EXPECT_TRUE(producer_->Flush(seconds(30)).ok());
    EXPECT_EQ(producer_->delivery_failures(), 0u);
  }
  ~ReplayLoad() { Stop(); }
  int sent() const { return sent_; }

 private:
  void Run() {
    for (int i = 0; !stop_; ++i) {
      const std::string id = "r" + std::to_string(i);
      const std::string key = "U" + std::to_string(i % 53);
      if (i % 5 == 1) Send(key, ClickJson(id, i, 2));
      Send(key, ImpressionJson(id, i, i % 7 == 0));
      if (i % 3 == 0) Send(key, ClickJson(id, i, 1));
      sent_ = i + 1;
      std::this_thread::sleep_for(milliseconds(8));  // pacing
    }
  }
  void Send(const std::string& key, const std::string& payload) {
    EXPECT_TRUE(producer_->SendBlocking(key, payload).ok());
  }

  std::unique_ptr<ingest::KafkaProducer> producer_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0};
  std::thread thread_;
};

// POST /v1/events to whichever service is up: an impression and, for every
// other one, a click on it, every 20 ms. Answers 202 are counted; the ids
// accepted are kept (202 means queued to the service's producer, so a kill
// can lose those not yet delivered: they are counted, not asserted).
class PostLoad {
 public:
  PostLoad() {
    thread_ = std::thread([this] { Run(); });
  }
  ~PostLoad() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void SetPort(uint16_t port) { port_ = port; }
  std::set<std::string> accepted() {
    std::lock_guard lock(mu_);
    return accepted_;
  }
  uint64_t refused() const { return refused_; }

 private:
  void Run() {
    for (int j = 0; !stop_; ++j) {
      std::this_thread::sleep_for(milliseconds(20));  // pacing
      const uint16_t port = port_;
      if (port == 0) continue;
      const std::string id = "p" + std::to_string(j);
      std::string body = "[" + ImpressionJson(id, j, false);
      if (j % 2 == 0) body += "," + ClickJson(id, j, 4);
      body += "]";
      const auto reply = HttpCall(port, "POST", "/v1/events", body);
      if (reply.status == 202) {
        std::lock_guard lock(mu_);
        accepted_.insert(id);
      } else if (reply.status != 0) {
        ++refused_;  // 503 while starting up is fine; counted
      }
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<uint16_t> port_{0};
  std::atomic<uint64_t> refused_{0};
  std::mutex mu_;
  std::set<std::string> accepted_;  // guarded by mu_
  std::thread thread_;
};

enum class Moment {
  kApplied,            // after a random number of applied events
  kStartup,            // as soon as HTTP is up (learner catching up)
  kCheckpointPut,      // checkpoint.put: serialised, not written
  kCheckpointWritten,  // checkpoint.written: written, bookkeeping not done
  kSnapshotBuild,      // snapshot.build: version taken, not built
  kIngestApplied,      // ingest.applied: durable, not handed to the learner
};
const char* Name(Moment m) {
  switch (m) {
    case Moment::kApplied:
      return "applied";
    case Moment::kStartup:
      return "startup";
    case Moment::kCheckpointPut:
      return "checkpoint.put";
    case Moment::kCheckpointWritten:
      return "checkpoint.written";
    case Moment::kSnapshotBuild:
      return "snapshot.build";
    case Moment::kIngestApplied:
      return "ingest.applied";
  }
  return "";
}

// "... KEY=N ..." or "... KEY N" in a log line; -1 when absent.
int64_t NumberAfter(const std::string& line, const std::string& key) {
  const size_t at = line.find(key);
  if (at == std::string::npos) return -1;
  return std::strtoll(line.c_str() + at + key.size(), nullptr, 10);
}

class CrashSoakTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ingest::EmbeddedBroker::Options bo;
    bo.partitions = kPartitions;
    auto b = ingest::EmbeddedBroker::Start(bo);
    ASSERT_TRUE(b.ok());
    broker_ = std::move(b).value();
    ASSERT_TRUE(broker_->CreateTopic(kTopic, kPartitions).ok());
    std::ofstream(config_) << R"({"dim": 16, "sem_dim": 8, "batch_size": 256,
      "initial_rows": 64, "max_positions": 16, "snapshot_interval_ms": 200,
      "checkpoint_interval_s": 1, "idle_replay_passes": 1})";
  }

  std::unique_ptr<ChildProcess> Serve(std::vector<std::string> env = {}) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{CFREC_BINARY, "serve", "--kafka",
                                 broker_->bootstrap_servers(), "--topic",
                                 kTopic, "--data-dir", data_, "--http",
                                 "127.0.0.1:0", "--config", config_},
        std::move(env));
  }

  cfrec::testing::TempDir dir_;
  const std::string data_ = dir_.path() + "/data";
  const std::string config_ = dir_.path() + "/learner.json";
  std::unique_ptr<ingest::EmbeddedBroker> broker_;
};

TEST_F(CrashSoakTest, SigkillAtRandomMomentsLosesAndDoublesNothing) {
  const uint64_t seed = EnvOr("CFREC_SOAK_SEED", 20261130);
  const int kills = static_cast<int>(EnvOr("CFREC_SOAK_KILLS", 20));
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  const auto soak_start = Clock::now();

  LogMirror mirror(broker_->bootstrap_servers());
  ReplayLoad replay(broker_->bootstrap_servers());
  PostLoad posts;

  const std::vector<Moment> moments = {
      Moment::kApplied,           Moment::kApplied,
      Moment::kStartup,           Moment::kCheckpointPut,
      Moment::kCheckpointWritten, Moment::kSnapshotBuild,
      Moment::kIngestApplied};
  std::map<std::string, int> kills_by_moment;
  uint64_t max_version = 0;  // highest version seen or taken
  uint64_t durable_seq = 0;  // a checkpoint at least this new is stored
  std::optional<uint64_t> exact_seq;    // the checkpoint that must be restored
  uint64_t put_seq_bound = UINT64_MAX;  // restored at most this
  bool damaged = false;                 // the checkpoint was damaged while down
  bool previous_kept = false;  // and a previous checkpoint was kept beside it
  uint64_t applied_at_kill = 0;
  double slowest_ready = 0;
  uint64_t lost = 0, doubled = 0, fresh_starts = 0, fallbacks = 0;

  // Checks a start: the checkpoint restored, versions, readiness. Returns
  // the port, 0 on failure.
  auto check_start = [&](ChildProcess& child, Clock::time_point started,
                         bool wait_ready) -> uint16_t {
    // A fail point may stop it before HTTP is up (ingest starts first).
    const auto http =
        child.WaitForAnyLine({"HTTP on ", "failpoint "}, started + kStep);
    EXPECT_TRUE(http.has_value()) << child.Log();
    if (!http) return 0;
    const uint16_t port = cfrec::testing::PortOfLine(*http);
    // Logged by the learner's start, before HTTP.
    const auto resumed = child.WaitForLine("resumed from checkpoint", started);
    const bool unusable = child.HasLine("cannot be used");
    if (damaged) {
      // Reported; the previous checkpoint is used if one was kept, else
      // the learner starts fresh.
      EXPECT_TRUE(unusable) << child.Log();
      if (previous_kept) {
        EXPECT_TRUE(resumed.has_value()) << child.Log();
        if (resumed) {
          EXPECT_NE(resumed->find("'learner.previous'"), std::string::npos)
              << *resumed;
          EXPECT_LE(
              static_cast<uint64_t>(NumberAfter(*resumed, "applied seq ")),
              applied_at_kill)
              << *resumed;
        }
        fallbacks += unusable && resumed ? 1 : 0;
      } else {
        EXPECT_FALSE(resumed.has_value());
        fresh_starts += unusable ? 1 : 0;
      }
    } else if (durable_seq > 0 || exact_seq.has_value()) {
      EXPECT_FALSE(unusable) << child.Log();
      EXPECT_TRUE(resumed.has_value()) << child.Log();
      if (resumed) {
        const auto seq =
            static_cast<uint64_t>(NumberAfter(*resumed, "applied seq "));
        // Never older than a checkpoint known to be written, never newer
        // than what was applied, exactly the one a kill left behind.
        EXPECT_GE(seq, durable_seq) << *resumed;
        EXPECT_LE(seq, applied_at_kill) << *resumed;
        EXPECT_LE(seq, put_seq_bound) << *resumed;
        if (exact_seq) {
          EXPECT_EQ(seq, *exact_seq) << *resumed;
        }
        durable_seq = std::max(durable_seq, seq);
      }
    }
    damaged = false;
    exact_seq.reset();
    put_seq_bound = UINT64_MAX;
    const auto versions =
        child.WaitForLine("model versions continue after ", started);
    if (max_version > 0) {
      EXPECT_TRUE(versions.has_value()) << child.Log();
      if (versions) {
        EXPECT_GE(static_cast<uint64_t>(NumberAfter(*versions, "after ")),
                  max_version);
      }
    }
    if (!wait_ready || port == 0) return port;
    while (SecondsSince(started) < kReadyWithin.count()) {
      const auto r = HttpCall(port, "GET", "/readyz");
      if (r.status == 200) {
        const double took = SecondsSince(started);
        slowest_ready = std::max(slowest_ready, took);
        const uint64_t v = json::parse(r.body).value("model_version", 0);
        EXPECT_GT(v, max_version) << "a version went back after a restart";
        max_version = std::max(max_version, v);
        return port;
      }
      // Stopped at its fail point before it was ready: killed there.
      if (child.HasLine("failpoint ")) return port;
      std::this_thread::sleep_for(milliseconds(20));
    }
    ADD_FAILURE() << "not ready within " << kReadyWithin.count() << " s\n"
                  << child.Log();
    return 0;
  };

  // Reads the metrics the kill checks need; false when none came.
  auto observe = [&](uint16_t port, std::map<std::string, double>* out) {
    auto m = GetMetrics(port);
    if (m.empty()) return false;
    max_version =
        std::max(max_version, static_cast<uint64_t>(m["cfrec_model_version"]));
    durable_seq = std::max(
        durable_seq, static_cast<uint64_t>(m["cfrec_learner_checkpoint_seq"]));
    if (out != nullptr) *out = std::move(m);
    return true;
  };

  // Every kind of moment twice first, in an order of the seed, then at
  // random.
  std::vector<Moment> schedule;
  for (int round = 0; round < 2; ++round) {
    for (Moment m : {Moment::kApplied, Moment::kStartup, Moment::kCheckpointPut,
                     Moment::kCheckpointWritten, Moment::kSnapshotBuild,
                     Moment::kIngestApplied}) {
      schedule.push_back(m);
    }
  }
  std::shuffle(schedule.begin(), schedule.end(), rng);
  for (int cycle = 0; cycle < kills; ++cycle) {
    const Moment moment = static_cast<size_t>(cycle) < schedule.size()
                              ? schedule[cycle]
                              : moments[std::uniform_int_distribution<size_t>(
                                    0, moments.size() - 1)(rng)];
    SCOPED_TRACE(std::string("kill ") + std::to_string(cycle + 1) + " at " +
                 Name(moment));
    std::vector<std::string> env;
    int hit = 1;
    switch (moment) {
      case Moment::kCheckpointPut:
      case Moment::kCheckpointWritten:
        hit = std::uniform_int_distribution<int>(1, 2)(rng);
        break;
      case Moment::kSnapshotBuild:
        hit = std::uniform_int_distribution<int>(2, 10)(rng);
        break;
      case Moment::kIngestApplied:
        hit = std::uniform_int_distribution<int>(1, 20)(rng);
        break;
      default:
        break;
    }
    const bool at_fail_point =
        moment != Moment::kApplied && moment != Moment::kStartup;
    if (at_fail_point) {
      env.push_back(std::string("CFREC_FAILPOINTS=") + Name(moment) + "@" +
                    std::to_string(hit));
    }
    const auto started = Clock::now();
    auto child = Serve(env);
    ASSERT_TRUE(child->started());
    const uint16_t port =
        check_start(*child, started, moment != Moment::kStartup);
    ASSERT_TRUE(port != 0 || at_fail_point) << child->Log();
    if (moment != Moment::kStartup) posts.SetPort(port);

    if (moment == Moment::kApplied) {
      const double target = std::uniform_int_distribution<int>(30, 400)(rng);
      const auto deadline = Clock::now() + kStep;
      std::map<std::string, double> m;
      while (Clock::now() < deadline) {
        if (observe(port, &m) && m["cfrec_events_applied_total"] >= target) {
          break;
        }
        std::this_thread::sleep_for(milliseconds(10));
      }
      EXPECT_GE(m["cfrec_events_applied_total"], target);
    } else if (at_fail_point) {
      const auto deadline = Clock::now() + kStep;
      bool stopped = false;
      while (!stopped && Clock::now() < deadline) {
        stopped = child->WaitForStop(Clock::now() + milliseconds(100));
        ASSERT_FALSE(child->exit_status().has_value())
            << "the service died (wait status " << *child->exit_status()
            << ")\n"
            << child->Log();
        if (!stopped && port != 0) observe(port, nullptr);
      }
      ASSERT_TRUE(stopped) << "never reached " << Name(moment) << "@" << hit
                           << "\n"
                           << child->Log();
      const auto line =
          child->WaitForLine(std::string("failpoint ") + Name(moment) + " hit",
                             Clock::now() + seconds(5));
      ASSERT_TRUE(line.has_value()) << child->Log();
      if (moment == Moment::kCheckpointWritten) {
        exact_seq = static_cast<uint64_t>(NumberAfter(*line, "seq="));
      } else if (moment == Moment::kCheckpointPut) {
        // Not written: the one before it is restored.
        put_seq_bound = static_cast<uint64_t>(NumberAfter(*line, "seq="));
      } else if (moment == Moment::kSnapshotBuild) {
        max_version = std::max(
            max_version, static_cast<uint64_t>(NumberAfter(*line, "version=")));
      }
    }
    posts.SetPort(0);
    const int status = child->Kill();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the service died before the kill (status " << status << ")\n"
        << child->Log();
    ++kills_by_moment[Name(moment)];
    child.reset();

    const StoreCheck check = CheckStore(data_, mirror);
    lost += check.lost;
    doubled += check.doubled;
    applied_at_kill = check.applied_seq;
    ASSERT_EQ(check.lost, 0u);
    ASSERT_EQ(check.doubled, 0u);

    // Twice, a damaged checkpoint: cut in half while the service is down.
    if (cycle == kills / 3 || cycle == 2 * kills / 3) {
      auto store = state::EventStore::Open(data_, {});
      ASSERT_TRUE(store.ok());
      auto blob = (*store)->GetCheckpoint("learner");
      if (blob.ok()) {
        ASSERT_TRUE(
            (*store)
                ->PutCheckpoint("learner", blob->substr(0, blob->size() / 2))
                .ok());
        damaged = true;
        previous_kept = (*store)->GetCheckpoint("learner.previous").ok();
        durable_seq = 0;  // the previous checkpoint, or fresh
        exact_seq.reset();
      }
    }
  }

  // The end: the loads stop, the service applies all the log holds and
  // stops cleanly; then the whole log must be in the store.
  const auto started = Clock::now();
  auto child = Serve();
  const uint16_t port = check_start(*child, started, true);
  ASSERT_NE(port, 0);
  posts.SetPort(port);
  std::this_thread::sleep_for(milliseconds(500));  // some posts to this one
  posts.Stop();
  replay.Stop();
  // Caught up: two readings of lag 0 more than the lag's refresh (1 s)
  // apart; the offsets are checked against the log below.
  const auto deadline = Clock::now() + kStep;
  Clock::time_point first_zero{};
  bool zero = false;
  while (Clock::now() < deadline) {
    auto m = GetMetrics(port);
    if (m.empty() || m["cfrec_consumer_lag_messages"] != 0) {
      zero = false;
    } else if (!zero) {
      zero = true;
      first_zero = Clock::now();
    } else if (Clock::now() - first_zero > milliseconds(1500)) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  // The log's end, once the service's own producer (POST /v1/events) has
  // long delivered what it accepted.
  const auto all = mirror.HighWatermarks();
  int64_t total = 0;
  for (const auto& [p, h] : all) total += h;
  child->Signal(SIGTERM);
  const auto exit = child->WaitForExit(Clock::now() + kStep);
  ASSERT_TRUE(exit.has_value() && WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0)
      << child->Log();
  child.reset();
  const StoreCheck final_check = CheckStore(data_, mirror);
  lost += final_check.lost;
  doubled += final_check.doubled;
  EXPECT_EQ(final_check.next, all) << "not all of the log was applied";
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(doubled, 0u);
  // POST /v1/events: what was accepted and reached the log is stored (the
  // check above); accepted but never delivered (killed first) is counted.
  const auto accepted = posts.accepted();
  const auto log = FromLog(mirror.Prefix(all));
  uint64_t accepted_not_in_log = 0;
  for (const auto& id : accepted) {
    accepted_not_in_log += log.impressions.count(id) == 0;
  }
  EXPECT_GT(accepted.size(), 0u);
  EXPECT_EQ(fresh_starts + fallbacks, 2u);
  json by_moment = kills_by_moment;
  std::printf("%s\n", json{{"soak", "crash"},
                           {"seed", seed},
                           {"kills", kills},
                           {"kills_by_moment", by_moment},
                           {"log_messages", total},
                           {"impressions", final_check.impressions},
                           {"applied_seq", final_check.applied_seq},
                           {"replayed_impressions", replay.sent()},
                           {"posts_accepted", accepted.size()},
                           {"posts_accepted_not_in_log", accepted_not_in_log},
                           {"posts_refused", posts.refused()},
                           {"events_lost", lost},
                           {"events_doubled", doubled},
                           {"damaged_checkpoints_started_fresh", fresh_starts},
                           {"damaged_checkpoints_fell_back", fallbacks},
                           {"slowest_ready_s", slowest_ready},
                           {"seconds", SecondsSince(soak_start)}}
                          .dump()
                          .c_str());
}

}  // namespace
}  // namespace cfrec::app
