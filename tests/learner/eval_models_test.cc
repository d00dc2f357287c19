// The learner's rankers through eval's protocols (the `cfrec eval` path).
#include "cfrec/learner/eval_models.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/model.h"
#include "cfrec/eval/protocol.h"
#include "cfrec/eval/synth.h"
#include "cfrec/eval/truth.h"

namespace cfrec::learner {
namespace {

eval::Dataset SmallLog() {
  eval::MindLikeOptions o;
  o.num_users = 300;
  o.num_items = 200;
  o.num_impressions = 6000;
  o.median_list_length = 12;
  o.mean_history_length = 3;
  o.seed = 5;
  Result<std::vector<MindRow>> rows = eval::GenerateMindLike(o);
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  Result<eval::Dataset> data = eval::Dataset::FromRows(*rows);
  EXPECT_TRUE(data.ok()) << data.status().ToString();
  return std::move(data).value();
}

eval::ModelRegistry Registry() {
  eval::ModelRegistry registry = eval::DefaultRegistry();
  RegisterEvalModels(registry);
  return registry;
}

std::unique_ptr<eval::Model> Create(const eval::ModelRegistry& registry,
                                    eval::ModelSpec spec) {
  Result<std::unique_ptr<eval::Model>> model = registry.Create(spec);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? std::move(model).value() : nullptr;
}

constexpr char kSmallHyper[] =
    R"({"epochs": 6, "dim": 16, "sem_dim": 16, "batch_size": 256,
        "lr": 0.005, "sem_lr": 0.01, "max_positions": 64, "cf_start_epoch": 3, "cf_pretrain_rounds": 3,
        "cf_pretrain_users": 64, "cf_users_per_round": 64, "cf_mix_ratio": 0.2})";

TEST(EvalModelsTest, RegistersEveryRankerAndRejectsBadHyperParameters) {
  eval::ModelRegistry registry = Registry();
  for (const char* ranker : {"bpr", "gmf", "mlp", "neumf", "lightgcn"}) {
    eval::ModelSpec spec;
    spec.ranker = ranker;
    spec.intervention = "learned";
    std::unique_ptr<eval::Model> model = Create(registry, spec);
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(model->name(), std::string(ranker) + "+cpr");
  }
  eval::ModelSpec spec;
  spec.ranker = "bpr";
  spec.hyper_json = R"({"epochs": 0})";
  EXPECT_FALSE(registry.Create(spec).ok());
  spec.hyper_json = R"({"dimm": 8})";
  Result<std::unique_ptr<eval::Model>> typo = registry.Create(spec);
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().ToString().find("dimm"), std::string::npos)
      << typo.status().ToString();
  spec.hyper_json = R"({"ranker": "gmf"})";
  EXPECT_FALSE(registry.Create(spec).ok());
  for (const char* bad :
       {R"({"cf_batch": "epoch"})", R"({"cf_oracle": 1})",
        R"({"cf_min_top_prob": 1.0})", R"({"cf_mix_decay": 0})",
        R"({"cf_mix_decay": 1.5})", R"({"cf_simulator": "oracle"})",
        R"({"cf_max_user_clicks": -1})", R"({"cf_sim_refresh": 1})",
        R"({"cf_simulator": "logistic", "sem_dim": 2})", R"({"cf_weight": 0})",
        R"({"cf_weight_by": "margin"})",
        R"({"cf_weight_by": "confidence", "cf_simulator": "shared"})",
        R"({"cf_min_margin": -1})", R"({"cf_sim_folds": 1})",
        R"({"cf_sim_folds": 2.5})", R"({"cf_sim_l2": []})",
        R"({"cf_sim_l2": [0.1, -1]})",
        R"({"cf_min_margin": 1, "cf_simulator": "shared"})",
        R"({"cf_sim_folds": 5, "cf_simulator": "converged"})"}) {
    spec.hyper_json = bad;
    EXPECT_FALSE(registry.Create(spec).ok()) << bad;
  }
}

