// cfrec serve --role all|trainer|replica: the scale-out roles (docs/SCALE.md).
//   all      ingest, store, learner and HTTP in one process (the default).
//   trainer  the same, and it publishes its snapshots to the models topic;
//            its HTTP serves the published versions only.
//   replica  no store, no learner: follows the models topic, answers the
//            read routes, and produces POST /v1/events to the events topic.
#ifndef CFREC_APP_SERVE_ROLES_H_
#define CFREC_APP_SERVE_ROLES_H_

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "cfrec/learner/snapshot.h"
#include "cfrec/schemas/status.h"
#include "serve_http.h"

namespace cfrec::state {
class EventStore;
}
namespace cfrec::server {
class MetricsRegistry;
}
namespace cfrec::replica {
class ModelPublisher;
}

namespace cfrec::app {

struct ScaleOutArgs {
  std::string role = "all";
  std::string models_topic = "cfrec.models";
  double full_interval_s = 60;
  double delta_interval_s = 1;
  std::string group_id = "cfrec";
};

// --role, --models-topic, --models-full-interval, --models-delta-interval,
// --group-id.
void AddScaleOutFlags(CLI::App* serve, ScaleOutArgs* args);

// What --role replica reads of the other serve flags.
struct ReplicaArgs {
  HttpArgs front;  // --http, --api-token-file, load shedding
  std::string kafka;
  std::string topic;
  std::string data_dir;  // unused; noted in the log when set
  ScaleOutArgs scale;
};
int RunReplica(const ReplicaArgs& args);

// --role trainer: publishes `trainer_snapshots` (the trainer's holder) to
// the models topic, handing each published version to `served`.
class TrainerPublishing {
 public:
  static Result<std::unique_ptr<TrainerPublishing>> Start(
      const ScaleOutArgs& args, const std::string& brokers,
      const learner::SnapshotHolder* trainer_snapshots,
      learner::SnapshotHolder* served, const state::EventStore* store);
  ~TrainerPublishing();
  void RegisterMetrics(server::MetricsRegistry& metrics) const;
  // Publishes the trainer's last snapshot, then stops.
  void Stop();

 private:
  TrainerPublishing() = default;
  std::unique_ptr<replica::ModelPublisher> publisher_;
};

}  // namespace cfrec::app

#endif  // CFREC_APP_SERVE_ROLES_H_
