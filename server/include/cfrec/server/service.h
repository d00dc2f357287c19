// The HTTP API of cfrec as plain functions: a request value in, a response
// value out. The transport (HttpServer) only converts to and from Beast.
//
// Routes (schemas/openapi.yaml is the full contract):
//   GET  /v1/recommendations?user_id=U&n=10   top-n for a user
//   POST /v1/rank        {"user_id": U, "items": [...]}  rank given items
//   POST /v1/events      an event object or an array of them -> 202
//   GET  /v1/model       model version, age, ranker, training progress
//   GET  /metrics        Prometheus text exposition 0.0.4
//   GET  /healthz        process up
//   GET  /readyz         state open, a snapshot published, readiness_checks
// and the dashboard's routes (dashboard.h): GET /, /v1/metrics, /v1/explain,
// /v1/trending, /v1/dead-letters.
// Only POST /v1/events changes state; with ServiceContext::api_token set it
// needs "Authorization: Bearer <token>". Every other route is a read and
// stays open.
#ifndef CFREC_SERVER_SERVICE_H_
#define CFREC_SERVER_SERVICE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/ingest/event_sink.h"
#include "cfrec/learner/snapshot.h"
#include "cfrec/schemas/event.h"
#include "cfrec/server/auth.h"
#include "cfrec/server/dashboard.h"
#include "cfrec/server/http_types.h"
#include "cfrec/server/metrics.h"
#include "cfrec/server/recommend.h"

namespace cfrec::server {

struct ServingOptions {
  // How many items the dot-product retrieval passes to the ranker.
  // Default 300.
  size_t retrieval_candidates = 300;
  // Largest accepted `n` of GET /v1/recommendations. Default 100.
  size_t max_n = 100;
  // `n` when the query does not give one. Default 10.
  size_t default_n = 10;
  // Most items in one POST /v1/rank request. Default 1,000.
  size_t max_rank_items = 1000;
  // Most events in one POST /v1/events request. Default 1,000.
  size_t max_events_per_request = 1000;
  // Deepest JSON nesting accepted in a request body; deeper documents are
  // rejected before parsing. Default 16 (events need 2).
  int max_json_depth = 16;
  // Limits applied to every event of POST /v1/events and to ids in
  // requests (max_id_bytes). Default EventLimits{}.
  EventLimits event_limits;
};

// Everything the handlers read. The app fills it once and it must not change
// while a server uses it. Raw pointers are not owned and must outlive every
// Handle() call that reads them. Thread-safety: Handle() may run on many
// threads at once with the same context; the pointees must be thread-safe
// (SnapshotHolder, EventSink and MetricsRegistry are).
struct ServiceContext {
  // Latest model; required (a null holder answers 503 like an empty one).
  const learner::SnapshotHolder* snapshots = nullptr;
  // Where POST /v1/events sends events; null answers 503.
  ingest::EventSink* sink = nullptr;
  // Reported in POST /v1/events answers; the sink decides where events go.
  // Default "cfrec.events".
  std::string events_topic = "cfrec.events";
  // True once the state store is open; null means there is no state to
  // wait for. Called by GET /readyz.
  std::function<bool()> state_ready;
  // More conditions of GET /readyz (e.g. the Kafka brokers are reachable).
  // Each returns why the service is not ready ("kafka unreachable for
  // 12 s"), or an empty string when its part is. Each must be thread-safe
  // and must not block.
  std::vector<std::function<std::string()>> readiness_checks;
  ServingOptions serving;
  // Exposed by GET /metrics; may be null (GET /metrics then answers 503).
  MetricsRegistry* metrics = nullptr;
  // Wall clock in ms since the Unix epoch, for model age; null means the
  // system clock. Tests fix it.
  std::function<int64_t()> now_unix_ms;
  // The retrieval matrix of the latest snapshot, built once per snapshot.
  // Owned (shared by copies of the context); thread-safe; null disables
  // caching (an index is then built per request, which is slow).
  std::shared_ptr<CandidateIndexCache> retrieval_cache =
      std::make_shared<CandidateIndexCache>();
  // When set, the routes that change state (RouteInfo::changes_state: POST
  // /v1/events) answer 401 unless the request carries "Authorization:
  // Bearer <token>"; each refusal counts in
  // cfrec_http_unauthorized_total{route,reason}. Unset (the default): every
  // route is open.
  std::optional<ApiToken> api_token;
  // The store's recent clicks (GET /v1/explain) and dead letters (GET
  // /v1/dead-letters). Not owned; must outlive the server. Null: explain
  // shows no clicks and dead-letters answers 503.
  const StateView* state_view = nullptr;
  // Files GET serves at their path (the dashboard page). The views must
  // outlive the server. Empty: GET / answers 404.
  std::span<const StaticAsset> assets;
};

// The routes Handle() serves, for documentation checks and tooling.
struct RouteInfo {
  std::string_view method;
  std::string_view path;
  // True for routes that change state; they need the API token when one is
  // configured.
  bool changes_state = false;
};
std::span<const RouteInfo> Routes();

// Routes and answers one request. Never throws; every failure is a JSON
// error document (see ErrorResponse) with the matching status.
HttpResponse Handle(const ServiceContext& context, const HttpRequest& request);

// Counts one finished request in `metrics` (no-op when null):
// cfrec_http_requests_total{route,method,status} and
// cfrec_http_request_duration_seconds{route,status}. The transport calls it
// for every response it writes, including its own 400/413/503.
void RecordRequest(MetricsRegistry* metrics, std::string_view route,
                   std::string_view method, int status, double seconds);

// Creates at zero the counters Handle() adds to only on some answers, so
// they are exposed before the first one: with an API token,
// cfrec_http_unauthorized_total{route,reason} for each route that changes
// state and each reason (missing, wrong_scheme, wrong_token). No-op when
// context.metrics is null. HttpServer's ServiceContext constructor calls it.
void InitServiceMetrics(const ServiceContext& context);

// Registers gauges read from the latest snapshot at scrape time:
// cfrec_model_version, cfrec_model_age_seconds, cfrec_policy_reward,
// cfrec_ranker_loss, cfrec_sem_r_loss, cfrec_sem_s_loss,
// cfrec_training_samples_total{source=observed| counterfactual} and
// cfrec_training_samples_per_second{source} (the rate between the snapshots
// seen by successive scrapes). `snapshots` is not owned and must outlive the
// registry's last Expose(). `now_unix_ms` as in ServiceContext. Returns false
// if these names are already registered.
bool RegisterModelMetrics(MetricsRegistry& metrics,
                          const learner::SnapshotHolder* snapshots,
                          std::function<int64_t()> now_unix_ms = nullptr);

}  // namespace cfrec::server

#endif  // CFREC_SERVER_SERVICE_H_