// Leave-one-out end to end for base, CPR-r and CPR: each learns far above
// chance (AUC 0.5 against sampled negatives), selects its epoch on
// validation, and the same seed reproduces the same numbers.
TEST(EvalModelsTest, LeaveOneOutLearnsForEveryIntervention) {
  const eval::Dataset data = SmallLog();
  eval::ModelRegistry registry = Registry();
  eval::LooProtocolOptions loo;
  loo.split.num_negatives = 50;
  loo.patience = 3;
  for (const char* intervention : {"none", "random", "learned"}) {
    SCOPED_TRACE(intervention);
    eval::ModelSpec spec;
    spec.ranker = "bpr";
    spec.intervention = intervention;
    spec.hyper_json = kSmallHyper;
    std::unique_ptr<eval::Model> model = Create(registry, spec);
    ASSERT_NE(model, nullptr);
    Result<eval::LooResult> result = eval::RunLeaveOneOut(*model, data, loo);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    // Measured: none 0.687, random 0.669, learned 0.650.
    EXPECT_GT(result->test_sampled.auc.value(), 0.6);
    EXPECT_GE(result->best_epoch, 1);
    EXPECT_FALSE(result->curve.empty());
    if (std::string(intervention) != "learned") continue;

    std::unique_ptr<eval::Model> again = Create(registry, spec);
    Result<eval::LooResult> repeat = eval::RunLeaveOneOut(*again, data, loo);
    ASSERT_TRUE(repeat.ok());
    EXPECT_EQ(repeat->test_sampled.auc.value(),
              result->test_sampled.auc.value());
  }
}

// Prequential: the model learns window by window through Update.
TEST(EvalModelsTest, PrequentialUpdatesIncrementally) {
  const eval::Dataset data = SmallLog();
  eval::ModelRegistry registry = Registry();
  eval::ModelSpec spec;
  spec.ranker = "gmf";
  spec.intervention = "random";
  spec.hyper_json = kSmallHyper;
  std::unique_ptr<eval::Model> model = Create(registry, spec);
  ASSERT_NE(model, nullptr);
  eval::PrequentialOptions options;
  options.num_windows = 4;
  Result<eval::PrequentialResult> result =
      eval::RunPrequential(*model, data, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->windows.size(), 3u);
  EXPECT_TRUE(result->incremental);
  EXPECT_GT(result->overall.auc.value(), 0.5);

  // CPR's logistic click model, fitted on the first window, is refitted as
  // the lists seen double (window 0: a quarter of the log; after window 1:
  // half).
  spec.intervention = "learned";
  std::unique_ptr<eval::Model> cpr = Create(registry, spec);
  ASSERT_NE(cpr, nullptr);
  ASSERT_TRUE(eval::RunPrequential(*cpr, data, options).ok());
  nlohmann::json d = nlohmann::json::parse(cpr->DiagnosticsJson());
  EXPECT_EQ(d["cf_simulator"], "logistic");
  ASSERT_TRUE(d["simulator_refits"].is_number()) << d.dump();
  EXPECT_GE(d["simulator_refits"].get<int>(), 1) << d.dump();
  // The action step's options are echoed (defaults here).
  ASSERT_TRUE(d["cf_candidate_pool"].is_number_integer()) << d.dump();
  ASSERT_TRUE(d["cf_explore_share"].is_number()) << d.dump();
  EXPECT_EQ(d["cf_explore_share"].get<double>(), 0.0);
}

// A small log of the CPR generator (non-linear response) and its truth.
struct SynthLog {
  eval::TrainData train;
  std::shared_ptr<const eval::TrueModel> truth;
};

