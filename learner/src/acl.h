// The exposure side of ACL (adversarial counterfactual learning, the ACL
// paper's objective (8) and appendix A.5, A.6.4): an exposure model g_psi,
// the propensity G_beta(Y, g_psi(X, Z)), the weighted ranker objective and
// the two-timescale updates, for the learner's trainers "ps" and "acl".
//
//   min_{theta, beta} max_{psi}
//     E_Pn[ delta(Y, f_theta(X, Z)) / G_beta(Y, g_psi(X, Z)) ]
//       - alpha * E_Pn[ delta(O, g_psi(X, Z)) ]                        (8)
//
// log G_beta(y, g) = log sigma(g + c) + beta * y, clipped to [c_min, c_max]:
// g_psi carries the role of the features X, Z in the exposure mechanism
// and beta the outcome's, as A.5 derives from Tukey's factorisation (A.16,
// A.17); without the beta * y term it is the appendix's "no outcome"
// ablation sigma(g_psi). The exposure-fitting loss delta(O, g) is the
// cross-entropy of g on what the log says was shown: impressed items
// (O = 1) against catalog items the same list did not show (O = 0). With k
// sampled negatives per shown item, g's odds are those of "shown in a list"
// times items / (k * mean list length); c = log(k * mean list length /
// items) undoes that, so G is the probability that a list shows the item.
//
// The weighted expectation is self-normalised within a mini-batch
// (sum w delta / sum w, w = 1/G): with plain means, the minimiser could
// lower every weight at once (G up to its clip, i.e. back to the unweighted
// loss) whenever the rarely exposed samples are the hard ones. Normalised,
// a common shift of log G cancels, so beta only moves weight between
// clicked and not-clicked samples; it has a gradient only when a batch
// holds both outcomes (the pointwise loss; pairwise samples all carry the
// click, Y = 1, and beta * y would be a common shift, live only through
// the clip, where minimising pushes G to its upper bound).
//
// "ps" (A.6.4): g_psi first fits the exposure alone for
// exposure_pretrain_steps steps (stage 1), then the ranker trains on the
// weights with g_psi held fixed. Online the stream's exposure policy drifts,
// so g_psi keeps fitting its own loss on the new events (never the ranker's
// objective); the ranker's weights are always detached from psi.
// "acl": the same warm start, then in every ranker step g_psi takes one
// Adam step at rate r_psi ascending the weighted ranker loss minus alpha
// times its exposure loss, while f_theta and beta descend it at r_theta.
//
// Not thread-safe: owned by the learner's thread. Every random choice uses
// the learner's generator, so checkpoints restore bit-identically.
#ifndef CFREC_LEARNER_SRC_ACL_H_
#define CFREC_LEARNER_SRC_ACL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "cfrec/learner/options.h"
#include "cfrec/learner/snapshot.h"
#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"
#include "models.h"
#include "param_set.h"

namespace cfrec::learner {

// Exposure-fitting terms of g_psi: (user, item, shown?) triples.
struct ExposureTerms {
  std::vector<int64_t> user, item;
  std::vector<float> shown;  // 1: in the impression list, 0: not shown
  size_t size() const { return user.size(); }
};

// Up to `positives_per_list` shown items of every impression event (a
// random subset of long lists), each with `negatives_per_positive` catalog
// items the list did not show. Events with unknown users are skipped.
// p_R's negative-sampling terms of CPR eq. (6) are drawn the same way.
ExposureTerms BuildExposureTerms(std::span<const state::AppliedEvent> events,
                                 int64_t num_users, int64_t num_items,
                                 int positives_per_list,
                                 int negatives_per_positive, Rng& rng);

class ExposureObjective {
 public:
  // options.trainer must be "ps" or "acl".
  ExposureObjective(const LearnerOptions& options, Rng& rng);

  void EnsureRows(int64_t num_users, int64_t num_items, Rng& rng);

  // Runs the g_psi-only steps still owed of exposure_pretrain_steps, on
  // mini-batches drawn with replacement from the exposure terms of
  // `events`. No-op once they are done or when `events` has no impression.
  void Pretrain(std::span<const state::AppliedEvent> events, int64_t num_users,
                int64_t num_items, Rng& rng);

  // The minimiser's side of (8): the self-normalised weighted mean of the
  // per-sample ranker losses `delta` ([N], with their graph) with weights
  // 1/G_beta(outcomes, g_psi(users, items)); g_psi is evaluated without
  // gradient, beta with (StepMinimiser applies it). Remembers the batch
  // (detached) for AdversaryStep and records the propensity range.
  at::Tensor RankerObjective(const at::Tensor& users, const at::Tensor& items,
                             const at::Tensor& outcomes,
                             const at::Tensor& delta);
  // Adam step of beta at r_theta (after the ranker loss's backward).
  void StepMinimiser();

  // The maximiser's side: one Adam step of g_psi at r_psi on
  //   "acl": -(weighted loss of the last RankerObjective batch)
  //          + alpha * exposure loss on `events`,
  //   "ps":  exposure loss on `events`.
  void AdversaryStep(std::span<const state::AppliedEvent> events,
                     int64_t num_users, int64_t num_items, Rng& rng);

  // G_beta(y, g_psi(u, i)) after clipping, for inspection and tests.
  std::vector<float> Propensities(std::span<const int64_t> users,
                                  std::span<const int64_t> items,
                                  float outcome);

  void FillStats(TrainingStats& stats) const;
  void ClearGrads();

  // Parameters under "acl.*" in the archive, counters in meta["acl"].
  void Save(torch::serialize::OutputArchive& archive,
            nlohmann::json& meta) const;
  Status Load(torch::serialize::InputArchive& archive,
              const nlohmann::json& meta);

 private:
  // clip(sigma(g + c) * exp(beta * y)); beta with or without its graph.
  at::Tensor Propensity(const at::Tensor& g, const at::Tensor& outcomes,
                        bool beta_grad);
  at::Tensor ExposureLoss(const ExposureTerms& terms);

  LearnerOptions options_;
  bool adversarial_;
  std::unique_ptr<Ranker> g_;  // g_psi: a GMF/MLP/NeuMF logit
  ParamSet beta_params_;       // beta, the outcome's effect on log G
  int beta_ = 0;
  AdamOptions psi_adam_, beta_adam_;

  // The last weighted batch, detached, for the maximiser's step.
  at::Tensor last_users_, last_items_, last_outcomes_, last_delta_;

  // The offset c: lists and entries seen (for the mean list length) and
  // the catalog size.
  double lists_seen_ = 0, entries_seen_ = 0;
  int64_t num_items_ = 0;
  double Offset() const;
  void CountLists(std::span<const state::AppliedEvent> events);

  int64_t pretrain_done_ = 0;
  uint64_t ranker_updates_ = 0, exposure_updates_ = 0;
  double ranker_objective_ = 0, exposure_objective_ = 0, exposure_loss_ = 0;
  double propensity_min_ = 0, propensity_mean_ = 0, propensity_max_ = 0;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_ACL_H_
