// cfrec serve: wires broker, ingest, state, learner and HTTP together and
// shuts them down in order on SIGINT/SIGTERM.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cfrec/ingest/ingestor.h"
#include "cfrec/ingest/kafka.h"
#include "cfrec/ingest/replay.h"
#include "cfrec/learner/options.h"
#include "cfrec/learner/snapshot.h"
#include "cfrec/learner/trainer.h"
#include "cfrec/schemas/log.h"
#include "cfrec/server/http_server.h"
#include "cfrec/server/metrics.h"
#include "cfrec/server/recommend.h"
#include "cfrec/server/service.h"
#include "cfrec/state/background_priority.h"
#include "cfrec/state/event_store.h"
#include "commands.h"
#include "serve_http.h"
#include "serve_roles.h"
#include "store_state_view.h"

namespace cfrec::app {
namespace {

struct ServeArgs {
  HttpArgs front;  // --http, --api-token-file, load shedding (serve_http)
  std::string data_dir = "cfrec-data";
  std::string kafka;  // empty = embedded broker
  std::string topic = std::string(ingest::kDefaultTopic);
  int partitions = 16;
  std::string replay;
  double replay_speed = 0;
  double click_delay_s = 0;
  std::string config;
  std::string intervention;            // empty = the config's (default none)
  std::string trainer;                 // empty = the config's (default default)
  std::string stream_features;         // empty = the config's (default on)
  std::string learner_sched = "idle";  // the learner threads' policy
  int learner_nice = -1;               // -1 = the config's (nice)
  std::string storage_priority = "low";  // RocksDB's background threads
  ScaleOutArgs scale;  // --role and the models topic (serve_roles)
};

void RegisterIngestMetrics(server::MetricsRegistry& m,
                           const ingest::Ingestor& ingestor,
                           const state::EventStore& store) {
  m.AddCallback("cfrec_events_applied_total",
                "Messages consumed and applied to the state store", true,
                [&] { return static_cast<double>(ingestor.Stats().messages); });
  m.AddCallback("cfrec_impressions_total", "Impressions stored", true, [&] {
    return static_cast<double>(store.Counters().impressions);
  });
  m.AddCallback(
      "cfrec_clicks_joined_total", "Clicks joined to their impression", true,
      [&] { return static_cast<double>(store.Counters().clicks_joined); });
  m.AddCallback(
      "cfrec_clicks_pending", "Clicks held until their impression", false,
      [&] { return static_cast<double>(store.Counters().clicks_pending); });
  m.AddCallback(
      "cfrec_dead_letters_total",
      "Messages rejected with a reason (dead-letter store)", true,
      [&] { return static_cast<double>(store.Counters().dead_letters); });
  m.AddCallback(
      "cfrec_consumer_lag_messages",
      "High watermark minus next offset, summed over partitions", false,
      [&] { return static_cast<double>(ingestor.Stats().consumer_lag); });
  m.AddCallback(
      "cfrec_ingest_gap_messages_total",
      "Offsets the broker no longer had when they were needed", true,
      [&] { return static_cast<double>(ingestor.Stats().gap_messages); });
  m.AddCallback(
      "cfrec_ingest_log_changes_total",
      "Times the stored offsets were discarded because the broker serves "
      "another log (the embedded broker's log is new at every start)",
      true, [&] { return static_cast<double>(ingestor.Stats().log_changes); });
  m.AddCallback(
      "cfrec_ingest_partition_restarts_total",
      "Partitions whose stored offset was past the end of their log (topic "
      "recreated), read again from their start",
      true,
      [&] { return static_cast<double>(ingestor.Stats().partition_restarts); });
  m.AddCallback(
      "cfrec_kafka_brokers_up",
      "Kafka brokers the consumer holds a connection to (-1 until known)",
      false, [&] { return static_cast<double>(ingestor.Stats().brokers_up); });
  m.AddCallback("cfrec_ingest_broker_outage_seconds",
                "Seconds since no Kafka broker is reachable; 0 while one is",
                false, [&] { return ingestor.Stats().broker_outage_seconds; });
  m.AddCallback("cfrec_ingest_broker_outages_total",
                "Times no Kafka broker was reachable", true, [&] {
                  return static_cast<double>(ingestor.Stats().broker_outages);
                });
}

// Before ingest stops: what the embedded broker holds dies with the process,
// so it is applied first. Flushes the POST /v1/events producer, then waits
// (at most `limit`) until the stored offsets reach the high watermarks.
void DrainEmbeddedBroker(ingest::KafkaProducer* events_producer,
                         ingest::Ingestor& ingestor,
                         std::chrono::seconds limit) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  Status s = events_producer->Flush(std::chrono::seconds(10));
  if (!s.ok()) LogError("serve", "flushing accepted events: " + s.ToString());
  auto last_report = start;
  while (true) {
    s = ingestor.UpdateLag();
    const int64_t lag = ingestor.Stats().consumer_lag;
    const auto now = Clock::now();
    const double waited = std::chrono::duration<double>(now - start).count();
    if (s.ok() && lag == 0) {
      LogInfo("serve", "drained the embedded broker in " +
                           std::to_string(waited) + " s");
      return;
    }
    const std::string left =
        s.ok() ? std::to_string(lag) + " messages" : s.ToString();
    if (now - start >= limit) {
      LogError("serve", "the embedded broker still holds " + left + " after " +
                            std::to_string(limit.count()) +
                            " s; stopping anyway: they are lost");
      return;
    }
    if (now - last_report >= std::chrono::seconds(1)) {
      LogInfo("serve", "draining the embedded broker: " + left + " to apply");
      last_report = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void RegisterTrainerMetrics(server::MetricsRegistry& m,
                            const learner::Trainer& trainer) {
  // cfrec_training_samples_total, cfrec_training_samples_per_second{source},
  // cfrec_ranker_loss and cfrec_policy_reward come from the served snapshot
  // (server::RegisterModelMetrics); registering them here too made those
  // fail (the first registration of a family wins).
  m.AddCallback("cfrec_policy_baseline",
                "Running reward baseline of the policy's REINFORCE step", false,
                [&] { return trainer.Stats().policy_baseline; });
  auto counter = [&](const char* name, const char* help, auto field) {
    m.AddCallback(name, help, true, [&trainer, field] {
      return static_cast<double>(trainer.Counters().*field);
    });
  };
  counter("cfrec_counterfactual_lists_total",
          "Lists simulated by the counterfactual engine",
          &learner::TrainerCounters::cf_lists);
  counter("cfrec_counterfactual_samples_generated_total",
          "Counterfactual (u, i, j) samples generated",
          &learner::TrainerCounters::cf_samples_generated);
  counter("cfrec_counterfactual_policy_updates_total",
          "REINFORCE steps of the counterfactual policy",
          &learner::TrainerCounters::cf_policy_updates);
  counter("cfrec_counterfactual_seconds_total",
          "Time spent generating counterfactual samples",
          &learner::TrainerCounters::cf_seconds);
  counter("cfrec_trainer_events_replayed_total",
          "Old events revisited from the applied log (idle replay included)",
          &learner::TrainerCounters::events_replayed);
  counter("cfrec_trainer_events_idle_replayed_total",
          "Old events revisited while no new event waited",
          &learner::TrainerCounters::events_idle_replayed);
  // ACL (--trainer acl|ps): both sides of the minimax objective (8) and
  // the clipped propensities G_beta.
  auto gauge = [&](const char* name, const char* help, auto field) {
    m.AddCallback(name, help, false, [&trainer, field] {
      return static_cast<double>(trainer.Stats().*field);
    });
  };
  gauge("cfrec_acl_ranker_objective",
        "ACL: the ranker's propensity-weighted loss (minimised)",
        &learner::TrainingStats::acl_ranker_objective);
  gauge("cfrec_acl_exposure_objective",
        "ACL: the exposure model's objective (maximised)",
        &learner::TrainingStats::acl_exposure_objective);
  gauge("cfrec_exposure_loss", "Exposure model g_psi's fitting loss",
        &learner::TrainingStats::exposure_loss);
  gauge("cfrec_propensity_min", "Smallest propensity of the last step",
        &learner::TrainingStats::propensity_min);
  gauge("cfrec_propensity_mean", "Mean propensity of the last step",
        &learner::TrainingStats::propensity_mean);
  gauge("cfrec_propensity_max", "Largest propensity of the last step",
        &learner::TrainingStats::propensity_max);
  m.AddCallback("cfrec_counterfactual_mix_ratio",
                "Achieved counterfactual / observed ranker samples", false,
                [&] { return trainer.Counters().cf_mix_ratio; });
  m.AddCallback(
      "cfrec_learner_checkpoint_seq",
      "Applied-log seq held by the last learner checkpoint written", false,
      [&] {
        return static_cast<double>(trainer.Counters().last_checkpoint_seq);
      });
  counter("cfrec_learner_checkpoints_unusable_total",
          "Learner checkpoints found undecodable at start (the previous "
          "one was used, or the learner started fresh)",
          &learner::TrainerCounters::checkpoints_unusable);
  m.AddCallback("cfrec_trainer_applied_seq",
                "Last applied-log sequence number trained on", false, [&] {
                  return static_cast<double>(trainer.Stats().applied_seq);
                });
}

int RunServe(const ServeArgs& args) {
  // Block the shutdown signals in every thread; the main thread waits for
  // them with sigwait, so no handler runs in an arbitrary thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (args.scale.role == "replica") {
    return RunReplica({args.front, args.kafka, args.topic,
                       args.data_dir == "cfrec-data" ? "" : args.data_dir,
                       args.scale});
  }
  const bool publishes = args.scale.role == "trainer";

  // The token first: a bad file stops the start before anything is opened.
  auto api_token = LoadApiToken(args.front.api_token_file);
  if (!api_token.ok()) {
    return Fail("reading --api-token-file", api_token.status());
  }

  if (Status s = state::SetStorageBackgroundPriority(args.storage_priority);
      !s.ok()) {
    return Fail("--storage-background-priority", s);
  }
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
    if (publishes) s = broker->CreateTopic(args.scale.models_topic, 1);
    if (!s.ok()) return Fail("creating the models topic", s);
    brokers = broker->bootstrap_servers();
    LogInfo("serve", "embedded Kafka broker at " + brokers + " (topic " +
                         args.topic + ", " + std::to_string(args.partitions) +
                         " partitions, log " + broker->log_id() +
                         "); feed it with: cfrec replay --kafka " + brokers +
                         " FILE");
    LogInfo("serve",
            "the embedded broker keeps its log in memory: SIGTERM/SIGINT "
            "apply what it holds before stopping, SIGKILL loses what is not "
            "applied yet");
  }

  ingest::ConsumerOptions co;
  co.brokers = brokers;
  if (broker) co.fetch_wait_max_ms = 1;  // see ConsumerOptions
  co.topic = args.topic;
  co.group_id = args.scale.group_id;
  auto source = ingest::CreateKafkaSource(co);
  if (!source.ok()) return Fail("creating the consumer", source.status());
  learner::TrainerOptions trainer_options;
  if (!args.config.empty()) {
    auto loaded = learner::LoadTrainerOptions(args.config);
    if (!loaded.ok()) return Fail("reading " + args.config, loaded.status());
    trainer_options = std::move(loaded).value();
  }
  if (!args.intervention.empty()) {
    trainer_options.intervention = args.intervention;
    trainer_options.counterfactual.intervention = args.intervention;
  }
  if (!args.trainer.empty()) {
    trainer_options.trainer = args.trainer;
    trainer_options.learner.trainer = args.trainer;
  }
  if (!args.stream_features.empty()) {
    trainer_options.stream_features = args.stream_features == "on";
  }
  trainer_options.sched = args.learner_sched;
  if (args.learner_nice >= 0) trainer_options.nice = args.learner_nice;
  LogInfo("serve", "learner: ranker " + trainer_options.learner.ranker +
                       ", stream features " +
                       (trainer_options.stream_features ? "on" : "off") +
                       ", intervention " + trainer_options.intervention +
                       ", trainer " + trainer_options.trainer + ", threads " +
                       trainer_options.sched + " at nice " +
                       std::to_string(trainer_options.nice));
  learner::SnapshotHolder snapshots;
  // Serving's retrieval index of each snapshot is built by the trainer as
  // it publishes, not by the first request that meets the snapshot.
  auto retrieval_cache = PrepareRetrievalOnPublish(&snapshots);
  // --role trainer: the trainer's snapshots go to the models topic, and
  // HTTP serves each once it is published (serve_roles.h).
  learner::SnapshotHolder trainer_snapshots;
  learner::Trainer trainer(trainer_options, store->get(),
                           publishes ? &trainer_snapshots : &snapshots);
  Status s = trainer.Start();
  if (!s.ok()) return Fail("starting the learner", s);
  std::unique_ptr<TrainerPublishing> publishing;
  if (publishes) {
    auto started = TrainerPublishing::Start(
        args.scale, brokers, &trainer_snapshots, &snapshots, store->get());
    if (!started.ok()) return Fail("publishing models", started.status());
    publishing = std::move(started).value();
  }

  ingest::IngestorOptions io;
  io.topic = args.topic;
  if (broker) {
    // Its log is new: offsets stored by an earlier start are of another log.
    io.log_id = broker->log_id();
    io.discard_unidentified_offsets = true;
  }
  ingest::Ingestor ingestor(
      io, std::move(source).value(), store->get(),
      [&trainer](std::vector<state::AppliedEvent>&& events) {
        trainer.Enqueue(std::move(events));
      });
  s = ingestor.Start();
  if (!s.ok()) return Fail("starting ingest", s);
  LogInfo("serve", "consuming " + args.topic + " from " + brokers);

  // POST /v1/events produces to the same topic.
  ingest::ProducerOptions events_po;
  events_po.brokers = brokers;
  events_po.topic = args.topic;
  auto events_producer = ingest::KafkaProducer::Create(events_po);
  if (!events_producer.ok()) {
    return Fail("creating the events producer", events_producer.status());
  }

  server::MetricsRegistry metrics;
  RegisterIngestMetrics(metrics, ingestor, **store);
  RegisterTrainerMetrics(metrics, trainer);
  server::RegisterModelMetrics(metrics, &snapshots);
  if (publishing) publishing->RegisterMetrics(metrics);
  server::ServiceContext context;
  context.snapshots = &snapshots;
  context.retrieval_cache = retrieval_cache;
  context.sink = events_producer->get();
  context.events_topic = args.topic;
  context.state_ready = [] { return true; };  // the store is open by now
  context.readiness_checks.push_back(
      [&ingestor] { return ingestor.NotReadyReason(); });
  // A failed write (disk full, read-only, I/O error) stops ingest until the
  // store writes again.
  context.readiness_checks.push_back([store = store->get()] {
    const Status health = store->StorageHealth();
    return health.ok() ? std::string()
                       : "state store cannot write: " + health.message();
  });
  context.metrics = &metrics;
  context.api_token = *api_token;
  // The dashboard: its page and what it shows of the store.
  StoreStateView state_view(store->get());
  context.state_view = &state_view;
  const std::vector<server::StaticAsset> assets = DashboardAssets();
  context.assets = assets;
  auto so = MakeServerOptions(args.front, api_token->has_value());
  if (!so.ok()) return Fail("parsing --http", so.status());
  server::HttpServer http(*so, context);
  s = http.Start();
  if (!s.ok()) return Fail("starting HTTP on " + args.front.http, s);
  LogInfo("serve", "HTTP on " + so->host + ":" + std::to_string(http.port()) +
                       " (dashboard at http://" + so->host + ":" +
                       std::to_string(http.port()) +
                       "/; try GET /v1/model, /v1/recommendations?user_id=U, "
                       "/metrics)");

  std::atomic<bool> stopping{false};  // a shutdown signal arrived
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
      SortMindRowsByTime(&file->rows);
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
      // A shutdown stops the replay; what it sent is still applied.
      ro.stop = [&] { return stopping.load(); };
      LogInfo("replay", "replaying " + std::to_string(file->rows.size()) +
                            " rows of " + args.replay);
      auto summary = ingest::Replay(file->rows, producer->get(), ro);
      if (summary.ok()) {
        LogInfo("replay", std::string(summary->stopped ? "stopped by the "
                                                         "shutdown after "
                                                       : "done: ") +
                              std::to_string(summary->impressions) +
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
  std::thread status_thread([&] {
    uint64_t last_messages = 0;
    while (!stopping.load()) {
      for (int i = 0; i < 100 && !stopping.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (i % 10 == 9) static_cast<void>(ingestor.UpdateLag());
      }
      if (stopping.load()) break;
      const auto st = ingestor.Stats();
      if (st.messages == last_messages) continue;
      last_messages = st.messages;
      const auto c = (*store)->Counters();
      LogInfo(
          "serve",
          "applied " + std::to_string(st.messages) +
              " messages: " + std::to_string(c.impressions) + " impressions, " +
              std::to_string(c.clicks_joined) + " clicks, " +
              std::to_string(c.clicks_pending) + " held, " +
              std::to_string(c.dead_letters) + " dead letters; lag " +
              std::to_string(st.consumer_lag) +
              "; learner: " + std::to_string(trainer.Stats().observed_samples) +
              " samples, loss " + std::to_string(trainer.Stats().ranker_loss) +
              ", model v" +
              std::to_string(snapshots.Get() ? snapshots.Get()->version() : 0));
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo("serve", std::string("received ") +
                       (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                       ", shutting down");
  stopping = true;
  status_thread.join();
  // Order: stop accepting HTTP and finish requests in flight; with the
  // embedded broker, apply everything it holds (its log dies with the
  // process); stop ingest (the last batch is applied); stop the learner
  // (final checkpoint); the store closes when it goes out of scope, then
  // the broker.
  http.Drain();
  if (replay_thread.joinable()) {
    if (!replay_done.load()) {
      LogInfo("serve", "stopping the replay");
    }
    replay_thread.join();
  }
  if (broker) {
    DrainEmbeddedBroker(events_producer->get(), ingestor,
                        std::chrono::seconds(30));
  }
  ingestor.Stop();
  s = trainer.Stop();
  if (!s.ok()) LogError("serve", "learner stop: " + s.ToString());
  if (publishing) publishing->Stop();  // publishes the last snapshot
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
  cmd->add_option("--http", args->front.http, "HTTP listen address HOST:PORT")
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
  cmd->add_option("--intervention", args->intervention,
                  "Counterfactual samples: none (observed data only), random "
                  "(CPR-r: uniformly random lists) or learned (CPR: the "
                  "Gaussian policy); overrides the config")
      ->check(CLI::IsMember({"none", "random", "learned"}));
  cmd->add_option("--trainer", args->trainer,
                  "Training mode: default, ps (inverse propensity weights) or "
                  "acl (adversarial counterfactual learning); overrides the "
                  "config")
      ->check(CLI::IsMember({"default", "ps", "acl"}));
  cmd->add_option("--stream-features", args->stream_features,
                  "on (default): rank by the stream features (decayed item "
                  "counts and CTR, item age, the user's reads) combined with "
                  "the ranker by a model learned online; off: the ranker "
                  "alone, popularity for unknown users (ablation); overrides "
                  "the config")
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_option(
         "--learner-sched", args->learner_sched,
         "Scheduling policy of the learner's threads (training, snapshot "
         "and index builds, checkpoint writes, the counterfactual "
         "generator): normal (SCHED_OTHER at --learner-nice), batch "
         "(SCHED_BATCH at --learner-nice) or idle (SCHED_IDLE: only CPU "
         "that serving and ingest leave; may get none on a saturated "
         "machine; measured at 8 x the sustainable request rate, it still "
         "trained and published). Overrides the config's 'sched'")
      ->capture_default_str()
      ->check(CLI::IsMember({"normal", "batch", "idle"}));
  cmd->add_option("--learner-nice", args->learner_nice,
                  "Nice value of the learner's threads (0-19); overrides the "
                  "config's 'nice' [10]")
      ->check(CLI::Range(0, 19));
  cmd->add_option(
         "--storage-background-priority", args->storage_priority,
         "CPU priority of the store's flush and compaction threads: normal "
         "(nice 0), low (nice 19: they run on CPU that serving and ingest "
         "leave, and still get a share of a busy machine) or idle "
         "(SCHED_IDLE: none while other threads want the CPU; writes may "
         "stall on a saturated machine)")
      ->capture_default_str()
      ->check(CLI::IsMember({"normal", "low", "idle"}));
  cmd->add_option("--api-token-file", args->front.api_token_file,
                  "File holding a token that POST /v1/events must present as "
                  "'Authorization: Bearer <token>' (surrounding whitespace "
                  "trimmed; keep it mode 600); reads stay open. Default: no "
                  "token, every route open");
  cmd->add_option("--http-threads", args->front.http_threads,
                  "Threads running request handlers (GET /healthz, /readyz "
                  "and /metrics run on the I/O threads instead)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--max-inflight", args->front.max_inflight,
                  "Load shedding: most requests queued or running at once; "
                  "the excess is answered 503 with Retry-After at once "
                  "(probes, /metrics and /v1/model are never shed)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-queue-ms", args->front.max_queue_ms,
                  "Load shedding: while the oldest queued request has waited "
                  "longer than this, or the queued requests would take longer "
                  "than this to run, new requests are answered 503 at once; "
                  "after a loaded interval a request already this late (in "
                  "its socket, then the queue) is refused too, so that a "
                  "stall's backlog does not delay the requests behind it")
      ->capture_default_str()
      ->check(CLI::Range(0, 60'000));
  cmd->add_option("--shed-target-ms", args->front.shed_target_ms,
                  "Load shedding by delay (CoDel-style): a request's delay is "
                  "its wait unread in its socket plus the queue ahead; when "
                  "no request of a whole loaded --shed-interval-ms would "
                  "start within this many ms (a standing queue, not a "
                  "burst), requests that would start later are answered 503 "
                  "at once until an interval in which at most a quarter "
                  "would, or one not loaded; after a loaded interval, "
                  "bursts up to --max-queue-ms. Loaded: at least 16 requests "
                  "per interval by their arrival times; so a light client's "
                  "few requests are never refused as late, however long a "
                  "busy machine held them. 0 = off (only --max-inflight and "
                  "--max-queue-ms shed)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 60'000.0));
  cmd->add_option("--shed-interval-ms", args->front.shed_interval_ms,
                  "Load shedding by delay: the interval that tells a standing "
                  "queue from a burst (see --shed-target-ms)")
      ->capture_default_str()
      ->check(CLI::Range(1, 60'000));
  cmd->add_option("--http-handler-nice", args->front.handler_nice,
                  "Nice value of the handler threads (0-19; the I/O threads "
                  "keep 0, or SCHED_FIFO with --http-io-realtime-priority): "
                  "above 0 the I/O threads, which read requests and "
                  "answer the shed ones, win the CPU over the handlers on a "
                  "saturated machine")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  cmd->add_option("--http-run-inline", args->front.run_inline,
                  "Run to completion: a request that would not wait for a "
                  "handler thread (none queued, one free) runs on the I/O "
                  "thread that read it, without the hand-off to a handler "
                  "thread and back; at most --http-inline-io-threads do so "
                  "at once (true/false)")
      ->capture_default_str();
  cmd->add_option("--http-inline-io-threads", args->front.inline_io_threads,
                  "Run to completion: most I/O threads running a request "
                  "inline at once (there are 2); 0 = all but one. With all, "
                  "a request waits unread while both run one, and under "
                  "overload the delay rule (--shed-target-ms) refuses it once "
                  "read if it waited too long")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  cmd->add_option(
         "--http-io-realtime-priority", args->front.io_realtime_priority,
         "1-99: the HTTP I/O threads run under SCHED_FIFO at this "
         "priority, so no other thread of the machine's normal policy takes "
         "the CPU from a runnable one (under overload they take up to the "
         "kernel's real-time share, 95 %, and ingest and the learner share "
         "the rest); needs CAP_SYS_NICE, else a warning and SCHED_OTHER. "
         "0 = SCHED_OTHER")
      ->capture_default_str()
      ->check(CLI::Range(0, 99));
  AddScaleOutFlags(cmd, &args->scale);
  cmd->callback([args, exit_code] { exit_code->value = RunServe(*args); });
}

}  // namespace cfrec::app