SynthLog SmallSynth() {
  eval::SynthOptions o;
  o.num_users = 200;
  o.num_items = 100;
  o.dim = 8;
  o.lists_per_user = 10;
  o.response = eval::ResponseModel::kNonlinear;
  o.seed = 3;
  Result<eval::SynthData> synth = eval::GenerateSynthetic(o);
  EXPECT_TRUE(synth.ok()) << synth.status().ToString();
  Result<eval::Dataset> data = eval::Dataset::FromRows(synth->rows);
  EXPECT_TRUE(data.ok()) << data.status().ToString();
  SynthLog log;
  log.train.num_users = data->num_users();
  log.train.num_items = data->num_items();
  log.train.impressions = data->impressions();
  for (const auto& user : data->PositivesByUser()) {
    log.train.positives.insert(log.train.positives.end(), user.begin(),
                               user.end());
  }
  // Dense ids of the rows are "U<n>"/"N<n>" in order of appearance: remap
  // the truth through a written ground_truth.json, as `cfrec eval` does.
  const std::string dir = ::testing::TempDir() + "/cfrec_eval_models_synth";
  EXPECT_TRUE(eval::WriteSynthetic(*synth, dir).ok());
  Result<std::shared_ptr<const eval::TrueModel>> truth =
      eval::TrueModel::Load(dir + "/ground_truth.json", *data);
  EXPECT_TRUE(truth.ok()) << truth.status().ToString();
  log.truth = *truth;
  return log;
}

nlohmann::json FitAndDiagnose(const eval::ModelRegistry& registry,
                              const SynthLog& log, const std::string& hyper,
                              const std::string& intervention) {
  eval::ModelSpec spec;
  spec.ranker = "bpr";
  spec.intervention = intervention;
  spec.hyper_json = hyper;
  spec.truth = log.truth;
  std::unique_ptr<eval::Model> model = Create(registry, spec);
  if (model == nullptr) return {};
  eval::FitContext context;  // no validation: every epoch trains
  context.seed = 7;
  Status fit = model->Fit(log.train, context);
  EXPECT_TRUE(fit.ok()) << fit.ToString();
  return nlohmann::json::parse(model->DiagnosticsJson());
}

constexpr char kSynthHyper[] =
    R"({"epochs": 5, "dim": 16, "sem_dim": 16, "batch_size": 256,
        "lr": 0.005, "sem_lr": 0.01, "max_positions": 8, "cf_start_epoch": 2,
        "cf_pretrain_rounds": 2, "cf_pretrain_users": 32,
        "cf_users_per_round": 32, "cf_mix_ratio": 0.25)";

// The mix ratio is a share of the ranker's updates, not only of its
// samples: counterfactual samples go through mini-batches of batch_size
// like the observed ones. Before, every generation round (32 users, 32
// samples here) was its own Adam step, and since an Adam step moves the
// parameters by about the learning rate whatever the batch size, a 25%
// mix took most of the steps (still selectable as cf_batch "round").
TEST(EvalModelsTest, CounterfactualSamplesTakeTheirShareOfRankerSteps) {
  const SynthLog log = SmallSynth();
  eval::ModelRegistry registry = Registry();
  for (const char* intervention : {"random", "learned", "oracle"}) {
    SCOPED_TRACE(intervention);
    nlohmann::json d = FitAndDiagnose(
        registry, log, std::string(kSynthHyper) + "}", intervention);
    ASSERT_TRUE(d.is_object());
    const double all = d["ranker_steps_all"].get<double>();
    const double cf = d["total"]["ranker_steps"].get<double>();
    const double observed = d["samples_observed"].get<double>();
    const double simulated = d["samples_counterfactual"].get<double>();
    EXPECT_GT(cf, 0);
    // Epochs 2-5 of 5 add 0.25 times their observed samples: 0.2 of all
    // observed ones, 1/6 of everything; the steps follow, give or take one
    // partial batch per epoch.
    EXPECT_NEAR(simulated / (observed + simulated), 1.0 / 6, 0.01);
    EXPECT_LE(cf / all, 1.0 / 6 + 4.0 / all) << d.dump();
  }
  nlohmann::json old = FitAndDiagnose(
      registry, log, std::string(kSynthHyper) + R"(, "cf_batch": "round"})",
      "random");
  ASSERT_TRUE(old.is_object());
  EXPECT_GT(old["total"]["ranker_steps"].get<double>() /
                old["ranker_steps_all"].get<double>(),
            0.5);
}

