#include "cfrec/learner/options.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "cfrec/schemas/thread_sched.h"

namespace cfrec::learner {
namespace {

using nlohmann::json;

// An integer field takes an integer (or an integral float, "2048.0") inside
// its type's range. nlohmann's get<int>() would cast anything: 1e30 into an
// int is undefined behaviour and -1 into a uint64_t wraps. Throws
// std::out_of_range, or nlohmann's type_error for a non-number.
template <typename T>
T ReadInteger(const json& j) {
  if (j.is_number_unsigned()) {
    const auto v = j.get<uint64_t>();
    if (std::in_range<T>(v)) return static_cast<T>(v);
  } else if (j.is_number_integer()) {
    const auto v = j.get<int64_t>();
    if (std::in_range<T>(v)) return static_cast<T>(v);
  } else if (j.is_number_float()) {
    // Integers of T are exactly [-limit, limit) (signed) or [0, limit).
    const double limit = std::ldexp(1.0, std::numeric_limits<T>::digits);
    const double low = std::is_signed_v<T> ? -limit : 0.0;
    const double d = j.get<double>();
    if (d == std::trunc(d) && d >= low && d < limit) return static_cast<T>(d);
  } else {
    return j.get<T>();  // throws type_error
  }
  throw std::out_of_range(j.dump() + " is not an integer in [" +
                          std::to_string(std::numeric_limits<T>::min()) + ", " +
                          std::to_string(std::numeric_limits<T>::max()) + "]");
}

template <typename T>
T Read(const json& j) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    return ReadInteger<T>(j);
  } else if constexpr (std::is_same_v<T, std::vector<int>>) {
    if (!j.is_array()) return j.get<T>();  // throws type_error
    T out;
    for (const json& e : j) out.push_back(ReadInteger<int>(e));
    return out;
  } else {
    return j.get<T>();
  }
}

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
        o.learner.*member = Read<T>(j);
      },
      [member](const TrainerOptions& o) { return json(o.learner.*member); }};
}

template <typename T>
Field Bind(T TrainerOptions::*member) {
  return {
      [member](const json& j, TrainerOptions& o) { o.*member = Read<T>(j); },
      [member](const TrainerOptions& o) { return json(o.*member); }};
}

