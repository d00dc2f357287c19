#include "serve_roles.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "cfrec/ingest/kafka.h"
#include "cfrec/replica/follower.h"
#include "cfrec/replica/publisher.h"
#include "cfrec/schemas/log.h"
#include "cfrec/server/http_server.h"
#include "cfrec/server/metrics.h"
#include "cfrec/server/recommend.h"
#include "cfrec/server/service.h"
#include "cfrec/state/event_store.h"
#include "serve_http.h"

namespace cfrec::app {
namespace {

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", s);
  return buf;
}

std::string Millis(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f ms", ms);
  return buf;
}

std::chrono::milliseconds Ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  return v[i];
}

void RegisterFollowerMetrics(server::MetricsRegistry& m,
                             const replica::ModelFollower& f) {
  auto add = [&](const char* name, const char* help, bool counter, auto read) {
    m.AddCallback(name, help, counter,
                  [&f, read] { return static_cast<double>(read(f.Stats())); });
  };
  using S = replica::FollowerStats;
  add("cfrec_replica_caught_up",
      "1 once the replica has read the models topic to its end at start", false,
      [](const S& s) { return s.caught_up ? 1 : 0; });
  add("cfrec_replica_full_images_applied_total",
      "Full model images built from the models topic", true,
      [](const S& s) { return s.fulls_applied; });
  add("cfrec_replica_deltas_applied_total", "Model deltas applied", true,
      [](const S& s) { return s.deltas_applied; });
  add("cfrec_replica_deltas_skipped_total",
      "Deltas whose base was not the version held (one was lost); the "
      "replica waits for the next full image",
      true, [](const S& s) { return s.deltas_skipped; });
  add("cfrec_replica_apply_failures_total",
      "Complete images that failed to decode or validate (never served)", true,
      [](const S& s) { return s.apply_failures; });
  add("cfrec_replica_chunks_rejected_total",
      "Chunks rejected: damaged (CRC32C) or out of sequence", true,
      [](const S& s) { return s.chunks.rejected_chunks; });
  add("cfrec_replica_images_dropped_total",
      "Images started and never completed (never served)", true,
      [](const S& s) { return s.chunks.dropped_images; });
  add("cfrec_replica_publish_to_serve_seconds",
      "Time from the trainer publishing the served version to this replica "
      "serving it",
      false, [](const S& s) { return s.last_latency_ms / 1000; });
  add("cfrec_replica_apply_seconds",
      "Time to decode and build the last version applied", false,
      [](const S& s) { return s.last_apply_ms / 1000; });
}

}  // namespace

void AddScaleOutFlags(CLI::App* cmd, ScaleOutArgs* a) {
  cmd->add_option(
         "--role", a->role,
         "all: ingest, store, learner and HTTP in one process. trainer: the "
         "same, and it publishes model snapshots to --models-topic (its "
         "HTTP serves the published versions). replica: no store and no "
         "learner; follows --models-topic on --kafka (required), answers "
         "/v1/rank and /v1/recommendations and produces POST /v1/events to "
         "--topic (docs/SCALE.md)")
      ->capture_default_str()
      ->check(CLI::IsMember({"all", "trainer", "replica"}));
  cmd->add_option("--models-topic", a->models_topic,
                  "Compacted Kafka topic of model snapshots (one partition): "
                  "--role trainer publishes to it, --role replica follows it")
      ->capture_default_str();
  cmd->add_option("--models-full-interval", a->full_interval_s,
                  "Seconds between full model images on --models-topic "
                  "(--role trainer)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--models-delta-interval", a->delta_interval_s,
                  "Seconds between deltas (rows changed since the previous "
                  "version) on --models-topic (--role trainer); replicas "
                  "serve a new version about this long after it is trained")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--group-id", a->group_id,
                  "Kafka consumer group of ingest (offsets stay in the "
                  "store; the group is what the broker sees)")
      ->capture_default_str();
}

// ------------------------------------------------------------ trainer

Result<std::unique_ptr<TrainerPublishing>> TrainerPublishing::Start(
    const ScaleOutArgs& args, const std::string& brokers,
    const learner::SnapshotHolder* trainer_snapshots,
    learner::SnapshotHolder* served, const state::EventStore* store) {
  replica::PublisherOptions po;
  po.brokers = brokers;
  po.topic = args.models_topic;
  po.full_interval = Ms(args.full_interval_s);
  po.delta_interval = Ms(args.delta_interval_s);
  auto ids = [store] {
    replica::IdSource s;
    s.num_users = store->NumUsers();
    s.num_items = store->NumItems();
    s.user_id = [store](uint32_t u) { return store->UserId(u); };
    s.item_id = [store](uint32_t i) { return store->ItemId(i); };
    return s;
  };
  auto publisher =
      replica::ModelPublisher::Start(po, trainer_snapshots, served, ids);
  if (!publisher.ok()) return publisher.status();
  std::unique_ptr<TrainerPublishing> out(new TrainerPublishing());
  out->publisher_ = std::move(publisher).value();
  LogInfo("serve", "role trainer: publishing model snapshots to " +
                       args.models_topic + " (a full image every " +
                       Seconds(args.full_interval_s) + ", deltas every " +
                       Seconds(args.delta_interval_s) + ")");
  return out;
}