// The oracle orders every pair as the true click model does; the learned
// simulator's figures are all there, in range, epoch by epoch.
TEST(EvalModelsTest, OracleAndFidelityFigures) {
  const SynthLog log = SmallSynth();
  eval::ModelRegistry registry = Registry();
  nlohmann::json oracle =
      FitAndDiagnose(registry, log, std::string(kSynthHyper) + "}", "oracle");
  ASSERT_TRUE(oracle.is_object());
  EXPECT_EQ(oracle["simulator"], "oracle-logit");
  EXPECT_DOUBLE_EQ(oracle["total"]["pair_agreement"].get<double>(), 1.0);
  EXPECT_EQ(oracle["by_epoch"].size(), 4u);

  // Clicks only: pairs of a clicked and an unclicked item, so fewer.
  nlohmann::json clicks = FitAndDiagnose(
      registry, log, std::string(kSynthHyper) + R"(, "cf_oracle": "click"})",
      "oracle");
  ASSERT_TRUE(clicks.is_object());
  EXPECT_EQ(clicks["simulator"], "oracle-click");
  EXPECT_DOUBLE_EQ(clicks["total"]["pair_agreement"].get<double>(), 1.0);
  EXPECT_LT(clicks["total"]["samples"].get<double>(),
            0.7 * clicks["total"]["lists"].get<double>());

  nlohmann::json learned =
      FitAndDiagnose(registry, log, std::string(kSynthHyper) + "}", "learned");
  ASSERT_TRUE(learned.is_object());
  ASSERT_EQ(learned["by_epoch"].size(), 4u);
  for (const auto& e : learned["by_epoch"]) {
    EXPECT_GT(e["mean_reward"].get<double>(), 0) << e.dump();
    const double agree = e["pair_agreement"].get<double>();
    EXPECT_GE(agree, 0.0);
    EXPECT_LE(agree, 1.0);
    EXPECT_GT(e["catalog_share"].get<double>(), 0);
  }
  const nlohmann::json& sem = learned["sem"];
  for (const char* key : {"ps_auc_train", "ps_auc_fresh", "pr_auc_train",
                          "pr_auc_train_true_model", "true_model_auc_fresh"}) {
    ASSERT_TRUE(sem[key].is_number()) << key << " " << sem.dump();
    EXPECT_GE(sem[key].get<double>(), 0.0) << key;
    EXPECT_LE(sem[key].get<double>(), 1.0) << key;
  }
  // Without clicks' noise the true model separates every fresh list.
  EXPECT_DOUBLE_EQ(sem["true_model_auc_fresh"].get<double>(), 1.0);
  // p_S learned something from the clicked lists.
  EXPECT_GT(sem["ps_auc_train"].get<double>(), 0.6);

  // A confidence filter on p_S keeps fewer pairs than lists (k = 1).
  nlohmann::json confident = FitAndDiagnose(
      registry, log, std::string(kSynthHyper) + R"(, "cf_min_top_prob": 0.5})",
      "learned");
  ASSERT_TRUE(confident.is_object());
  EXPECT_GT(confident["total"]["samples"].get<double>(), 0);
  EXPECT_LT(confident["total"]["samples"].get<double>(),
            confident["total"]["lists"].get<double>());

  // No truth, no oracle.
  eval::ModelSpec spec;
  spec.ranker = "bpr";
  spec.intervention = "oracle";
  spec.hyper_json = std::string(kSynthHyper) + "}";
  std::unique_ptr<eval::Model> blind = Create(registry, spec);
  ASSERT_NE(blind, nullptr);
  EXPECT_FALSE(blind->Fit(log.train, eval::FitContext{}).ok());
}