template <typename T>
Field Bind(T CounterfactualOptions::*member) {
  return {[member](const json& j, TrainerOptions& o) {
            o.counterfactual.*member = Read<T>(j);
          },
          [member](const TrainerOptions& o) {
            return json(o.counterfactual.*member);
          }};
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
      {"kernel", Bind(&LearnerOptions::kernel)},
      {"train_threads", Bind(&LearnerOptions::train_threads)},
      {"train_pipeline", Bind(&LearnerOptions::train_pipeline)},
      {"mlp_matmul", Bind(&LearnerOptions::mlp_matmul)},
      {"exposure_model", Bind(&LearnerOptions::exposure_model)},
      {"exposure_dim", Bind(&LearnerOptions::exposure_dim)},
      {"acl_alpha", Bind(&LearnerOptions::acl_alpha)},
      {"acl_r_psi", Bind(&LearnerOptions::acl_r_psi)},
      {"propensity_clip_min", Bind(&LearnerOptions::propensity_clip_min)},
      {"propensity_clip_max", Bind(&LearnerOptions::propensity_clip_max)},
      {"exposure_pretrain_steps",
       Bind(&LearnerOptions::exposure_pretrain_steps)},
      {"snapshot_interval_ms", Bind(&TrainerOptions::snapshot_interval_ms)},
      {"checkpoint_interval_s", Bind(&TrainerOptions::checkpoint_interval_s)},
      {"checkpoint_name", Bind(&TrainerOptions::checkpoint_name)},
      {"candidate_window_ms", Bind(&TrainerOptions::candidate_window_ms)},
      {"queue_capacity", Bind(&TrainerOptions::queue_capacity)},
      {"max_events_per_round", Bind(&TrainerOptions::max_events_per_round)},
      {"replay_ratio", Bind(&TrainerOptions::replay_ratio)},
      {"idle_replay_passes", Bind(&TrainerOptions::idle_replay_passes)},
      {"idle_replay_chunk", Bind(&TrainerOptions::idle_replay_chunk)},
      {"nice", Bind(&TrainerOptions::nice)},
      {"sched", Bind(&TrainerOptions::sched)},
      {"intervention", Bind(&TrainerOptions::intervention)},
      // One key for the mode the learner runs and the trainer records.
      {"trainer",
       {[](const json& j, TrainerOptions& o) {
          o.trainer = j.get<std::string>();
          o.learner.trainer = o.trainer;
        },
        [](const TrainerOptions& o) { return json(o.learner.trainer); }}},
      {"stream_features", Bind(&TrainerOptions::stream_features)},
      {"stream_learning_rate", Bind(&TrainerOptions::stream_learning_rate)},
      {"stream_evict_after_ms", Bind(&TrainerOptions::stream_evict_after_ms)},
      {"cf_list_size", Bind(&CounterfactualOptions::list_size)},
      {"cf_noise_k", Bind(&CounterfactualOptions::noise_k)},
      {"cf_candidate_pool", Bind(&CounterfactualOptions::candidate_pool)},
      {"cf_explore_share", Bind(&CounterfactualOptions::explore_share)},
      {"cf_policy_hidden", Bind(&CounterfactualOptions::policy_hidden)},
      {"cf_policy_lr", Bind(&CounterfactualOptions::policy_lr)},
      {"cf_policy_std", Bind(&CounterfactualOptions::policy_std)},
      {"cf_learn_std", Bind(&CounterfactualOptions::learn_std)},
      {"cf_exploration_std", Bind(&CounterfactualOptions::exploration_std)},
      {"cf_pretrain_rounds", Bind(&CounterfactualOptions::pretrain_rounds)},
      {"cf_pretrain_users", Bind(&CounterfactualOptions::pretrain_users)},
      {"cf_baseline_decay", Bind(&CounterfactualOptions::baseline_decay)},
      {"cf_mix_ratio", Bind(&CounterfactualOptions::mix_ratio)},
      {"cf_users_per_round", Bind(&CounterfactualOptions::users_per_round)},
      {"cf_background", Bind(&CounterfactualOptions::background)},
      {"cf_refresh_interval_ms",
       Bind(&CounterfactualOptions::refresh_interval_ms)},
      {"cf_queue_batches", Bind(&CounterfactualOptions::queue_batches)},
      {"cf_recent_users", Bind(&CounterfactualOptions::recent_users)},
      {"cf_seed", Bind(&CounterfactualOptions::seed)},
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
  CFREC_RETURN_IF_ERROR(OneOf("kernel", o.kernel, {"fused", "torch"}));
  CFREC_RETURN_IF_ERROR(OneOf("mlp_matmul", o.mlp_matmul, {"own", "blas"}));
  if (o.train_threads < 1 || o.train_threads > 64) {
    return Status::InvalidArgument("option 'train_threads' must be in [1, 64]");
  }
  CFREC_RETURN_IF_ERROR(OneOf("trainer", o.trainer, {"default", "ps", "acl"}));
  CFREC_RETURN_IF_ERROR(
      OneOf("exposure_model", o.exposure_model, {"gmf", "mlp", "neumf"}));
  CFREC_RETURN_IF_ERROR(Positive("exposure_dim", o.exposure_dim));
  CFREC_RETURN_IF_ERROR(Positive("acl_alpha", o.acl_alpha));
  CFREC_RETURN_IF_ERROR(Positive("acl_r_psi", o.acl_r_psi));
  if (!(o.propensity_clip_min > 0 && o.propensity_clip_min <= 1)) {
    return Status::InvalidArgument(
        "option 'propensity_clip_min' must be in (0, 1]");
  }
  if (!(o.propensity_clip_max >= o.propensity_clip_min &&
        o.propensity_clip_max <= 1)) {
    return Status::InvalidArgument(
        "option 'propensity_clip_max' must be in [propensity_clip_min, 1]");
  }
  if (o.exposure_pretrain_steps < 0) {
    return Status::InvalidArgument(
        "option 'exposure_pretrain_steps' must be >= 0");
  }
  return Status::Ok();
}

