#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cfrec/server/dashboard.h"
#include "cfrec/server/recommend.h"
#include "cfrec/stream/features.h"
#include "dashboard_routes.h"
#include "handler_util.h"

namespace cfrec::server::internal {
namespace {

using nlohmann::json;

// JSON has no NaN or infinities: they become null.
json Number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json Labels(const MetricFamilyValues& family,
            const MetricFamilyValues::Sample& sample) {
  json labels = json::object();
  for (size_t i = 0; i < family.label_names.size(); ++i) {
    labels[family.label_names[i]] = sample.label_values[i];
  }
  return labels;
}

// What one item's score is made of. With stream features the score is the
// feature model's sum of weight * feature over the item features, the
// user's click on the item and the ranker's f(u, i); every non-zero term is
// listed, largest first. Without them the score is f(u, i) alone.
json Breakdown(const stream::StreamScorer* scorer, uint32_t user, uint32_t item,
               bool user_clicked, float ranker) {
  if (scorer == nullptr) return nullptr;
  const stream::Weights& w = scorer->weights();
  const stream::StreamScorer::ItemRow& item_row = scorer->ItemFeatureRow(item);
  stream::FeatureRow row{};
  std::copy(item_row.begin(), item_row.end(), row.begin());
  stream::UserFeatures(scorer->Pair(user, item, user_clicked), ranker, row);
  std::vector<int> features;
  for (int f = 0; f < stream::kNumFeatures; ++f) {
    if (w[f] * row[f] != 0.0f) features.push_back(f);
  }
  std::stable_sort(features.begin(), features.end(), [&](int a, int b) {
    return std::abs(w[a] * row[a]) > std::abs(w[b] * row[b]);
  });
  json terms = json::array();
  for (const int f : features) {
    terms.push_back({{"feature", stream::FeatureName(f)},
                     {"value", Number(row[f])},
                     {"weight", Number(w[f])},
                     {"contribution", Number(w[f] * row[f])}});
  }
  // The user part: every feature from kUserClicked on (the user's clicks
  // and earlier showings of the item, and the ranker's f(u, i)).
  float user_part = 0;
  for (int f = stream::kNumItemFeatures; f < stream::kNumFeatures; ++f) {
    user_part += w[f] * row[f];
  }
  return {{"item_part", Number(scorer->ItemScore(item))},
          {"user_part", Number(user_part)},
          {"ranker_term", Number(w[stream::kRanker] * row[stream::kRanker])},
          {"terms", std::move(terms)}};
}

constexpr size_t kDeadLetterHeadBytes = 200;
constexpr uint64_t kMaxListed = 100;

}  // namespace

HttpResponse GetMetricsJson(const ServiceContext& context, const HttpRequest&,
                            const ParsedTarget& target) {
  if (!target.params.empty()) return BadRequest("no query parameters allowed");
  if (context.metrics == nullptr) {
    return ErrorResponse(503, "unavailable", "metrics are not configured");
  }
  json families = json::array();
  for (const MetricFamilyValues& family : context.metrics->Collect()) {
    json samples = json::array();
    for (const auto& sample : family.samples) {
      json entry = {{"labels", Labels(family, sample)}};
      if (family.type == "histogram") {
        entry["cumulative"] = sample.cumulative;
        entry["count"] =
            sample.cumulative.empty() ? 0 : sample.cumulative.back();
        entry["sum"] = Number(sample.sum);
      } else {
        entry["value"] = Number(sample.value);
      }
      samples.push_back(std::move(entry));
    }
    json doc = {{"name", family.name},
                {"type", family.type},
                {"help", family.help},
                {"samples", std::move(samples)}};
    if (family.type == "histogram") doc["bounds"] = family.bounds;
    families.push_back(std::move(doc));
  }
  return JsonResponse(200, {{"unix_ms", NowMs(context.now_unix_ms)},
                            {"families", std::move(families)}});
}

HttpResponse GetExplain(const ServiceContext& context, const HttpRequest&,
                        const ParsedTarget& target) {
  std::vector<std::optional<std::string>> params;
  if (Status s = TakeParams(target, {"user_id", "n", "clicks"}, &params);
      !s.ok()) {
    return ErrorResponseFor(s);
  }
  const Result<std::string> user_param =
      RequiredId(params[0], "user_id", context.serving);
  if (!user_param.ok()) return ErrorResponseFor(user_param.status());
  const std::string& user_id = *user_param;
  const Result<uint64_t> n = CountParam(params[1], context.serving.default_n,
                                        context.serving.max_n, "n");
  if (!n.ok()) return ErrorResponseFor(n.status());
  const Result<uint64_t> clicks_n =
      CountParam(params[2], 10, kMaxListed, "clicks");
  if (!clicks_n.ok()) return ErrorResponseFor(clicks_n.status());
  const auto snapshot = Latest(context);
  if (snapshot == nullptr) return NotReady("no model snapshot published yet");
  const std::optional<uint32_t> user = snapshot->FindUser(user_id);
  if (!user.has_value() || *user >= snapshot->num_users()) {
    return ErrorResponse(404, "not_found",
                         "user '" + user_id +
                             "' is not known to the model (version " +
                             std::to_string(snapshot->version()) +
                             "): no event of this user has been learned yet");
  }

  RecommendOptions options;
  options.retrieval_candidates = context.serving.retrieval_candidates;
  const Recommendation rec =
      context.retrieval_cache != nullptr
          ? Recommend(*snapshot, *context.retrieval_cache->Get(snapshot),
                      user_id, *n, options)
          : Recommend(*snapshot, user_id, *n, options);
  std::vector<uint32_t> items;
  for (const ScoredItem& item : rec.items) items.push_back(item.item);
  std::vector<float> ranker(items.size());
  // The ranker's scores as Recommend computed them (score = item_part +
  // user_part holds for the same floats).
  RankerScores(*snapshot, *user, items, ranker);
  const std::span<const uint32_t> clicked = snapshot->ClickedItems(*user);
  json out_items = json::array();
  for (size_t i = 0; i < items.size(); ++i) {
    const bool user_clicked =
        std::binary_search(clicked.begin(), clicked.end(), items[i]);
    out_items.push_back(
        {{"item_id", snapshot->ItemId(items[i])},
         {"score", rec.items[i].score.has_value() ? Number(*rec.items[i].score)
                                                  : json(nullptr)},
         {"ranker_score", Number(ranker[i])},
         {"stream", Breakdown(snapshot->stream(), *user, items[i], user_clicked,
                              ranker[i])}});
  }
  json recent = json::array();
  if (context.state_view != nullptr) {
    auto got = context.state_view->RecentClicks(user_id, *clicks_n);
    if (!got.ok() && !got.status().IsNotFound()) {
      return ErrorResponseFor(got.status());
    }
    if (got.ok()) {
      for (const ClickRecord& click : *got) {
        recent.push_back({{"item_id", click.item_id},
                          {"impression_id", click.impression_id},
                          {"ts", FormatRfc3339Ms(click.ts_ms)}});
      }
    }
  }
  return JsonResponse(200, {{"user_id", user_id},
                            {"model_version", snapshot->version()},
                            {"ranker", snapshot->stats().ranker},
                            {"stream_features", snapshot->stream() != nullptr},
                            {"clicked_items", clicked.size()},
                            {"recent_clicks", std::move(recent)},
                            {"items", std::move(out_items)}});
}

HttpResponse GetTrending(const ServiceContext& context, const HttpRequest&,
                         const ParsedTarget& target) {
  std::vector<std::optional<std::string>> params;
  if (Status s = TakeParams(target, {"n"}, &params); !s.ok()) {
    return ErrorResponseFor(s);
  }
  const Result<uint64_t> n =
      CountParam(params[0], context.serving.default_n, kMaxListed, "n");
  if (!n.ok()) return ErrorResponseFor(n.status());
  const auto snapshot = Latest(context);
  if (snapshot == nullptr) return NotReady("no model snapshot published yet");
  const stream::StreamScorer* scorer = snapshot->stream();
  const std::span<const uint32_t> popular = snapshot->PopularItems();
  json items = json::array();
  for (size_t i = 0; i < std::min<size_t>(*n, popular.size()); ++i) {
    json entry = {{"item_id", snapshot->ItemId(popular[i])}};
    if (scorer != nullptr) {
      // The stream features keep log(1 + count); these undo the log (the
      // all-time count is a whole number).
      const auto& row = scorer->ItemFeatureRow(popular[i]);
      entry["clicks_6h"] = Number(std::expm1(row[stream::kClicks0 + 2]));
      entry["shows_6h"] = Number(std::expm1(row[stream::kShows0 + 2]));
      entry["clicks_total"] =
          Number(std::round(std::expm1(row[stream::kTotalClicks])));
    }
    items.push_back(std::move(entry));
  }
  return JsonResponse(200,
                      {{"model_version", snapshot->version()},
                       {"candidate_pool", snapshot->CandidateItems().size()},
                       {"items", std::move(items)}});
}

HttpResponse GetDeadLetters(const ServiceContext& context, const HttpRequest&,
                            const ParsedTarget& target) {
  std::vector<std::optional<std::string>> params;
  if (Status s = TakeParams(target, {"n"}, &params); !s.ok()) {
    return ErrorResponseFor(s);
  }
  const Result<uint64_t> n = CountParam(params[0], 20, kMaxListed, "n");
  if (!n.ok()) return ErrorResponseFor(n.status());
  if (context.state_view == nullptr) {
    return ErrorResponse(503, "unavailable", "this server has no state store");
  }
  auto got = context.state_view->RecentDeadLetters(*n, kDeadLetterHeadBytes);
  if (!got.ok()) return ErrorResponseFor(got.status());
  json letters = json::array();
  for (const DeadLetterRecord& d : *got) {
    letters.push_back({{"seq", d.seq},
                       {"reason", d.reason},
                       {"topic", d.topic},
                       {"partition", d.partition},
                       {"offset", d.offset},
                       {"payload_head", d.payload_head},
                       {"payload_bytes", d.payload_bytes}});
  }
  return JsonResponse(200, {{"dead_letters", std::move(letters)}});
}

std::optional<HttpResponse> ServeAsset(const ServiceContext& context,
                                       const HttpRequest& request,
                                       const ParsedTarget& target) {
  for (const StaticAsset& asset : context.assets) {
    if (asset.path != target.path) continue;
    HttpResponse response;
    if (request.method != "GET") {
      response = ErrorResponse(405, "method_not_allowed",
                               "use GET for " + std::string(asset.path));
      response.headers.emplace_back("Allow", "GET");
    } else {
      response.content_type = std::string(asset.content_type);
      response.body = std::string(asset.body);
      response.headers.emplace_back("Cache-Control", "no-cache");
    }
    response.route = std::string(asset.path);
    return response;
  }
  return std::nullopt;
}

}  // namespace cfrec::server::internal
