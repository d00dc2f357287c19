#include "cfrec/server/service.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cfrec/server/query.h"
#include "cfrec/server/recommend.h"
#include "dashboard_routes.h"
#include "handler_util.h"
#include "recommendations_json.h"

namespace cfrec::server {
namespace {

using nlohmann::json;

using internal::BadRequest;
using internal::CheckId;
using internal::CountParam;
using internal::JsonResponse;
using internal::Latest;
using internal::NotReady;
using internal::NowMs;
using internal::RequiredId;
using internal::TakeParams;

// Common checks of a JSON request body; parses it into `doc`.
std::optional<HttpResponse> ParseJsonBody(const ServiceContext& context,
                                          const HttpRequest& request,
                                          json* doc) {
  if (MediaType(request.content_type) != "application/json") {
    return ErrorResponse(415, "unsupported_media_type",
                         "Content-Type must be application/json");
  }
  if (request.body.empty()) return BadRequest("request body is empty");
  if (!JsonDepthWithin(request.body, context.serving.max_json_depth)) {
    return BadRequest("JSON nested deeper than " +
                      std::to_string(context.serving.max_json_depth));
  }
  *doc = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (doc->is_discarded()) return BadRequest("body is not valid JSON");
  return std::nullopt;
}

json ModelVersionJson(const learner::ModelSnapshot& snapshot) {
  return snapshot.version();
}

// ---------------------------------------------------------------- routes

HttpResponse GetRecommendations(const ServiceContext& context,
                                const HttpRequest&,
                                const ParsedTarget& target) {
  std::vector<std::optional<std::string>> params;
  if (Status s = TakeParams(target, {"user_id", "n"}, &params); !s.ok()) {
    return ErrorResponseFor(s);
  }
  const Result<std::string> user =
      RequiredId(params[0], "user_id", context.serving);
  if (!user.ok()) return ErrorResponseFor(user.status());
  const std::string& user_id = *user;
  const Result<uint64_t> count = CountParam(
      params[1], context.serving.default_n, context.serving.max_n, "n");
  if (!count.ok()) return ErrorResponseFor(count.status());
  const size_t n = static_cast<size_t>(*count);
  const auto snapshot = Latest(context);
  if (snapshot == nullptr) return NotReady("no model snapshot published yet");

  RecommendOptions options;
  options.retrieval_candidates = context.serving.retrieval_candidates;
  const Recommendation rec =
      context.retrieval_cache != nullptr
          ? Recommend(*snapshot, *context.retrieval_cache->Get(snapshot),
                      user_id, n, options)
          : Recommend(*snapshot, user_id, n, options);
  HttpResponse response;
  response.status = 200;
  internal::WriteRecommendationsJson(*snapshot, user_id, rec, &response.body);
  return response;
}

HttpResponse PostRank(const ServiceContext& context, const HttpRequest& request,
                      const ParsedTarget& target) {
  if (!target.params.empty()) return BadRequest("no query parameters allowed");
  json doc;
  if (auto error = ParseJsonBody(context, request, &doc)) return *error;
  if (!doc.is_object()) return BadRequest("body must be a JSON object");
  for (const auto& [key, value] : doc.items()) {
    if (key != "user_id" && key != "items") {
      return BadRequest("unknown field '" + key.substr(0, 64) + "'");
    }
  }
  const auto user_it = doc.find("user_id");
  if (user_it == doc.end() || !user_it->is_string()) {
    return BadRequest("'user_id' must be a string");
  }
  const std::string user_id = user_it->get<std::string>();
  if (Status s = CheckId(user_id, "user_id", context.serving); !s.ok()) {
    return ErrorResponseFor(s);
  }
  const auto items_it = doc.find("items");
  if (items_it == doc.end() || !items_it->is_array()) {
    return BadRequest("'items' must be an array of strings");
  }
  if (items_it->empty()) return BadRequest("'items' must not be empty");
  if (items_it->size() > context.serving.max_rank_items) {
    return BadRequest("'items' has more than " +
                      std::to_string(context.serving.max_rank_items) +
                      " entries");
  }
  std::vector<std::string> items;
  items.reserve(items_it->size());
  std::unordered_set<std::string_view> seen;
  for (const json& item : *items_it) {
    if (!item.is_string()) {
      return BadRequest("'items' must be an array of strings");
    }
    items.push_back(item.get<std::string>());
    if (Status s = CheckId(items.back(), "items[]", context.serving); !s.ok()) {
      return ErrorResponseFor(s);
    }
  }
  for (const std::string& item : items) {
    if (!seen.insert(item).second) {
      return BadRequest("'items' lists '" + item + "' more than once");
    }
  }
  const auto snapshot = Latest(context);
  if (snapshot == nullptr) return NotReady("no model snapshot published yet");

  std::vector<std::string> ids;
  const Recommendation rec = RankItems(*snapshot, user_id, items, &ids);
  json out_items = json::array();
  for (size_t i = 0; i < rec.items.size(); ++i) {
    json entry = {{"item_id", ids[i]}, {"known", rec.items[i].known}};
    entry["score"] = rec.items[i].score.has_value() ? json(*rec.items[i].score)
                                                    : json(nullptr);
    out_items.push_back(std::move(entry));
  }
  json out = {{"user_id", user_id},
              {"model_version", ModelVersionJson(*snapshot)},
              {"fallback", rec.popularity_fallback ? json("popularity")
                           : rec.no_user_term      ? json("stream_features")
                                                   : json(nullptr)},
              {"items", std::move(out_items)}};
  return JsonResponse(200, out);
}

// POST /v1/events: ?ack=durable answers only once the log has confirmed
// every event (the producer's delivery reports), waiting at most
// timeout_ms (default 2000, at most 30000); otherwise 202 as soon as the
// events are queued to the producer.
HttpResponse PostEvents(const ServiceContext& context,
                        const HttpRequest& request,
                        const ParsedTarget& target) {
  bool durable = false;
  std::chrono::milliseconds timeout(2000);
  bool timeout_given = false;
  bool ack_given = false;
  for (const auto& [name, value] : target.params) {
    if ((name == "ack" && ack_given) ||
        (name == "timeout_ms" && timeout_given)) {
      return BadRequest("query parameter '" + name + "' given twice");
    }
    if (name == "ack") {
      ack_given = true;
      if (value != "durable" && value != "queued") {
        return BadRequest("'ack' must be 'durable' or 'queued'");
      }
      durable = value == "durable";
    } else if (name == "timeout_ms") {
      Result<uint64_t> ms = ParseUint(value, 1, 30'000, "timeout_ms");
      if (!ms.ok()) return ErrorResponseFor(ms.status());
      timeout = std::chrono::milliseconds(*ms);
      timeout_given = true;
    } else {
      return BadRequest("unknown query parameter '" + name.substr(0, 64) +
                        "' (allowed: ack, timeout_ms)");
    }
  }
  if (timeout_given && !durable) {
    return BadRequest("'timeout_ms' needs 'ack=durable'");
  }
  json doc;
  if (auto error = ParseJsonBody(context, request, &doc)) return *error;
  std::vector<Event> events;
  auto parse_one = [&](const json& element,
                       std::string_view where) -> std::optional<HttpResponse> {
    if (!element.is_object()) {
      return BadRequest(std::string(where) + "an event must be a JSON object");
    }
    Result<Event> event =
        ParseEvent(element.dump(-1, ' ', false, json::error_handler_t::strict),
                   context.serving.event_limits);
    if (!event.ok()) {
      return BadRequest(std::string(where) + event.status().message());
    }
    events.push_back(std::move(*event));
    return std::nullopt;
  };
  if (doc.is_array()) {
    if (doc.empty()) return BadRequest("no events in the array");
    if (doc.size() > context.serving.max_events_per_request) {
      return BadRequest("more than " +
                        std::to_string(context.serving.max_events_per_request) +
                        " events in one request");
    }
    for (size_t i = 0; i < doc.size(); ++i) {
      const std::string where = "events[" + std::to_string(i) + "]: ";
      if (auto error = parse_one(doc[i], where)) return *error;
    }
  } else {
    if (auto error = parse_one(doc, "")) return *error;
  }
  if (context.sink == nullptr) {
    return ErrorResponse(503, "unavailable",
                         "this server has no event producer configured");
  }
  if (durable) {
    std::vector<std::string> keys, payloads;
    std::vector<ingest::SinkMessage> messages;
    keys.reserve(events.size());
    payloads.reserve(events.size());
    for (const Event& event : events) {
      keys.push_back(EventUserId(event));
      payloads.push_back(SerializeEvent(event));
    }
    for (size_t i = 0; i < events.size(); ++i) {
      messages.push_back({keys[i], payloads[i]});
    }
    const Status confirmed = context.sink->SendDurable(messages, timeout);
    if (!confirmed.ok()) {
      return ErrorResponse(503, "unavailable",
                           "the log did not confirm the " +
                               std::to_string(events.size()) +
                               " events (they may still be stored later): " +
                               confirmed.ToString());
    }
  }
  json accepted = json::array();
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& event = events[i];
    const Status sent =
        durable ? Status::Ok()
                : context.sink->Send(EventUserId(event), SerializeEvent(event));
    if (!sent.ok()) {
      return ErrorResponse(
          503, "unavailable",
          "queued " + std::to_string(i) + " of " +
              std::to_string(events.size()) +
              " events, then the producer refused: " + sent.ToString());
    }
    json entry;
    if (const auto* imp = std::get_if<ImpressionEvent>(&event)) {
      entry = {{"type", "impression"},
               {"impression_id", imp->impression_id},
               {"user_id", imp->user_id}};
    } else {
      const auto& click = std::get<ClickEvent>(event);
      entry = {{"type", "click"},
               {"impression_id", click.impression_id},
               {"user_id", click.user_id},
               {"item_id", click.item_id}};
    }
    accepted.push_back(std::move(entry));
  }
  if (context.metrics != nullptr) {
    if (Counter* c = context.metrics->GetCounter(
            "cfrec_http_events_accepted_total",
            "Events accepted by POST /v1/events and queued to the producer")) {
      c->Increment(events.size());
    }
  }
  return JsonResponse(202, {{"accepted", events.size()},
                            {"ack", durable ? "durable" : "queued"},
                            {"topic", context.events_topic},
                            {"events", std::move(accepted)}});
}

HttpResponse GetModel(const ServiceContext& context, const HttpRequest&,
                      const ParsedTarget& target) {
  if (!target.params.empty()) return BadRequest("no query parameters allowed");
  const auto snapshot = Latest(context);
  if (snapshot == nullptr) return NotReady("no model snapshot published yet");
  const learner::TrainingStats& s = snapshot->stats();
  const int64_t age_ms = std::max<int64_t>(
      0, NowMs(context.now_unix_ms) - snapshot->created_unix_ms());
  json doc = {
      {"model_version", snapshot->version()},
      {"created_at", FormatRfc3339Ms(snapshot->created_unix_ms())},
      {"age_seconds", static_cast<double>(age_ms) / 1000.0},
      {"ranker", s.ranker},
      {"loss", s.loss},
      {"intervention", s.intervention},
      {"trainer", s.trainer},
      {"users", snapshot->num_users()},
      {"items", snapshot->num_items()},
      {"dim", snapshot->dim()},
      {"candidate_pool", snapshot->CandidateItems().size()},
      {"training",
       {{"events_consumed", s.events_consumed},
        {"applied_seq", s.applied_seq},
        {"observed_samples", s.observed_samples},
        {"counterfactual_samples", s.counterfactual_samples},
        {"steps", s.steps},
        {"samples_per_sec", s.samples_per_sec}}},
      {"losses",
       {{"ranker", s.ranker_loss},
        {"sem_r", s.sem_r_loss},
        {"sem_s", s.sem_s_loss},
        {"elbo", s.elbo}}},
      {"policy",
       {{"reward", s.policy_reward}, {"baseline", s.policy_baseline}}},
      {"stream_features", snapshot->stream() != nullptr},
      {"online_quality",
       {{"lists_judged", s.online_lists},
        {"model", {{"auc", s.online_auc}, {"ndcg@10", s.online_ndcg10}}},
        {"ctr_decayed_6h",
         {{"auc", s.online_baseline_auc},
          {"ndcg@10", s.online_baseline_ndcg10}}}}}};
  return JsonResponse(200, doc);
}

HttpResponse GetMetrics(const ServiceContext& context, const HttpRequest&,
                        const ParsedTarget& target) {
  if (!target.params.empty()) return BadRequest("no query parameters allowed");
  if (context.metrics == nullptr) {
    return ErrorResponse(503, "unavailable", "metrics are not configured");
  }
  HttpResponse response;
  response.content_type = std::string(MetricsRegistry::kContentType);
  response.body = context.metrics->Expose();
  return response;
}

HttpResponse GetHealthz(const ServiceContext&, const HttpRequest&,
                        const ParsedTarget& target) {
  if (!target.params.empty()) return BadRequest("no query parameters allowed");
  return JsonResponse(200, {{"status", "ok"}});
}

HttpResponse GetReadyz(const ServiceContext& context, const HttpRequest&,
                       const ParsedTarget& target) {
  if (!target.params.empty()) return BadRequest("no query parameters allowed");
  const bool state_open = !context.state_ready || context.state_ready();
  const auto snapshot = Latest(context);
  std::string why;
  auto add = [&why](std::string_view reason) {
    if (reason.empty()) return;
    if (!why.empty()) why += "; ";
    why += reason;
  };
  if (!state_open) add("state store not open");
  if (snapshot == nullptr) add("no model snapshot published yet");
  for (const auto& check : context.readiness_checks) add(check());
  if (!why.empty()) return NotReady(why);
  return JsonResponse(
      200, {{"status", "ready"}, {"model_version", snapshot->version()}});
}

using RouteHandler = HttpResponse (*)(const ServiceContext&, const HttpRequest&,
                                      const ParsedTarget&);

struct Route {
  std::string_view path;
  std::string_view method;
  RouteHandler handler;
  // Needs the API token when one is configured. POST /v1/rank only reads.
  bool changes_state = false;
};

constexpr Route kRoutes[] = {
    {"/v1/recommendations", "GET", &GetRecommendations},
    {"/v1/rank", "POST", &PostRank},
    {"/v1/events", "POST", &PostEvents, /*changes_state=*/true},
    {"/v1/model", "GET", &GetModel},
    {"/metrics", "GET", &GetMetrics},
    {"/healthz", "GET", &GetHealthz},
    {"/readyz", "GET", &GetReadyz},
    {"/v1/metrics", "GET", &internal::GetMetricsJson},
    {"/v1/explain", "GET", &internal::GetExplain},
    {"/v1/trending", "GET", &internal::GetTrending},
    {"/v1/dead-letters", "GET", &internal::GetDeadLetters},
};

std::string_view MethodLabel(std::string_view method) {
  static constexpr std::string_view kKnown[] = {
      "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"};
  for (const std::string_view m : kKnown) {
    if (m == method) return m;
  }
  return "other";
}

constexpr RouteInfo kRouteInfo[] = {
    {"GET", "/v1/recommendations"},
    {"POST", "/v1/rank"},
    {"POST", "/v1/events", /*changes_state=*/true},
    {"GET", "/v1/model"},
    {"GET", "/metrics"},
    {"GET", "/healthz"},
    {"GET", "/readyz"},
    {"GET", "/v1/metrics"},
    {"GET", "/v1/explain"},
    {"GET", "/v1/trending"},
    {"GET", "/v1/dead-letters"},
};

constexpr bool RouteInfoMatchesRoutes() {
  if (std::size(kRouteInfo) != std::size(kRoutes)) return false;
  for (size_t i = 0; i < std::size(kRoutes); ++i) {
    if (kRouteInfo[i].method != kRoutes[i].method ||
        kRouteInfo[i].path != kRoutes[i].path ||
        kRouteInfo[i].changes_state != kRoutes[i].changes_state) {
      return false;
    }
  }
  return true;
}
static_assert(RouteInfoMatchesRoutes());

constexpr std::string_view kAuthReasons[] = {"missing", "wrong_scheme",
                                             "wrong_token"};

Counter* UnauthorizedCounter(MetricsRegistry* metrics, std::string_view route,
                             std::string_view reason) {
  if (metrics == nullptr) return nullptr;
  return metrics->GetCounter(
      "cfrec_http_unauthorized_total",
      "Requests refused with 401 for a missing or wrong API token",
      {"route", "reason"}, {std::string(route), std::string(reason)});
}

// The 401 for a request to a route that changes state, or nullopt when the
// request may go on (no token configured, or the right one given). Neither
// the answer nor the metric quotes what the client sent.
std::optional<HttpResponse> Unauthorized(const ServiceContext& context,
                                         const Route& route,
                                         const HttpRequest& request) {
  if (!route.changes_state || !context.api_token.has_value()) {
    return std::nullopt;
  }
  const AuthCheck check = context.api_token->Check(request.authorization);
  std::string_view reason;
  std::string_view message;
  std::string_view challenge = "Bearer realm=\"cfrec\"";
  switch (check) {
    case AuthCheck::kOk:
      return std::nullopt;
    case AuthCheck::kMissing:
      reason = kAuthReasons[0];
      message = "this route needs an 'Authorization: Bearer <token>' header";
      break;
    case AuthCheck::kWrongScheme:
      reason = kAuthReasons[1];
      message = "the Authorization header must be 'Bearer <token>'";
      break;
    case AuthCheck::kWrongToken:
      reason = kAuthReasons[2];
      message = "the bearer token is not valid";
      // RFC 6750 section 3.1: an error code only when a token was given.
      challenge = "Bearer realm=\"cfrec\", error=\"invalid_token\"";
      break;
  }
  if (Counter* c = UnauthorizedCounter(context.metrics, route.path, reason)) {
    c->Increment();
  }
  HttpResponse response = ErrorResponse(401, "unauthorized", message);
  response.headers.emplace_back("WWW-Authenticate", std::string(challenge));
  return response;
}

}  // namespace

std::span<const RouteInfo> Routes() { return kRouteInfo; }

HttpResponse Handle(const ServiceContext& context, const HttpRequest& request) {
  try {
    Result<ParsedTarget> target = ParseTarget(request.target);
    if (!target.ok()) return ErrorResponseFor(target.status());
    for (const Route& route : kRoutes) {
      if (route.path != target->path) continue;
      HttpResponse response;
      if (request.method != route.method) {
        response = ErrorResponse(405, "method_not_allowed",
                                 "use " + std::string(route.method) + " for " +
                                     std::string(route.path));
        response.headers.emplace_back("Allow", std::string(route.method));
      } else if (auto denied = Unauthorized(context, route, request)) {
        response = std::move(*denied);
      } else {
        response = route.handler(context, request, *target);
      }
      response.route = std::string(route.path);
      return response;
    }
    if (auto asset = internal::ServeAsset(context, request, *target)) {
      return *asset;
    }
    return ErrorResponse(404, "not_found", "no such route");
  } catch (const std::exception& e) {
    // Handlers return errors as values; reaching this is a bug (or
    // bad_alloc), reported without taking the server down.
    return ErrorResponse(500, "internal", e.what());
  }
}

void RecordRequest(MetricsRegistry* metrics, std::string_view route,
                   std::string_view method, int status, double seconds) {
  if (metrics == nullptr) return;
  const std::string status_text = std::to_string(status);
  if (Counter* c = metrics->GetCounter(
          "cfrec_http_requests_total", "HTTP requests answered",
          {"route", "method", "status"},
          {std::string(route), std::string(MethodLabel(method)),
           status_text})) {
    c->Increment();
  }
  static const std::vector<double> kBuckets = DefaultLatencyBuckets();
  if (Histogram* h = metrics->GetHistogram(
          "cfrec_http_request_duration_seconds",
          "Time from a request fully read to its response written", kBuckets,
          {"route", "status"}, {std::string(route), status_text})) {
    h->Observe(seconds);
  }
}

void InitServiceMetrics(const ServiceContext& context) {
  if (context.metrics == nullptr || !context.api_token.has_value()) return;
  for (const Route& route : kRoutes) {
    if (!route.changes_state) continue;
    for (const std::string_view reason : kAuthReasons) {
      UnauthorizedCounter(context.metrics, route.path, reason);
    }
  }
}

bool RegisterModelMetrics(MetricsRegistry& metrics,
                          const learner::SnapshotHolder* snapshots,
                          std::function<int64_t()> now_unix_ms) {
  auto latest = [snapshots]() -> std::shared_ptr<const learner::ModelSnapshot> {
    return snapshots == nullptr ? nullptr : snapshots->Get();
  };
  // Training rates between the snapshots seen by successive scrapes; shared
  // by the two "source" children.
  struct RateState {
    std::mutex mu;
    uint64_t version = 0;
    int64_t created_ms = 0;
    uint64_t observed = 0;
    uint64_t counterfactual = 0;
    double observed_rate = 0;
    double counterfactual_rate = 0;
  };
  auto rates = std::make_shared<RateState>();
  auto rate = [latest, rates](bool observed) {
    const auto snapshot = latest();
    std::lock_guard<std::mutex> lock(rates->mu);
    if (snapshot != nullptr && snapshot->version() != rates->version) {
      const learner::TrainingStats& s = snapshot->stats();
      const int64_t dt_ms = snapshot->created_unix_ms() - rates->created_ms;
      if (rates->version != 0 && dt_ms > 0 &&
          s.observed_samples >= rates->observed &&
          s.counterfactual_samples >= rates->counterfactual) {
        rates->observed_rate =
            static_cast<double>(s.observed_samples - rates->observed) * 1000.0 /
            static_cast<double>(dt_ms);
        rates->counterfactual_rate =
            static_cast<double>(s.counterfactual_samples -
                                rates->counterfactual) *
            1000.0 / static_cast<double>(dt_ms);
      }
      rates->version = snapshot->version();
      rates->created_ms = snapshot->created_unix_ms();
      rates->observed = s.observed_samples;
      rates->counterfactual = s.counterfactual_samples;
    }
    return observed ? rates->observed_rate : rates->counterfactual_rate;
  };
  auto stat = [latest](auto field) {
    return [latest, field]() -> double {
      const auto snapshot = latest();
      return snapshot == nullptr ? 0.0 : field(*snapshot);
    };
  };
  bool ok = true;
  ok &= metrics.AddCallback("cfrec_model_version",
                            "Version of the latest model snapshot", false,
                            stat([](const learner::ModelSnapshot& s) {
                              return static_cast<double>(s.version());
                            }));
  ok &= metrics.AddCallback(
      "cfrec_model_age_seconds", "Seconds since the latest snapshot was built",
      false, [latest, now_unix_ms]() -> double {
        const auto snapshot = latest();
        if (snapshot == nullptr) return 0.0;
        return static_cast<double>(std::max<int64_t>(
                   0, NowMs(now_unix_ms) - snapshot->created_unix_ms())) /
               1000.0;
      });
  ok &= metrics.AddCallback(
      "cfrec_policy_reward",
      "Mean reward of the counterfactual policy (CPR eq. 11)", false,
      stat([](const learner::ModelSnapshot& s) {
        return s.stats().policy_reward;
      }));
  // Online quality (the service scoring arriving lists before it learns
  // them), beside the decayed-CTR baseline on the same lists.
  struct OnlineGauge {
    const char* name;
    const char* help;
    double learner::TrainingStats::*model;
    double learner::TrainingStats::*baseline;
  };
  for (const OnlineGauge& g :
       {OnlineGauge{"cfrec_online_auc",
                    "Rolling impression AUC of the served model on arriving "
                    "lists, and of the decayed-CTR baseline",
                    &learner::TrainingStats::online_auc,
                    &learner::TrainingStats::online_baseline_auc},
        OnlineGauge{"cfrec_online_ndcg10",
                    "Rolling nDCG@10 of the served model on arriving lists, "
                    "and of the decayed-CTR baseline",
                    &learner::TrainingStats::online_ndcg10,
                    &learner::TrainingStats::online_baseline_ndcg10}}) {
    ok &= metrics.AddCallback(
        g.name, g.help, false,
        stat([f = g.model](const learner::ModelSnapshot& s) {
          return s.stats().*f;
        }),
        {"scorer"}, {"model"});
    ok &= metrics.AddCallback(
        g.name, g.help, false,
        stat([f = g.baseline](const learner::ModelSnapshot& s) {
          return s.stats().*f;
        }),
        {"scorer"}, {"ctr_decayed_6h"});
  }
  ok &= metrics.AddCallback(
      "cfrec_online_lists_judged_total",
      "Arriving impression lists scored before training and judged", true,
      stat([](const learner::ModelSnapshot& s) {
        return static_cast<double>(s.stats().online_lists);
      }));
  ok &= metrics.AddCallback("cfrec_sem_r_loss",
                            "Moving average of p_R's loss (CPR eq. 6)", false,
                            stat([](const learner::ModelSnapshot& s) {
                              return s.stats().sem_r_loss;
                            }));
  ok &= metrics.AddCallback("cfrec_sem_s_loss",
                            "Moving average of p_S's loss (CPR eq. 7)", false,
                            stat([](const learner::ModelSnapshot& s) {
                              return s.stats().sem_s_loss;
                            }));
  ok &= metrics.AddCallback("cfrec_ranker_loss",
                            "Moving average of the ranker's training loss",
                            false, stat([](const learner::ModelSnapshot& s) {
                              return s.stats().ranker_loss;
                            }));
  ok &= metrics.AddCallback(
      "cfrec_training_samples_total", "Ranker training samples by origin", true,
      stat([](const learner::ModelSnapshot& s) {
        return static_cast<double>(s.stats().observed_samples);
      }),
      {"source"}, {"observed"});
  ok &= metrics.AddCallback(
      "cfrec_training_samples_total", "Ranker training samples by origin", true,
      stat([](const learner::ModelSnapshot& s) {
        return static_cast<double>(s.stats().counterfactual_samples);
      }),
      {"source"}, {"counterfactual"});
  ok &= metrics.AddCallback(
      "cfrec_training_samples_per_second",
      "Ranker training samples per second by origin, between the snapshots "
      "of successive scrapes",
      false, [rate] { return rate(true); }, {"source"}, {"observed"});
  ok &= metrics.AddCallback(
      "cfrec_training_samples_per_second",
      "Ranker training samples per second by origin, between the snapshots "
      "of successive scrapes",
      false, [rate] { return rate(false); }, {"source"}, {"counterfactual"});
  return ok;
}

}  // namespace cfrec::server