TrainerPublishing::~TrainerPublishing() { Stop(); }

void TrainerPublishing::Stop() {
  if (publisher_) publisher_->Stop();
}

void TrainerPublishing::RegisterMetrics(server::MetricsRegistry& m) const {
  const replica::ModelPublisher* p = publisher_.get();
  auto add = [&](const char* name, const char* help, bool counter, auto read) {
    m.AddCallback(name, help, counter,
                  [p, read] { return static_cast<double>(read(p->Stats())); });
  };
  using S = replica::PublisherStats;
  add("cfrec_models_full_images_published_total",
      "Full model images published to the models topic", true,
      [](const S& s) { return s.fulls; });
  add("cfrec_models_deltas_published_total",
      "Model deltas published to the models topic", true,
      [](const S& s) { return s.deltas; });
  add("cfrec_models_publish_failures_total",
      "Versions not published (encoding or delivery failed); the next one "
      "is a full image",
      true, [](const S& s) { return s.failures; });
  for (const bool full : {true, false}) {
    m.AddCallback("cfrec_models_published_bytes_total",
                  "Model image bytes published to the models topic, by kind",
                  true,
                  [p, full] {
                    const S s = p->Stats();
                    return static_cast<double>(full ? s.full_bytes
                                                    : s.bytes - s.full_bytes);
                  },
                  {"kind"}, {full ? "full" : "delta"});
  }
  add("cfrec_models_published_version", "Newest published model version", false,
      [](const S& s) { return s.last_version; });
  add("cfrec_models_last_image_bytes", "Size of the newest published image",
      false, [](const S& s) { return s.last_bytes; });
}

// ------------------------------------------------------------ replica

int RunReplica(const ReplicaArgs& args) {
  if (args.kafka.empty()) {
    LogError("serve",
             "--role replica needs --kafka HOST:PORT[,...]: a replica "
             "follows the models topic of a trainer's Kafka cluster and has "
             "no embedded broker");
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto api_token = LoadApiToken(args.front.api_token_file);
  if (!api_token.ok()) {
    return Fail("reading --api-token-file", api_token.status());
  }
  if (!args.data_dir.empty()) {
    LogInfo("serve", "role replica keeps no state: --data-dir " +
                         args.data_dir + " is not used");
  }

  learner::SnapshotHolder snapshots;
  auto retrieval_cache = PrepareRetrievalOnPublish(&snapshots);
  replica::FollowerOptions fo;
  fo.brokers = args.kafka;
  fo.topic = args.scale.models_topic;
  auto follower = replica::ModelFollower::Start(fo, &snapshots);
  if (!follower.ok()) return Fail("following the models", follower.status());
  LogInfo("serve", "role replica: following " + fo.topic + " on " + args.kafka);

  ingest::ProducerOptions events_po;
  events_po.brokers = args.kafka;
  events_po.topic = args.topic;
  auto events_producer = ingest::KafkaProducer::Create(events_po);
  if (!events_producer.ok()) {
    return Fail("creating the events producer", events_producer.status());
  }

  server::MetricsRegistry metrics;
  server::RegisterModelMetrics(metrics, &snapshots);
  RegisterFollowerMetrics(metrics, **follower);
  server::ServiceContext context;
  context.snapshots = &snapshots;
  context.retrieval_cache = retrieval_cache;
  context.sink = events_producer->get();
  context.events_topic = args.topic;
  context.metrics = &metrics;
  context.api_token = *api_token;
  const std::vector<server::StaticAsset> assets = DashboardAssets();
  context.assets = assets;
  auto so = MakeServerOptions(args.front, api_token->has_value());
  if (!so.ok()) return Fail("parsing --http", so.status());
  server::HttpServer http(*so, context);
  Status s = http.Start();
  if (!s.ok()) return Fail("starting HTTP on " + args.front.http, s);
  LogInfo("serve", "HTTP on " + so->host + ":" + std::to_string(http.port()) +
                       " (role replica)");

  int sig = 0;
  sigwait(&signals, &sig);
  LogInfo("serve", std::string("received ") +
                       (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                       ", shutting down");
  http.Drain();
  (*follower)->Stop();
  s = (*events_producer)->Flush(std::chrono::seconds(10));
  if (!s.ok()) LogError("serve", "flushing accepted events: " + s.ToString());
  const auto st = (*follower)->Stats();
  const auto latencies = (*follower)->Latencies();
  LogInfo("serve", "stopped: served version " + std::to_string(st.version) +
                       "; " + std::to_string(st.fulls_applied) +
                       " full images, " + std::to_string(st.deltas_applied) +
                       " deltas applied; " + "publish-to-serve over " +
                       std::to_string(latencies.size()) + " versions: p50 " +
                       Millis(Percentile(latencies, 0.5)) + ", max " +
                       Millis(Percentile(latencies, 1.0)));
  return 0;
}

}  // namespace cfrec::app
