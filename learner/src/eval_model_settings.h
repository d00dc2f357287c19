// The settings of a learned ranker in cfrec eval (eval::ModelSpec's
// `models.<ranker>` keys): the learner's and the counterfactual trainer's
// options plus the protocol's epochs and CPR study keys, parsed and checked
// with errors that name the key.
#ifndef CFREC_LEARNER_SRC_EVAL_MODEL_SETTINGS_H_
#define CFREC_LEARNER_SRC_EVAL_MODEL_SETTINGS_H_

#include <string>
#include <vector>

#include "cfrec/eval/model.h"
#include "cfrec/learner/options.h"
#include "cfrec/schemas/status.h"

namespace cfrec::learner {

constexpr int kEvalDefaultEpochs = 30;
constexpr int kEvalDefaultCfStartEpoch = 3;
// cf_simulator "logistic" tries the dimensions of cf::ClickModelOptions
// below sem_dim (one column holds the item intercept), at least this one.
constexpr int kMinClickModelDim = 2;

struct EvalSettings {
  TrainerOptions trainer;  // learner + counterfactual options
  int epochs = kEvalDefaultEpochs;
  // First epoch that adds counterfactual samples: the SEMs train alone with
  // the ranker before, so C(tau) is not drawn from untrained models.
  int cf_start_epoch = kEvalDefaultCfStartEpoch;
  // How an epoch's counterfactual samples reach the ranker. "ranker": all of
  // the epoch's samples, shuffled, in mini-batches of the ranker's
  // batch_size, like the observed ones (the default). "round": one step per
  // generation round of cf_users_per_round users (k*k samples each), the
  // earlier behaviour; with Adam every step moves the parameters by about
  // the learning rate whatever its size, so small counterfactual batches
  // took most of the ranker's updates (see docs/results/CPR_STUDY.md).
  std::string cf_batch = "ranker";
  // "oracle": the generator's true models simulate (cf_oracle.h); with
  // cf_oracle "click" its pairs carry the true clicks only, with "logit"
  // (the default) the true order of every pair.
  bool oracle = false;
  std::string cf_oracle = "logit";
  // Keep a simulated list's pairs only when p_S gives its most likely
  // item at least this probability (0: keep all, the default).
  double cf_min_top_prob = 0;
  // The mix ratio of epoch e is cf_mix_ratio * cf_mix_decay^(e -
  // cf_start_epoch) (1: constant, the default).
  double cf_mix_decay = 1;
  // Simulate only for users with at most this many clicks in the training
  // log (0: every user with a list, the default).
  int cf_max_user_clicks = 0;
  // Whose click model simulates. "shared": the SEMs of the ranker's
  // learner, trained with it one step per ranker mini-batch (CPR's
  // Algorithm 1).
  // "converged": a learner of their own, trained before the ranker uses
  // them with early stopping on held-out lists (each user with at least
  // two lists gives its last one with probability 1/2), the best epoch's
  // p_S by in-list AUC kept; with cf_sim_refresh it takes one more pass per
  // ranker epoch and keeps it only when the held-out AUC does not fall.
  // "logistic": the SEMs' p_R draws the lists, and a logistic click model
  // with user and item intercepts (cf_click_model.h), fitted on every
  // shown entry with its settings chosen on the same held-out lists,
  // replaces p_S. The default: in the CPR study it beat "shared" on
  // validation in all 12 BPR and GMF cells of the sparsity sweep
  // (docs/results/CPR_STUDY.md).
  std::string cf_simulator = "logistic";
  // With cf_simulator "logistic": keep a pair only when the model gives
  // its positive a click (probability above 1/2) and its negative none,
  // the learned counterpart of cf_oracle "click" (default false).
  bool cf_sim_clicks = false;
  // Loss weight of the counterfactual samples in the ranker step (1: CPR's
  // unweighted loss, the default). With cf_weight_by "confidence" each
  // pair's weight is also proportional to the logistic click model's
  // confidence in its order, |2 sigma(logit_pos - logit_neg) - 1|, scaled
  // so that the epoch's weights average cf_weight ("none": the default).
  double cf_weight = 1;
  std::string cf_weight_by = "none";
  // With cf_simulator "logistic": keep a pair only when the click model's
  // logit of its positive exceeds its negative's by at least this much (0:
  // keep all, the default). The pairs the model is least sure of are the
  // ones most often in the wrong order; more lists are drawn so that the
  // epoch's number of counterfactual samples stays the same.
  double cf_min_margin = 0;
  // With cf_simulator "logistic": how its dimension, L2 weight and epochs
  // are chosen. 0 (the default): on the held-out lists (each user with at
  // least two lists gives its last one with probability 1/2); k >= 2: by
  // k-fold cross-validation over all lists (every list held out once).
  int cf_sim_folds = 0;
  // With cf_simulator "logistic": the L2 weights it chooses among (empty:
  // cf::ClickModelOptions' 1e-4, 1e-3, 1e-2).
  std::vector<double> cf_sim_l2;
  int cf_sim_epochs = 60;
  int cf_sim_patience = 5;
  bool cf_sim_refresh = true;
};

Result<EvalSettings> ParseEvalSettings(const eval::ModelSpec& spec);

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_EVAL_MODEL_SETTINGS_H_