// The simulators and schedules of cf_simulator, cf_mix_decay and
// cf_max_user_clicks, and the figures that say whether the pairs teach the
// ranker anything: the logistic click model knows the clicks of fresh
// lists better than the SEMs' p_S on this log; the oracle's pairs all have
// the true order, so the ones the ranker gets wrong all teach. (On this
// small, dense log the SEMs' p_S is good too: 0.96 against 0.98.)
TEST(EvalModelsTest, SimulatorsSchedulesAndTeachingFigures) {
  const SynthLog log = SmallSynth();
  eval::ModelRegistry registry = Registry();
  const std::string hyper = std::string(kSynthHyper);
  nlohmann::json shared = FitAndDiagnose(
      registry, log, hyper + R"(, "cf_simulator": "shared"})", "learned");
  // "logistic" is the default.
  nlohmann::json logistic =
      FitAndDiagnose(registry, log, hyper + "}", "learned");
  ASSERT_TRUE(shared.is_object());
  ASSERT_TRUE(logistic.is_object());
  EXPECT_EQ(shared["cf_simulator"], "shared");
  EXPECT_EQ(logistic["cf_simulator"], "logistic");
  const nlohmann::json& fit = logistic["simulator_fit"];
  ASSERT_TRUE(fit.is_object()) << logistic.dump();
  EXPECT_GT(fit["heldout_lists"].get<int>(), 0);
  EXPECT_EQ(fit["candidates"].size(), 9u);
  for (const nlohmann::json* d : {&shared, &logistic}) {
    for (const char* key :
         {"ps_auc_fresh", "ranker_auc_fresh", "ranker_auc_train"}) {
      ASSERT_TRUE((*d)["sem"][key].is_number()) << key;
      EXPECT_GE((*d)["sem"][key].get<double>(), 0.0);
      EXPECT_LE((*d)["sem"][key].get<double>(), 1.0);
    }
    const nlohmann::json& t = (*d)["total"];
    EXPECT_LE(t["pairs_teaching"].get<double>(),
              1 - t["ranker_agrees"].get<double>() + 1e-12);
  }
  EXPECT_GT(logistic["sem"]["ps_auc_fresh"].get<double>(),
            shared["sem"]["ps_auc_fresh"].get<double>());
  EXPECT_GT(logistic["total"]["pair_agreement"].get<double>(),
            shared["total"]["pair_agreement"].get<double>());
  // Simulated clicks only: fewer pairs than lists (k = 1), more of them in
  // the true order.
  nlohmann::json clicks = FitAndDiagnose(
      registry, log,
      hyper + R"(, "cf_simulator": "logistic", "cf_sim_clicks": true})",
      "learned");
  ASSERT_TRUE(clicks.is_object());
  EXPECT_GT(clicks["total"]["samples"].get<double>(), 0);
  EXPECT_LT(clicks["total"]["samples"].get<double>(),
            clicks["total"]["lists"].get<double>());
  EXPECT_GT(clicks["total"]["pair_agreement"].get<double>(),
            logistic["total"]["pair_agreement"].get<double>());

  // Loss weights leave which samples are drawn alone and change what the
  // ranker learns from them.
  nlohmann::json confident = FitAndDiagnose(
      registry, log, hyper + R"(, "cf_weight_by": "confidence"})", "learned");
  nlohmann::json heavy =
      FitAndDiagnose(registry, log, hyper + R"(, "cf_weight": 3})", "learned");
  for (const nlohmann::json* d : {&confident, &heavy}) {
    ASSERT_TRUE(d->is_object());
    EXPECT_EQ((*d)["samples_counterfactual"],
              logistic["samples_counterfactual"]);
    EXPECT_NE((*d)["sem"]["ranker_auc_fresh"],
              logistic["sem"]["ranker_auc_fresh"]);
  }
  EXPECT_EQ(confident["cf_weight_by"], "confidence");
  EXPECT_EQ(heavy["cf_weight"], 3.0);

  nlohmann::json oracle = FitAndDiagnose(registry, log, hyper + "}", "oracle");
  ASSERT_TRUE(oracle.is_object());
  EXPECT_DOUBLE_EQ(oracle["total"]["gradient_true_share"].get<double>(), 1.0);
  EXPECT_NEAR(oracle["total"]["pairs_teaching"].get<double>() +
                  oracle["total"]["ranker_agrees"].get<double>(),
              1.0, 1e-9);

  // Epochs 2..5 at 0.25 * 0.5^(e - 2): under half of the constant mix.
  nlohmann::json decay = FitAndDiagnose(
      registry, log, hyper + R"(, "cf_mix_decay": 0.5})", "random");
  nlohmann::json constant =
      FitAndDiagnose(registry, log, hyper + "}", "random");
  ASSERT_TRUE(decay.is_object());
  ASSERT_TRUE(constant.is_object());
  EXPECT_LT(decay["samples_counterfactual"].get<double>(),
            0.5 * constant["samples_counterfactual"].get<double>());

  nlohmann::json few = FitAndDiagnose(
      registry, log, hyper + R"(, "cf_max_user_clicks": 3})", "random");
  ASSERT_TRUE(few.is_object());
  EXPECT_GT(few["cf_users"].get<int>(), 0);
  EXPECT_LT(few["cf_users"].get<int>(), constant["cf_users"].get<int>());

  // Converged SEMs: their own epochs, then one refresh pass per ranker
  // epoch after the first counterfactual one (epochs 3..5).
  nlohmann::json converged = FitAndDiagnose(
      registry, log,
      hyper + R"(, "cf_simulator": "converged", "cf_sim_epochs": 8})",
      "learned");
  ASSERT_TRUE(converged.is_object());
  const nlohmann::json& sim = converged["simulator_fit"];
  EXPECT_GE(sim["best_epoch"].get<int>(), 1);
  EXPECT_EQ(sim["refresh_passes"].get<int>(), 3);
  EXPECT_LE(sim["refresh_kept"].get<int>(), 3);
}

