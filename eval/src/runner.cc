#include "cfrec/eval/runner.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/split.h"
#include "cfrec/eval/stream_protocol.h"
#include "cfrec/schemas/mind.h"

namespace cfrec::eval {
namespace {

using nlohmann::json;

struct Config {
  LooProtocolOptions loo;
  TimeSplitProtocolOptions time_split;
  PrequentialOptions prequential;
  StreamProtocolOptions stream;
  json models = json::object();
};

Status CheckKeys(const json& object, const std::string& where,
                 const std::set<std::string>& allowed) {
  if (!object.is_object()) {
    return Status::InvalidArgument(where + ": expected a JSON object");
  }
  for (const auto& [key, value] : object.items()) {
    if (!allowed.contains(key)) {
      return Status::InvalidArgument(where + ": unknown key '" + key + "'");
    }
  }
  return Status::Ok();
}

Result<Config> ReadConfig(const std::string& path, uint64_t seed) {
  Config c;
  c.loo.seed = seed;
  c.loo.split.seed = seed;
  c.time_split.seed = seed;
  c.prequential.seed = seed;
  c.stream.seed = seed;
  if (path.empty()) return c;
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open config '" + path + "'");
  try {
    const json j = json::parse(in);
    CFREC_RETURN_IF_ERROR(CheckKeys(
        j, "config", {"loo", "time_split", "prequential", "stream", "models"}));
    if (j.contains("loo")) {
      const json& l = j["loo"];
      CFREC_RETURN_IF_ERROR(CheckKeys(l, "loo",
                                      {"num_negatives", "k", "all_items",
                                       "patience", "min_distinct_positives"}));
      c.loo.split.num_negatives =
          l.value("num_negatives", c.loo.split.num_negatives);
      c.loo.split.min_distinct_positives =
          l.value("min_distinct_positives", c.loo.split.min_distinct_positives);
      c.loo.k = l.value("k", c.loo.k);
      c.loo.all_items = l.value("all_items", c.loo.all_items);
      c.loo.patience = l.value("patience", c.loo.patience);
    }
    if (j.contains("time_split")) {
      const json& t = j["time_split"];
      CFREC_RETURN_IF_ERROR(
          CheckKeys(t, "time_split",
                    {"test_fraction", "validation_fraction", "patience"}));
      c.time_split.split.test_fraction =
          t.value("test_fraction", c.time_split.split.test_fraction);
      c.time_split.split.validation_fraction = t.value(
          "validation_fraction", c.time_split.split.validation_fraction);
      c.time_split.patience = t.value("patience", c.time_split.patience);
    }
    if (j.contains("prequential")) {
      const json& p = j["prequential"];
      CFREC_RETURN_IF_ERROR(CheckKeys(p, "prequential", {"num_windows"}));
      c.prequential.num_windows =
          p.value("num_windows", c.prequential.num_windows);
    }
    if (j.contains("stream")) {
      const json& p = j["stream"];
      CFREC_RETURN_IF_ERROR(CheckKeys(
          p, "stream",
          {"refresh_events", "refresh_minutes", "half_life_hours",
           "curve_points", "learning_rate", "l2", "evict_after_hours"}));
      StreamProtocolOptions& o = c.stream;
      o.refresh_events = p.value("refresh_events", o.refresh_events);
      o.refresh_minutes = p.value("refresh_minutes", o.refresh_minutes);
      o.half_life_hours = p.value("half_life_hours", o.half_life_hours);
      o.curve_points = p.value("curve_points", o.curve_points);
      o.stream.model.learning_rate =
          p.value("learning_rate", o.stream.model.learning_rate);
      o.stream.model.l2 = p.value("l2", o.stream.model.l2);
      o.stream.evict_after_ms = static_cast<int64_t>(
          p.value("evict_after_hours", o.stream.evict_after_ms / 3.6e6) *
          3.6e6);
      if (o.refresh_events < 1 || o.half_life_hours <= 0 ||
          o.refresh_minutes < 0) {
        return Status::InvalidArgument(
            "stream: refresh_events >= 1, refresh_minutes >= 0 and "
            "half_life_hours > 0 are required");
      }
    }
    if (j.contains("models")) {
      if (!j["models"].is_object()) {
        return Status::InvalidArgument("models: expected a JSON object");
      }
      c.models = j["models"];
    }
  } catch (const json::exception& e) {
    return Status::InvalidArgument("config '" + path + "': " + e.what());
  }
  if (c.loo.patience < 1 || c.time_split.patience < 1) {
    return Status::InvalidArgument("config: patience must be >= 1");
  }
  return c;
}

json ConfigJson(const Config& c) {
  return {{"loo",
           {{"num_negatives", c.loo.split.num_negatives},
            {"k", c.loo.k},
            {"all_items", c.loo.all_items},
            {"patience", c.loo.patience},
            {"min_distinct_positives", c.loo.split.min_distinct_positives}}},
          {"time_split",
           {{"test_fraction", c.time_split.split.test_fraction},
            {"validation_fraction", c.time_split.split.validation_fraction},
            {"patience", c.time_split.patience}}},
          {"prequential", {{"num_windows", c.prequential.num_windows}}},
          {"stream",
           {{"refresh_events", c.stream.refresh_events},
            {"refresh_minutes", c.stream.refresh_minutes},
            {"half_life_hours", c.stream.half_life_hours},
            {"curve_points", c.stream.curve_points},
            {"learning_rate", c.stream.stream.model.learning_rate},
            {"l2", c.stream.stream.model.l2},
            {"evict_after_hours", c.stream.stream.evict_after_ms / 3.6e6}}},
          {"models", c.models}};
}

void PutHeldOut(json* out, const std::string& prefix, const std::string& suffix,
                int k, const HeldOutSummary& s) {
  const std::string at = "@" + std::to_string(k);
  (*out)[prefix + "hr" + at + suffix] = s.hr.value();
  (*out)[prefix + "ndcg" + at + suffix] = s.ndcg.value();
  (*out)[prefix + "auc" + suffix] = s.auc.value();
}

json ImpressionJson(const ImpressionSummary& s) {
  return {{"auc", s.auc.value()},         {"mrr", s.mrr.value()},
          {"ndcg@5", s.ndcg5.value()},    {"ndcg@10", s.ndcg10.value()},
          {"impressions", s.auc.count()}, {"skipped", s.skipped}};
}

json CurveJson(const std::vector<CurvePoint>& curve, const char* hr_name,
               const char* ndcg_name) {
  json out = json::array();
  for (const CurvePoint& p : curve) {
    out.push_back({{"epoch", p.epoch},
                   {"train_loss", p.train_loss},
                   {hr_name, p.valid_hr},
                   {ndcg_name, p.valid_ndcg}});
  }
  return out;
}

}  // namespace

Result<std::string> RunEvaluation(const EvalRequest& request,
                                  const ModelRegistry& registry,
                                  const ProgressFn& progress) {
  const auto start = std::chrono::steady_clock::now();
  if (request.data_path.empty()) {
    return Status::InvalidArgument("--data is required");
  }
  if (request.protocol != "loo" && request.protocol != "impressions" &&
      request.protocol != "prequential" && request.protocol != "stream") {
    return Status::InvalidArgument(
        "--protocol must be loo, impressions, prequential or stream");
  }
  if (request.ranker == "none" && request.protocol != "stream") {
    return Status::InvalidArgument(
        "--ranker none (stream features alone) needs --protocol stream");
  }
  Result<Config> config = ReadConfig(request.config_path, request.seed);
  if (!config.ok()) return config.status();

  ModelSpec spec;
  spec.ranker = request.ranker;
  spec.intervention = request.intervention;
  spec.trainer = request.trainer;
  spec.hyper_json = config->models.contains(request.ranker)
                        ? config->models[request.ranker].dump()
                        : "{}";
  Result<std::unique_ptr<Model>> model = std::unique_ptr<Model>();
  if (request.ranker != "none") model = registry.Create(spec);
  if (!model.ok()) return model.status();

  Result<MindFile> file = ReadMindFile(request.data_path);
  if (!file.ok()) return file.status();
  Result<Dataset> data = Dataset::FromRows(file->rows);
  if (!data.ok()) return data.status().WithContext(request.data_path);

  // A synthetic log's generating model, beside it: the oracle simulator and
  // the fidelity figures need it (the model is built again with it).
  const std::string truth_path =
      (std::filesystem::path(request.data_path).parent_path() /
       "ground_truth.json")
          .string();
  if (request.ranker != "none" && std::filesystem::exists(truth_path)) {
    Result<std::shared_ptr<const TrueModel>> truth =
        TrueModel::Load(truth_path, *data);
    if (truth.ok()) {
      spec.truth = *truth;
      model = registry.Create(spec);
      if (!model.ok()) return model.status();
    }
  }
  if (spec.intervention == "oracle" && spec.truth == nullptr) {
    return Status::InvalidArgument(
        "--intervention oracle needs the generator's ground_truth.json "
        "beside --data");
  }

  json out;
  out["tool"] = "cfrec eval";
  out["data"] = request.data_path;
  out["ranker"] = request.ranker;
  out["intervention"] = request.intervention;
  out["trainer"] = request.trainer;
  out["protocol"] = request.protocol;
  out["seed"] = request.seed;
  out["config"] = ConfigJson(*config);
  out["dataset"] = {
      {"rows", file->rows.size()},  {"rows_skipped", file->errors.size()},
      {"users", data->num_users()}, {"items", data->num_items()},
      {"shown", data->num_shown()}, {"clicks", data->num_clicks()}};
  json metrics;
  json seconds;
  if (request.protocol == "loo") {
    Result<LooResult> r = RunLeaveOneOut(**model, *data, config->loo, progress);
    if (!r.ok()) return r.status();
    const int k = config->loo.k;
    PutHeldOut(&metrics, "", "", k, r->test_sampled);
    if (config->loo.all_items) PutHeldOut(&metrics, "", "_all", k, r->test_all);
    PutHeldOut(&metrics, "valid_", "", k, r->valid_sampled);
    if (config->loo.all_items) {
      PutHeldOut(&metrics, "valid_", "_all", k, r->valid_all);
    }
    metrics["test_users"] = r->test_sampled.hr.count();
    json coldness;
    for (int b = 0; b < 3; ++b) {
      json bucket;
      PutHeldOut(&bucket, "", "", k, r->coldness_sampled[b]);
      if (config->loo.all_items) {
        PutHeldOut(&bucket, "", "_all", k, r->coldness_all[b]);
      }
      bucket["count"] = r->coldness_sampled[b].hr.count();
      coldness[std::string(ColdnessName(static_cast<Coldness>(b)))] = bucket;
    }
    out["coldness"] = coldness;
    out["best_epoch"] = r->best_epoch;
    out["curve"] = CurveJson(r->curve, "valid_hr", "valid_ndcg");
    out["train"] = {{"positives", r->train_positives},
                    {"impressions", r->train_impressions}};
    seconds["fit"] = r->fit_seconds;
    seconds["validation"] = r->validation_seconds;
    seconds["eval"] = r->eval_seconds;
  } else if (request.protocol == "impressions") {
    Result<TimeSplitResult> r =
        RunTimeSplit(**model, *data, config->time_split, progress);
    if (!r.ok()) return r.status();
    metrics = ImpressionJson(r->test);
    metrics["valid"] = ImpressionJson(r->validation);
    out["best_epoch"] = r->best_epoch;
    out["curve"] = CurveJson(r->curve, "valid_auc", "valid_ndcg@10");
    out["split"] = {{"validation_start_ms", r->validation_start_ms},
                    {"test_start_ms", r->test_start_ms},
                    {"train_impressions", r->train_impressions}};
    seconds["fit"] = r->fit_seconds;
    seconds["eval"] = r->eval_seconds;
  } else if (request.protocol == "stream") {
    StreamProtocolOptions options = config->stream;
    options.stream_features = request.stream_features;
    Result<StreamResult> r = RunStream(model->get(), *data, options, progress);
    if (!r.ok()) return r.status();
    metrics = ImpressionJson(r->model);
    metrics["returning_users"] = ImpressionJson(r->returning_users);
    metrics["new_users"] = ImpressionJson(r->new_users);
    json baselines;
    for (const auto& [name, b] : r->baselines) {
      baselines[name] = ImpressionJson(b);
    }
    out["baselines"] = baselines;
    out["reference_ctr_hindsight"] = ImpressionJson(r->ctr_hindsight);
    out["best_baseline"] = r->best_baseline;
    if (!r->best_baseline.empty()) {
      const ImpressionSummary& b = r->baselines.at(r->best_baseline);
      out["lift_over_best_baseline"] = {
          {"auc", r->model.auc.value() - b.auc.value()},
          {"ndcg@10", r->model.ndcg10.value() - b.ndcg10.value()}};
    }
    json curve = json::array();
    for (const StreamCurvePoint& p : r->curve) {
      curve.push_back({{"start_ms", p.start_ms},
                       {"end_ms", p.end_ms},
                       {"impressions", p.model.auc.count()},
                       {"auc", p.model.auc.value()},
                       {"ndcg@10", p.model.ndcg10.value()},
                       {"ctr_decayed_auc", p.ctr_decayed.auc.value()},
                       {"ctr_decayed_ndcg@10", p.ctr_decayed.ndcg10.value()}});
    }
    out["curve"] = curve;
    out["stream_features"] = request.stream_features;
    json weights;
    for (size_t f = 0; f < r->weights.size(); ++f) {
      weights[std::string(stream::FeatureName(static_cast<int>(f)))] =
          r->weights[f];
    }
    out["stream"] = {{"refreshes", r->refreshes},
                     {"lists_trained", r->stream_stats.lists_trained},
                     {"items", r->stream_stats.items},
                     {"users", r->stream_stats.users},
                     {"loss", r->stream_stats.loss},
                     {"weights", weights}};
    seconds["ranker"] = r->ranker_seconds;
  } else {
    Result<PrequentialResult> r =
        RunPrequential(**model, *data, config->prequential, progress);
    if (!r.ok()) return r.status();
    metrics = ImpressionJson(r->overall);
    json windows = json::array();
    double train = 0;
    for (const WindowResult& w : r->windows) {
      json item = ImpressionJson(w.metrics);
      item["start_ms"] = w.window.start_ms;
      item["end_ms"] = w.window.end_ms;
      item["train_seconds"] = w.train_seconds;
      train += w.train_seconds;
      windows.push_back(item);
    }
    out["windows"] = windows;
    out["incremental"] = r->incremental;
    seconds["train"] = train;
  }
  out["metrics"] = metrics;
  out["ground_truth"] = spec.truth != nullptr ? json(truth_path) : json();
  if (*model != nullptr) {
    const std::string diagnostics = (*model)->DiagnosticsJson();
    if (!diagnostics.empty()) {
      out["counterfactual"] = json::parse(diagnostics, nullptr, false);
    }
  }
  seconds["total"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  out["seconds"] = seconds;
  return out.dump();
}

}  // namespace cfrec::eval
