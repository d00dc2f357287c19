#include "cfrec/learner/options.h"

#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace cfrec::learner {
namespace {

using nlohmann::json;

// One reader/writer per JSON key, so parsing, printing and the unknown-key
// check share one list of fields.
struct Field {
  std::function<void(const json&, TrainerOptions&)> read;
  std::function<json(const TrainerOptions&)> write;
};

template <typename T>
Field Bind(T LearnerOptions::*member) {
  return {
      [member](const json& j, TrainerOptions& o) {
        o.learner.*member = j.get<T>();
      },
      [member](const TrainerOptions& o) { return json(o.learner.*member); }};
}

template <typename T>
Field Bind(T TrainerOptions::*member) {
  return {
      [member](const json& j, TrainerOptions& o) { o.*member = j.get<T>(); },
      [member](const TrainerOptions& o) { return json(o.*member); }};
}

const std::map<std::string, Field>& Fields() {
  static const std::map<std::string, Field> kFields = {
      {"ranker", Bind(&LearnerOptions::ranker)},
      {"loss", Bind(&LearnerOptions::loss)},
      {"negatives", Bind(&LearnerOptions::negatives)},
      {"num_negatives", Bind(&LearnerOptions::num_negatives)},
      {"dim", Bind(&LearnerOptions::dim)},
      {"mlp_hidden", Bind(&LearnerOptions::mlp_hidden)},
      {"lightgcn_layers", Bind(&LearnerOptions::lightgcn_layers)},
      {"lightgcn_rebuild_steps", Bind(&LearnerOptions::lightgcn_rebuild_steps)},
      {"batch_size", Bind(&LearnerOptions::batch_size)},
      {"lr", Bind(&LearnerOptions::lr)},
      {"weight_decay", Bind(&LearnerOptions::weight_decay)},
      {"train_on_history", Bind(&LearnerOptions::train_on_history)},
      {"train_sems", Bind(&LearnerOptions::train_sems)},
      {"sem_dim", Bind(&LearnerOptions::sem_dim)},
      {"sem_lr", Bind(&LearnerOptions::sem_lr)},
      {"posterior_lr", Bind(&LearnerOptions::posterior_lr)},
      {"alpha_samples", Bind(&LearnerOptions::alpha_samples)},
      {"posterior_samples", Bind(&LearnerOptions::posterior_samples)},
      {"sem_positives_per_list", Bind(&LearnerOptions::sem_positives_per_list)},
      {"sem_negatives_per_positive",
       Bind(&LearnerOptions::sem_negatives_per_positive)},
      {"max_positions", Bind(&LearnerOptions::max_positions)},
      {"initial_rows", Bind(&LearnerOptions::initial_rows)},
      {"seed", Bind(&LearnerOptions::seed)},
      {"snapshot_interval_ms", Bind(&TrainerOptions::snapshot_interval_ms)},
      {"checkpoint_interval_s", Bind(&TrainerOptions::checkpoint_interval_s)},
      {"checkpoint_name", Bind(&TrainerOptions::checkpoint_name)},
      {"candidate_window_ms", Bind(&TrainerOptions::candidate_window_ms)},
      {"queue_capacity", Bind(&TrainerOptions::queue_capacity)},
      {"max_events_per_round", Bind(&TrainerOptions::max_events_per_round)},
      {"replay_ratio", Bind(&TrainerOptions::replay_ratio)},
      {"nice", Bind(&TrainerOptions::nice)},
      {"intervention", Bind(&TrainerOptions::intervention)},
      {"trainer", Bind(&TrainerOptions::trainer)},
  };
  return kFields;
}

Status OneOf(const std::string& field, const std::string& value,
             std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return Status::Ok();
    list += list.empty() ? a : std::string(", ") + a;
  }
  return Status::InvalidArgument("option '" + field + "' is '" + value +
                                 "'; expected one of: " + list);
}

Status Positive(const std::string& field, double value) {
  if (value > 0) return Status::Ok();
  return Status::InvalidArgument("option '" + field + "' must be > 0");
}

}  // namespace

