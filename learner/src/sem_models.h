// SemModels: the SEM side of the learner (CPR section 3.1): the impression
// model p_R (eq. 4), the selection model p_S (eq. 5), the variational
// posteriors q(alpha), q(beta) (eqs. 8-9), their optimiser settings, their
// training steps (eqs. 6, 7 and 9; p_R and p_S through the fused kernel with
// kernel "fused", fused_sem.h), the abduction queries of the counterfactual
// engine, the ELBO, and their part of the checkpoint.
//
// The Learner owns one beside its ranker and hands it the id space and its
// generator: every random draw comes from the generator the caller passes,
// in a fixed order, so training stays deterministic and checkpoints restore
// bit-identically.
//
// Not thread-safe: owned by the Learner's thread. Exceptions (LibTorch's
// included) propagate to the Learner, which turns them into a Status.
#ifndef CFREC_LEARNER_SRC_SEM_MODELS_H_
#define CFREC_LEARNER_SRC_SEM_MODELS_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "acl.h"
#include "cfrec/learner/learner.h"
#include "cfrec/learner/options.h"
#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"
#include "fused_sem.h"
#include "models.h"
#include "param_set.h"
#include "scoring.h"

namespace cfrec::learner {

// What one SEM step did: which parts ran and their losses.
struct SemStepResult {
  bool impression = false;  // p_R stepped (the chunk had shown items)
  bool selection = false;   // p_S stepped (the chunk had clicked lists)
  bool posterior = false;   // the posteriors stepped (either of the above)
  double impression_loss = 0;
  double selection_loss = 0;
  double elbo = 0;  // the ELBO per observation of the posterior step
};

class SemModels {
 public:
  // Draws p_R's, then p_S's, then the posteriors' initial rows from `rng`.
  SemModels(const LearnerOptions& options, Rng& rng);

  // Grows every table to cover the id space (p_R, p_S, then posteriors).
  void EnsureRows(int64_t num_users, int64_t num_items, Rng& rng);

  // p_R, p_S and the posteriors on `events` (users below num_users, items
  // below num_items), in that order; adds each step's time to `times`.
  SemStepResult Step(std::span<const state::AppliedEvent> events,
                     int64_t num_users, int64_t num_items, Rng& rng,
                     TrainTimes& times);

  // --- Abduction (see Learner); the caller checks that ids have rows ---
  std::vector<float> SampleBeta(size_t k, Rng& rng);
  std::vector<float> SampleAlpha(std::span<const uint32_t> items,
                                 int64_t num_items, Rng& rng);
  std::vector<float> SelectionProbabilities(uint32_t user,
                                            std::span<const uint32_t> list,
                                            std::span<const float> beta);
  std::vector<float> ImpressionLogits(uint32_t user,
                                      std::span<const uint32_t> items,
                                      std::span<const float> alpha);
  double EvaluateElbo(std::span<const state::AppliedEvent> events,
                      int64_t num_users, int64_t num_items);
  double SelectionLogLikelihood(std::span<const state::AppliedEvent> events,
                                int64_t num_users);
  // Read-only views of the tables (see SemView).
  SemView View(int64_t num_users, int64_t num_items) const;
  // p_R's P and Q as a dot-product model for retrieval.
  ScoringModel ExportImpressionModel(int64_t num_users,
                                     int64_t num_items) const;

  // Drops gradients a failed step left behind.
  void ClearGrads();

  // Checkpoint part: the observation counts in `meta`, the tables and
  // their Adam state as "p_r.", "p_s." and "q." tensors.
  void SaveMeta(nlohmann::json& meta) const;
  void SaveParams(torch::serialize::OutputArchive& archive) const;
  Status LoadParams(torch::serialize::InputArchive& archive);
  void LoadMeta(const nlohmann::json& meta);

 private:
  // p_R's terms of eq. (6): shown items (1) and catalog items the list did
  // not show (0), sampled like g_psi's exposure terms (acl.h).
  using ImpressionTerms = ExposureTerms;
  struct SelectionLists;

  int64_t Position(size_t j) const;
  SelectionLists BuildSelectionLists(
      std::span<const state::AppliedEvent> events, int64_t num_users) const;
  ImpressionTerms BuildImpressionTerms(
      std::span<const state::AppliedEvent> events, int64_t num_users,
      int64_t num_items, Rng& rng) const;
  std::vector<float> NoiseValues(int64_t count, Rng& rng) const;
  double ImpressionStep(const ImpressionTerms& t, Rng& rng);
  double SelectionStep(const SelectionLists& l, Rng& rng);
  at::Tensor BetaElboPerObservation(const SelectionLists& l, double n, Rng& rng,
                                    bool train);
  at::Tensor AlphaElboPerObservation(const ImpressionTerms& t, double n,
                                     int64_t num_items, Rng& rng, bool train,
                                     bool all_items);
  double PosteriorStep(const ImpressionTerms& t, const SelectionLists& l,
                       int64_t num_items, Rng& rng);

  LearnerOptions options_;
  ImpressionModel p_r_;
  SelectionModel p_s_;
  Posteriors posteriors_;
  FusedSemStep fused_sem_;  // p_R and p_S with kernel "fused"
  AdamOptions sem_adam_, posterior_adam_;
  // Observations seen so far: the N of the per-observation ELBO.
  double pr_terms_seen_ = 0;
  double ps_clicks_seen_ = 0;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_SEM_MODELS_H_