Status ValidateCounterfactualOptions(const CounterfactualOptions& o) {
  CFREC_RETURN_IF_ERROR(
      OneOf("intervention", o.intervention, {"none", "random", "learned"}));
  if (o.list_size < 2) {
    return Status::InvalidArgument("option 'cf_list_size' must be >= 2");
  }
  CFREC_RETURN_IF_ERROR(Positive("cf_noise_k", o.noise_k));
  if (2 * o.noise_k > o.list_size) {
    return Status::InvalidArgument(
        "option 'cf_noise_k' must be at most half of 'cf_list_size'");
  }
  if (o.candidate_pool != 0 && o.candidate_pool < o.list_size) {
    return Status::InvalidArgument(
        "option 'cf_candidate_pool' must be 0 or >= 'cf_list_size'");
  }
  if (!(o.explore_share >= 0 && o.explore_share < 1)) {
    return Status::InvalidArgument(
        "option 'cf_explore_share' must be in [0, 1)");
  }
  CFREC_RETURN_IF_ERROR(Positive("cf_policy_hidden", o.policy_hidden));
  CFREC_RETURN_IF_ERROR(Positive("cf_policy_lr", o.policy_lr));
  CFREC_RETURN_IF_ERROR(Positive("cf_policy_std", o.policy_std));
  if (o.exploration_std < 0) {
    return Status::InvalidArgument("option 'cf_exploration_std' must be >= 0");
  }
  if (o.pretrain_rounds < 0) {
    return Status::InvalidArgument("option 'cf_pretrain_rounds' must be >= 0");
  }
  CFREC_RETURN_IF_ERROR(Positive("cf_pretrain_users", o.pretrain_users));
  if (o.baseline_decay < 0 || o.baseline_decay >= 1) {
    return Status::InvalidArgument(
        "option 'cf_baseline_decay' must be in [0, 1)");
  }
  if (o.mix_ratio < 0) {
    return Status::InvalidArgument("option 'cf_mix_ratio' must be >= 0");
  }
  CFREC_RETURN_IF_ERROR(Positive("cf_users_per_round", o.users_per_round));
  CFREC_RETURN_IF_ERROR(
      Positive("cf_refresh_interval_ms", o.refresh_interval_ms));
  CFREC_RETURN_IF_ERROR(Positive("cf_queue_batches", o.queue_batches));
  CFREC_RETURN_IF_ERROR(Positive("cf_recent_users", o.recent_users));
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
  CFREC_RETURN_IF_ERROR(
      Positive("stream_learning_rate", o.stream_learning_rate));
  CFREC_RETURN_IF_ERROR(Positive("stream_evict_after_ms",
                                 static_cast<double>(o.stream_evict_after_ms)));
  CFREC_RETURN_IF_ERROR(Positive("candidate_window_ms",
                                 static_cast<double>(o.candidate_window_ms)));
  CFREC_RETURN_IF_ERROR(Positive("queue_capacity", o.queue_capacity));
  CFREC_RETURN_IF_ERROR(
      Positive("max_events_per_round", o.max_events_per_round));
  if (o.nice < 0 || o.nice > 19) {
    return Status::InvalidArgument("option 'nice' must be in [0, 19]");
  }
  if (!ParseSchedPolicy(o.sched).ok()) {
    return Status::InvalidArgument(
        "option 'sched' must be normal, batch or idle, got '" + o.sched + "'");
  }
  if (o.replay_ratio < 0) {
    return Status::InvalidArgument("option 'replay_ratio' must be >= 0");
  }
  if (o.idle_replay_passes < 0) {
    return Status::InvalidArgument("option 'idle_replay_passes' must be >= 0");
  }
  if (o.idle_replay_chunk < 1) {
    return Status::InvalidArgument("option 'idle_replay_chunk' must be >= 1");
  }
  CFREC_RETURN_IF_ERROR(
      OneOf("intervention", o.intervention, {"none", "random", "learned"}));
  CFREC_RETURN_IF_ERROR(OneOf("trainer", o.trainer, {"default", "ps", "acl"}));
  if (o.trainer != o.learner.trainer) {
    return Status::InvalidArgument("option 'trainer' is '" + o.trainer +
                                   "' for the trainer but '" +
                                   o.learner.trainer + "' for the learner");
  }
  CounterfactualOptions cf = o.counterfactual;
  cf.intervention = o.intervention;
  CFREC_RETURN_IF_ERROR(ValidateCounterfactualOptions(cf));
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
    } catch (const std::out_of_range& e) {
      return Status::InvalidArgument("config key '" + key +
                                     "' is out of range: " + e.what());
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
