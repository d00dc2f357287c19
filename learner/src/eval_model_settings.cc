#include "eval_model_settings.h"

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace cfrec::learner {

Result<EvalSettings> ParseEvalSettings(const eval::ModelSpec& spec) {
  EvalSettings settings;
  nlohmann::json hyper;
  try {
    hyper =
        nlohmann::json::parse(spec.hyper_json.empty() ? "{}" : spec.hyper_json);
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument("models." + spec.ranker + ": " + e.what());
  }
  if (!hyper.is_object()) {
    return Status::InvalidArgument("models." + spec.ranker +
                                   " must be a JSON object");
  }
  for (auto [key, field] :
       {std::pair{"epochs", &settings.epochs},
        std::pair{"cf_start_epoch", &settings.cf_start_epoch},
        std::pair{"cf_sim_epochs", &settings.cf_sim_epochs},
        std::pair{"cf_sim_patience", &settings.cf_sim_patience}}) {
    if (!hyper.contains(key)) continue;
    const nlohmann::json& e = hyper[key];
    if (!e.is_number_integer() || e.get<int64_t>() < 1 ||
        e.get<int64_t>() > 10000) {
      return Status::InvalidArgument("models." + spec.ranker + "." + key +
                                     " must be an integer in [1, 10000]");
    }
    *field = e.get<int>();
    hyper.erase(key);
  }
  if (hyper.contains("cf_min_top_prob")) {
    const nlohmann::json& e = hyper["cf_min_top_prob"];
    if (!e.is_number() || e.get<double>() < 0 || e.get<double>() >= 1) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_min_top_prob must be in [0, 1)");
    }
    settings.cf_min_top_prob = e.get<double>();
    hyper.erase("cf_min_top_prob");
  }
  if (hyper.contains("cf_mix_decay")) {
    const nlohmann::json& e = hyper["cf_mix_decay"];
    if (!e.is_number() || !(e.get<double>() > 0) || e.get<double>() > 1) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_mix_decay must be in (0, 1]");
    }
    settings.cf_mix_decay = e.get<double>();
    hyper.erase("cf_mix_decay");
  }
  if (hyper.contains("cf_weight")) {
    const nlohmann::json& e = hyper["cf_weight"];
    if (!e.is_number() || !(e.get<double>() > 0) || e.get<double>() > 100) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_weight must be in (0, 100]");
    }
    settings.cf_weight = e.get<double>();
    hyper.erase("cf_weight");
  }
  if (hyper.contains("cf_min_margin")) {
    const nlohmann::json& e = hyper["cf_min_margin"];
    if (!e.is_number() || e.get<double>() < 0 || e.get<double>() > 100) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_min_margin must be in [0, 100]");
    }
    settings.cf_min_margin = e.get<double>();
    hyper.erase("cf_min_margin");
  }
  if (hyper.contains("cf_sim_folds")) {
    const nlohmann::json& e = hyper["cf_sim_folds"];
    if (!e.is_number_integer() || e.get<int64_t>() < 0 ||
        e.get<int64_t>() == 1 || e.get<int64_t>() > 20) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_sim_folds must be 0 or an integer "
                                     "in [2, 20]");
    }
    settings.cf_sim_folds = e.get<int>();
    hyper.erase("cf_sim_folds");
  }
  if (hyper.contains("cf_sim_l2")) {
    const nlohmann::json& e = hyper["cf_sim_l2"];
    bool good = e.is_array() && !e.empty() && e.size() <= 16;
    for (const nlohmann::json& v : good ? e : nlohmann::json::array()) {
      good = good && v.is_number() && v.get<double>() >= 0 &&
             v.get<double>() <= 10;
    }
    if (!good) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_sim_l2 must be a list of 1 to 16 "
                                     "numbers in [0, 10]");
    }
    settings.cf_sim_l2 = e.get<std::vector<double>>();
    hyper.erase("cf_sim_l2");
  }
  if (hyper.contains("cf_weight_by")) {
    const nlohmann::json& e = hyper["cf_weight_by"];
    if (!e.is_string() || (e != "none" && e != "confidence")) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_weight_by must be \"none\" or "
                                     "\"confidence\"");
    }
    settings.cf_weight_by = e.get<std::string>();
    hyper.erase("cf_weight_by");
  }
  if (hyper.contains("cf_max_user_clicks")) {
    const nlohmann::json& e = hyper["cf_max_user_clicks"];
    if (!e.is_number_integer() || e.get<int64_t>() < 0 ||
        e.get<int64_t>() > 1000000) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_max_user_clicks must be an integer "
                                     "in [0, 1000000]");
    }
    settings.cf_max_user_clicks = e.get<int>();
    hyper.erase("cf_max_user_clicks");
  }
  if (hyper.contains("cf_simulator")) {
    const nlohmann::json& e = hyper["cf_simulator"];
    if (!e.is_string() ||
        (e != "shared" && e != "converged" && e != "logistic")) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_simulator must be \"shared\", "
                                     "\"converged\" or \"logistic\"");
    }
    settings.cf_simulator = e.get<std::string>();
    hyper.erase("cf_simulator");
  }
  for (auto [key, field] :
       {std::pair{"cf_sim_refresh", &settings.cf_sim_refresh},
        std::pair{"cf_sim_clicks", &settings.cf_sim_clicks}}) {
    if (!hyper.contains(key)) continue;
    const nlohmann::json& e = hyper[key];
    if (!e.is_boolean()) {
      return Status::InvalidArgument("models." + spec.ranker + "." + key +
                                     " must be true or false");
    }
    *field = e.get<bool>();
    hyper.erase(key);
  }
  if (hyper.contains("cf_oracle")) {
    const nlohmann::json& e = hyper["cf_oracle"];
    if (!e.is_string() || (e != "logit" && e != "click")) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_oracle must be \"logit\" or "
                                     "\"click\"");
    }
    settings.cf_oracle = e.get<std::string>();
    hyper.erase("cf_oracle");
  }
  if (hyper.contains("cf_batch")) {
    const nlohmann::json& e = hyper["cf_batch"];
    if (!e.is_string() || (e != "ranker" && e != "round")) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ".cf_batch must be \"ranker\" or "
                                     "\"round\"");
    }
    settings.cf_batch = e.get<std::string>();
    hyper.erase("cf_batch");
  }
  // The request decides these; the config may not contradict it.
  for (const char* key : {"ranker", "intervention", "trainer"}) {
    if (hyper.contains(key)) {
      return Status::InvalidArgument("models." + spec.ranker + "." + key +
                                     ": set it on the command line (--" + key +
                                     "), not in the config");
    }
  }
  Result<TrainerOptions> options = ParseTrainerOptions(hyper.dump());
  if (!options.ok()) {
    return options.status().WithContext("models." + spec.ranker);
  }
  settings.trainer = std::move(options).value();
  if (settings.cf_sim_clicks && settings.cf_simulator != "logistic") {
    return Status::InvalidArgument("models." + spec.ranker +
                                   ".cf_sim_clicks needs cf_simulator "
                                   "\"logistic\"");
  }
  if ((settings.cf_min_margin > 0 || settings.cf_sim_folds > 0 ||
       !settings.cf_sim_l2.empty()) &&
      (settings.cf_simulator != "logistic" || spec.intervention == "oracle")) {
    return Status::InvalidArgument("models." + spec.ranker +
                                   ": cf_min_margin, cf_sim_folds and "
                                   "cf_sim_l2 need cf_simulator \"logistic\" "
                                   "(not the oracle)");
  }
  if (settings.cf_weight_by == "confidence" &&
      (settings.cf_simulator != "logistic" || spec.intervention == "oracle")) {
    return Status::InvalidArgument("models." + spec.ranker +
                                   ".cf_weight_by \"confidence\" needs "
                                   "cf_simulator \"logistic\" (not the "
                                   "oracle)");
  }
  if ((settings.cf_weight != 1 || settings.cf_weight_by != "none") &&
      spec.trainer == "acl") {
    return Status::InvalidArgument("models." + spec.ranker +
                                   ": cf_weight and cf_weight_by need a "
                                   "trainer other than acl");
  }
  if (settings.cf_simulator == "logistic" &&
      settings.trainer.learner.sem_dim < kMinClickModelDim + 1) {
    return Status::InvalidArgument(
        "models." + spec.ranker +
        ": cf_simulator \"logistic\" needs sem_dim >= " +
        std::to_string(kMinClickModelDim + 1));
  }
  settings.oracle = spec.intervention == "oracle";
  // The oracle replaces the SEMs, not the sampling options: those are
  // validated as CPR-r's.
  const std::string intervention =
      settings.oracle ? std::string("random") : spec.intervention;
  settings.trainer.learner.ranker = spec.ranker;
  settings.trainer.learner.trainer = spec.trainer;
  settings.trainer.trainer = spec.trainer;
  settings.trainer.intervention = intervention;
  settings.trainer.counterfactual.intervention = intervention;
  CFREC_RETURN_IF_ERROR(ValidateTrainerOptions(settings.trainer)
                            .WithContext("models." + spec.ranker));
  return settings;
}

}  // namespace cfrec::learner
