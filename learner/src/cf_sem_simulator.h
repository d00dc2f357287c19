// The SEMs as a simulator of their own for cfrec eval's CPR
// (cf_simulator "converged"): a Learner whose SEMs train on the log minus
// held-out lists until p_S's in-list AUC on those stops improving, with the
// best epoch restored; Refresh() takes one more pass while the ranker
// trains, kept only when the held-out AUC does not fall.
//
// HeldOutLists is the held-out split both learned simulators ("converged"
// and "logistic") select their settings on.
#ifndef CFREC_LEARNER_SRC_CF_SEM_SIMULATOR_H_
#define CFREC_LEARNER_SRC_CF_SEM_SIMULATOR_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/model.h"
#include "cfrec/learner/learner.h"
#include "cfrec/learner/options.h"
#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"

namespace cfrec::learner::cf {

// The last list of each user with two or more, drawn with probability 1/2
// (from `seed`), when it has a click and a non-click. `held` marks them by
// impression index.
std::vector<eval::Impression> HeldOutLists(const eval::TrainData& data,
                                           uint64_t seed,
                                           std::vector<bool>& held);

class SemSimulator {
 public:
  struct Seeds {
    uint64_t heldout = 0;  // HeldOutLists
    uint64_t shuffle = 0;  // the epochs' event order while fitting
    uint64_t refresh = 0;  // the event order of Refresh passes
  };

  // `options` configures (and `options.seed` seeds) the simulator's own
  // learner. `events` is the log of `data` as applied events with one event
  // per impression, in order, at the end (history rides on a user's first
  // event, so holding out a user's last list keeps it). Trains at most
  // `max_epochs`, stopping after `patience` epochs without a better
  // held-out AUC.
  static Result<std::unique_ptr<SemSimulator>> Fit(
      const LearnerOptions& options, const eval::TrainData& data,
      const std::vector<state::AppliedEvent>& events, int max_epochs,
      int patience, const Seeds& seeds);

  // One more pass over the training events, kept only when the held-out
  // in-list AUC does not fall (otherwise the best state is restored).
  Status Refresh();

  SemView view() const { return learner_->sem_view(); }
  // The fit's figures: held-out lists, epochs run, best epoch, the AUC
  // curve, refresh passes and how many were kept.
  const nlohmann::json& report() const { return report_; }

 private:
  SemSimulator() = default;

  std::unique_ptr<Learner> learner_;
  std::vector<state::AppliedEvent> events_;
  std::vector<eval::Impression> heldout_;
  std::string best_;
  double best_auc_ = -1;
  std::mt19937_64 refresh_rng_;
  nlohmann::json report_;
};

}  // namespace cfrec::learner::cf

#endif  // CFREC_LEARNER_SRC_CF_SEM_SIMULATOR_H_