Status ValidateLearnerOptions(const LearnerOptions& o) {
  CFREC_RETURN_IF_ERROR(
      OneOf("ranker", o.ranker, {"bpr", "gmf", "mlp", "neumf", "lightgcn"}));
  CFREC_RETURN_IF_ERROR(OneOf("loss", o.loss, {"pairwise", "pointwise"}));
  CFREC_RETURN_IF_ERROR(
      OneOf("negatives", o.negatives, {"impression", "catalog", "mix"}));
  CFREC_RETURN_IF_ERROR(Positive("num_negatives", o.num_negatives));
  CFREC_RETURN_IF_ERROR(Positive("dim", o.dim));
  for (int h : o.mlp_hidden) CFREC_RETURN_IF_ERROR(Positive("mlp_hidden", h));
  if (o.lightgcn_layers < 0) {
    return Status::InvalidArgument("option 'lightgcn_layers' must be >= 0");
  }
  CFREC_RETURN_IF_ERROR(
      Positive("lightgcn_rebuild_steps", o.lightgcn_rebuild_steps));
  CFREC_RETURN_IF_ERROR(Positive("batch_size", o.batch_size));
  CFREC_RETURN_IF_ERROR(Positive("lr", o.lr));
  if (o.weight_decay < 0) {
    return Status::InvalidArgument("option 'weight_decay' must be >= 0");
  }
  CFREC_RETURN_IF_ERROR(Positive("sem_dim", o.sem_dim));
  CFREC_RETURN_IF_ERROR(Positive("sem_lr", o.sem_lr));
  CFREC_RETURN_IF_ERROR(Positive("posterior_lr", o.posterior_lr));
  CFREC_RETURN_IF_ERROR(Positive("alpha_samples", o.alpha_samples));
  CFREC_RETURN_IF_ERROR(Positive("posterior_samples", o.posterior_samples));
  CFREC_RETURN_IF_ERROR(
      Positive("sem_positives_per_list", o.sem_positives_per_list));
  CFREC_RETURN_IF_ERROR(
      Positive("sem_negatives_per_positive", o.sem_negatives_per_positive));
  CFREC_RETURN_IF_ERROR(Positive("max_positions", o.max_positions));
  CFREC_RETURN_IF_ERROR(Positive("initial_rows", o.initial_rows));
  return Status::Ok();
}

Status ValidateTrainerOptions(const TrainerOptions& o) {
  CFREC_RETURN_IF_ERROR(ValidateLearnerOptions(o.learner));
  CFREC_RETURN_IF_ERROR(
      Positive("snapshot_interval_ms", o.snapshot_interval_ms));
  if (o.checkpoint_interval_s < 0) {
    return Status::InvalidArgument(
        "option 'checkpoint_interval_s' must be >= 0");
  }
  if (o.checkpoint_name.empty()) {
    return Status::InvalidArgument("option 'checkpoint_name' is empty");
  }
  CFREC_RETURN_IF_ERROR(Positive("candidate_window_ms",
                                 static_cast<double>(o.candidate_window_ms)));
  CFREC_RETURN_IF_ERROR(Positive("queue_capacity", o.queue_capacity));
  CFREC_RETURN_IF_ERROR(
      Positive("max_events_per_round", o.max_events_per_round));
  if (o.nice < 0 || o.nice > 19) {
    return Status::InvalidArgument("option 'nice' must be in [0, 19]");
  }
  if (o.replay_ratio < 0) {
    return Status::InvalidArgument("option 'replay_ratio' must be >= 0");
  }
  CFREC_RETURN_IF_ERROR(
      OneOf("intervention", o.intervention, {"none", "random", "learned"}));
  CFREC_RETURN_IF_ERROR(OneOf("trainer", o.trainer, {"default", "ps", "acl"}));
  return Status::Ok();
}

Result<TrainerOptions> ParseTrainerOptions(const std::string& json_text) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("config is not JSON: ") +
                                   e.what());
  }
  if (!doc.is_object()) {
    return Status::InvalidArgument("config must be a JSON object");
  }
  TrainerOptions options;
  const auto& fields = Fields();
  for (const auto& [key, value] : doc.items()) {
    auto it = fields.find(key);
    if (it == fields.end()) {
      return Status::InvalidArgument("unknown config key '" + key + "'");
    }
    try {
      it->second.read(value, options);
    } catch (const json::exception& e) {
      return Status::InvalidArgument("config key '" + key +
                                     "' has the wrong type: " + e.what());
    }
  }
  CFREC_RETURN_IF_ERROR(ValidateTrainerOptions(options));
  return options;
}

Result<TrainerOptions> LoadTrainerOptions(const std::string& json_path) {
  std::ifstream in(json_path);
  if (!in) return Status::NotFound("cannot open config file " + json_path);
  std::stringstream text;
  text << in.rdbuf();
  Result<TrainerOptions> options = ParseTrainerOptions(text.str());
  if (!options.ok()) return options.status().WithContext(json_path);
  return options;
}

std::string TrainerOptionsToJson(const TrainerOptions& options) {
  json doc = json::object();
  for (const auto& [key, field] : Fields()) doc[key] = field.write(options);
  return doc.dump(2);
}

}  // namespace cfrec::learner