// The logistic click model's settings chosen by cross-validation over every
// list (cf_sim_folds, cf_sim_l2), and the margin filter on its pairs
// (cf_min_margin): the filter keeps the epoch's number of samples by
// drawing more lists, and the pairs it keeps are more often in the true
// order.
TEST(EvalModelsTest, ClickModelFoldsAndMarginFilter) {
  const SynthLog log = SmallSynth();
  eval::ModelRegistry registry = Registry();
  const std::string hyper = std::string(kSynthHyper);
  nlohmann::json plain = FitAndDiagnose(registry, log, hyper + "}", "learned");
  nlohmann::json folds = FitAndDiagnose(
      registry, log,
      hyper + R"(, "cf_sim_folds": 3, "cf_sim_l2": [0.001, 0.1]})", "learned");
  ASSERT_TRUE(plain.is_object());
  ASSERT_TRUE(folds.is_object());
  EXPECT_EQ(plain["simulator_fit"]["folds"], 0);
  const nlohmann::json& fit = folds["simulator_fit"];
  EXPECT_EQ(fit["folds"], 3);
  // Every list is held out once, against about half of the users' last
  // lists without folds.
  EXPECT_EQ(fit["heldout_lists"].get<size_t>(), log.train.impressions.size());
  EXPECT_LT(plain["simulator_fit"]["heldout_lists"].get<size_t>(),
            log.train.impressions.size() / 4);
  // Dimensions 2, 4, 8 times the two L2 weights given.
  ASSERT_EQ(fit["candidates"].size(), 6u);
  for (const nlohmann::json& c : fit["candidates"]) {
    EXPECT_TRUE(c["l2"] == 0.001 || c["l2"] == 0.1) << c.dump();
    EXPECT_GT(c["auc"].get<double>(), 0.5) << c.dump();
  }
  EXPECT_GT(folds["sem"]["ps_auc_fresh"].get<double>(), 0.8);

  nlohmann::json margin = FitAndDiagnose(
      registry, log, hyper + R"(, "cf_min_margin": 2})", "learned");
  ASSERT_TRUE(margin.is_object());
  EXPECT_EQ(margin["cf_min_margin"], 2.0);
  EXPECT_EQ(margin["samples_counterfactual"], plain["samples_counterfactual"]);
  EXPECT_GT(margin["total"]["lists"].get<double>(),
            plain["total"]["lists"].get<double>());
  EXPECT_LT(margin["total"]["samples"].get<double>(),
            margin["total"]["lists"].get<double>());
  EXPECT_GT(margin["total"]["pair_agreement"].get<double>(),
            plain["total"]["pair_agreement"].get<double>());
}

}  // namespace
}  // namespace cfrec::learner
