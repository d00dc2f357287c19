// The learner's rankers as evaluation models: `cfrec eval --ranker
// bpr|gmf|mlp|neumf|lightgcn [--intervention none|random|learned]
// [--trainer default|ps|acl]` runs a Learner (and, with an intervention, a
// CounterfactualEngine) through eval's protocols.
//
// Fit follows CPR Algorithm 1 in epochs: the first epoch trains the ranker,
// p_R, p_S and the posteriors on the observed log (Learner::Train); every
// later epoch replays it in a fresh order (Learner::Replay). With an
// intervention, from epoch cf_start_epoch on (the policy pretrained first,
// Algorithm 2) every epoch adds counterfactual samples C(tau) for users in
// a fresh random order until they number mix_ratio times the epoch's
// observed ranker samples (Algorithm 1, lines 5-8). After each epoch the
// protocol's validation callback decides: keep the best parameters, go on,
// or stop and restore the best.
//
// Hyper-parameters (the config file's "models.<ranker>" object): every key
// of the trainer's JSON config (learner/config/default.json: LearnerOptions,
// "cf_*" counterfactual keys), plus
//   "epochs": most epochs of Fit. Default 30.
//   "cf_start_epoch": the first epoch with counterfactual samples; the
//     SEMs and the ranker train on observed data alone before it, so
//     C(tau) does not come from untrained models. Default 3.
// The request's ranker, intervention and trainer override the same keys,
// and the protocol's seed replaces "seed" and "cf_seed".
//
// This header is LibTorch-free.
#ifndef CFREC_LEARNER_EVAL_MODELS_H_
#define CFREC_LEARNER_EVAL_MODELS_H_

#include "cfrec/eval/model.h"

namespace cfrec::learner {

// Registers bpr, gmf, mlp, neumf and lightgcn, replacing the registry's
// "not available yet" placeholders.
void RegisterEvalModels(eval::ModelRegistry& registry);

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_EVAL_MODELS_H_
