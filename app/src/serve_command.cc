// cfrec serve: wires broker, ingest, state, learner and HTTP together and
// shuts them down in order on SIGINT/SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include "cfrec/ingest/ingestor.h"
#include "cfrec/ingest/kafka.h"
#include "cfrec/ingest/replay.h"
#include "cfrec/schemas/log.h"
#include "cfrec/state/event_store.h"
#include "commands.h"

namespace cfrec::app {
namespace {

struct ServeArgs {
  std::string http = "127.0.0.1:8080";
  std::string data_dir = "cfrec-data";
  std::string kafka;  // empty = embedded broker
  std::string topic = std::string(ingest::kDefaultTopic);
  int partitions = 16;
  std::string replay;
  double replay_speed = 0;
  double click_delay_s = 0;
  std::string config;
};

int Fail(const std::string& what, const Status& s) {
  LogError("serve", what + ": " + s.ToString());
  return 1;
}

int RunServe(const ServeArgs& args) {
  // Block the shutdown signals in every thread; the main thread waits for
  // them with sigwait, so no handler runs in an arbitrary thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  state::StoreOptions store_options;
  auto store = state::EventStore::Open(args.data_dir, store_options);
  if (!store.ok()) return Fail("opening the data directory", store.status());
  LogInfo("serve", "state in " + args.data_dir + " (" +
                       std::to_string((*store)->Counters().impressions) +
                       " impressions stored)");

  std::unique_ptr<ingest::EmbeddedBroker> broker;
  std::string brokers = args.kafka;
  if (brokers.empty()) {
    ingest::EmbeddedBroker::Options bo;
    bo.partitions = args.partitions;
    auto b = ingest::EmbeddedBroker::Start(bo);
    if (!b.ok()) return Fail("starting the embedded broker", b.status());
    broker = std::move(b).value();
    Status s = broker->CreateTopic(args.topic, args.partitions);
    if (!s.ok()) return Fail("creating the topic", s);
    brokers = broker->bootstrap_servers();
    LogInfo("serve", "embedded Kafka broker at " + brokers + " (topic " +
                         args.topic + ", " + std::to_string(args.partitions) +
                         " partitions); feed it with: cfrec replay --kafka " +
                         brokers + " FILE");
  }

  ingest::ConsumerOptions co;
  co.brokers = brokers;
  co.topic = args.topic;
  auto source = ingest::CreateKafkaSource(co);
  if (!source.ok()) return Fail("creating the consumer", source.status());
  ingest::IngestorOptions io;
  io.topic = args.topic;
  ingest::Ingestor ingestor(io, std::move(source).value(), store->get(),
                            /*on_applied=*/nullptr);
  Status s = ingestor.Start();
  if (!s.ok()) return Fail("starting ingest", s);
  LogInfo("serve", "consuming " + args.topic + " from " + brokers);

  std::thread replay_thread;
  std::atomic<bool> replay_done{false};
  if (!args.replay.empty()) {
    replay_thread = std::thread([&] {
      auto file = ReadMindFile(args.replay);
      if (!file.ok()) {
        LogError("replay", file.status().ToString());
        replay_done = true;
        return;
      }
      std::stable_sort(
          file->rows.begin(), file->rows.end(),
          [](const MindRow& a, const MindRow& b) { return a.ts_ms < b.ts_ms; });
      ingest::ProducerOptions po;
      po.brokers = brokers;
      po.topic = args.topic;
      auto producer = ingest::KafkaProducer::Create(po);
      if (!producer.ok()) {
        LogError("replay", producer.status().ToString());
        replay_done = true;
        return;
      }
      ingest::ReplayOptions ro;
      ro.speed = args.replay_speed;
      ro.click_delay_ms = static_cast<int64_t>(args.click_delay_s * 1000);
      const uint64_t before = ingestor.Stats().messages;
      ro.backlog = [&, p = producer->get()] {
        return static_cast<int64_t>(p->delivered()) -
               static_cast<int64_t>(ingestor.Stats().messages - before);
      };
      LogInfo("replay", "replaying " + std::to_string(file->rows.size()) +
                            " rows of " + args.replay);
      auto summary = ingest::Replay(file->rows, producer->get(), ro);
      if (summary.ok()) {
        LogInfo("replay", "done: " + std::to_string(summary->impressions) +
                              " impressions, " +
                              std::to_string(summary->clicks) + " clicks in " +
                              std::to_string(summary->seconds) + " s");
      } else {
        LogError("replay", summary.status().ToString());
      }
      replay_done = true;
    });
  }

  // Status line every 10 s until a shutdown signal arrives.
  std::atomic<bool> stopping{false};
  std::thread status_thread([&] {
    uint64_t last_messages = 0;
    while (!stopping.load()) {
      for (int i = 0; i < 100 && !stopping.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (stopping.load()) break;
      static_cast<void>(ingestor.UpdateLag());
      const auto st = ingestor.Stats();
      if (st.messages == last_messages) continue;
      last_messages = st.messages;
      const auto c = (*store)->Counters();
      LogInfo("serve", "applied " + std::to_string(st.messages) +
                           " messages: " + std::to_string(c.impressions) +
                           " impressions, " + std::to_string(c.clicks_joined) +
                           " clicks, " + std::to_string(c.clicks_pending) +
                           " held, " + std::to_string(c.dead_letters) +
                           " dead letters; lag " +
                           std::to_string(st.consumer_lag));
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo("serve", std::string("received ") +
                       (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                       ", shutting down");
  stopping = true;
  status_thread.join();
  // Order: stop ingest (the last batch is applied), then the store closes
  // when it goes out of scope, then the broker.
  if (replay_thread.joinable()) {
    if (!replay_done.load()) {
      LogWarn("serve", "waiting for the replay to finish producing");
    }
    replay_thread.join();
  }
  ingestor.Stop();
  const auto c = (*store)->Counters();
  LogInfo("serve", "stopped: " + std::to_string(c.impressions) +
                       " impressions and " + std::to_string(c.clicks_joined) +
                       " clicks stored");
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, ExitCode* exit_code) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand(
      "serve",
      "Run the service. With no flags: an embedded Kafka broker on a "
      "loopback port, state in ./cfrec-data, HTTP on 127.0.0.1:8080.");
  cmd->add_option("--http", args->http, "HTTP listen address HOST:PORT")
      ->capture_default_str();
  cmd->add_option("--data-dir", args->data_dir, "RocksDB data directory")
      ->capture_default_str();
  cmd->add_option(
      "--kafka", args->kafka,
      "Bootstrap servers of a real Kafka cluster (HOST:PORT[,...]); "
      "default: start an embedded broker");
  cmd->add_option("--topic", args->topic, "Event topic")->capture_default_str();
  cmd->add_option("--partitions", args->partitions,
                  "Partitions of the embedded broker's topic")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--replay", args->replay,
                  "Replay this MIND-format behaviors.tsv into the topic at "
                  "start (the one-command demo)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--replay-speed", args->replay_speed,
                  "Event-time speed-up of --replay (0 = full speed)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--click-delay", args->click_delay_s,
                  "Seconds of event time between an impression and its clicks "
                  "in --replay")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option(
         "--config", args->config,
         "Learner configuration (JSON); see learner/config/default.json")
      ->check(CLI::ExistingFile);
  cmd->callback([args, exit_code] { exit_code->value = RunServe(*args); });
}

}  // namespace cfrec::app
