// Fidelity figures of CPR's counterfactual simulator, for `cfrec eval`:
//
//   SemFidelity      p_S's in-list AUC (clicked vs not clicked entries of a
//                    list) and p_R's AUC (items shown to a user vs items
//                    not shown), on the training lists; on a synthetic log
//                    also on fresh lists drawn from the generator (held
//                    out by construction), next to the true model's own.
//   FidelityTracker  per epoch of counterfactual training: lists, samples
//                    and ranker steps, the policy's mean reward, the
//                    share of catalog items the lists reach, and (with the
//                    truth) the share of pairs whose order the true click
//                    logit agrees with, and the in-list AUC of the
//                    simulated click probabilities against the true clicks
//                    on the counterfactual lists themselves.
//
// LibTorch-free; reads the learner through SemView only.
#ifndef CFREC_LEARNER_SRC_CF_FIDELITY_H_
#define CFREC_LEARNER_SRC_CF_FIDELITY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "cfrec/eval/model.h"
#include "cfrec/eval/truth.h"
#include "cfrec/learner/counterfactual.h"
#include "cfrec/learner/learner.h"

namespace cfrec::learner::cf {

// Mean over lists of the in-list AUC of `scores` (one per entry, lists of
// `list_size` entries back to back) against `labels`; lists without both a
// positive and a negative are skipped. Ties count half. NaN when no list
// counts. `counted` receives the number of lists used.
double MeanListAuc(std::span<const float> scores,
                   std::span<const uint8_t> labels, size_t list_size,
                   size_t* counted);

// Scores `items` for `user` into `out` (the target ranker's scores).
using ListScorer = std::function<void(
    uint32_t user, std::span<const uint32_t> items, std::span<float> out)>;

// Mean in-list AUC (clicked vs not clicked entries) over `lists` that hold
// both, of p_S's logits (`ranker` empty) or of the ranker's scores; NaN when
// no list counts.
double ListAuc(const SemView& v, std::span<const eval::Impression> lists,
               const ListScorer& ranker);

// With `ranker` set, also the ranker's in-list AUC on the same lists
// (ranker_auc_train, ranker_auc_fresh), side by side with p_S's: a
// simulator only adds information where it knows the clicks better.
nlohmann::json SemFidelity(const SemView& v, const eval::TrainData& data,
                           const eval::TrueModel* truth, uint64_t seed,
                           const ListScorer& ranker = {});

class FidelityTracker {
 public:
  // truth may be null (real data): the truth-based figures are left out.
  explicit FidelityTracker(std::shared_ptr<const eval::TrueModel> truth)
      : truth_(std::move(truth)) {}

  void BeginEpoch(int epoch);
  // One generation round: its samples and trace (lists and the simulated
  // click probabilities), and the policy's mean reward when it has one.
  // `ranker_margin` (one per sample, or empty): the ranker's score of the
  // pair's positive minus its negative before training on it; with the
  // truth it says whether a pair teaches the ranker something it gets
  // wrong, and where the pairs' gradient points.
  void AddRound(std::span<const CounterfactualSample> samples,
                const CounterfactualEngine::Trace& trace, size_t list_size,
                const double* mean_reward,
                std::span<const float> ranker_margin = {});
  // Ranker steps and samples trained from the epoch's counterfactual
  // samples.
  void AddTraining(uint64_t steps, uint64_t samples);

  // {"by_epoch": [...], "total": {...}}.
  nlohmann::json Json(size_t num_items) const;

 private:
  struct Epoch {
    int epoch = 0;
    uint64_t lists = 0, samples = 0, steps = 0, trained = 0;
    double reward_sum = 0;
    uint64_t reward_rounds = 0;
    double pair_agree = 0;
    uint64_t pairs = 0;
    double auc_sum = 0;
    uint64_t auc_lists = 0;
    uint64_t lists_with_click = 0;
    // Pairs the ranker already orders like the pair; pairs it orders
    // wrongly whose order the truth agrees with (new, right information);
    // the pairs' BPR gradient weight sigma(-margin) in total and on pairs
    // with the true order.
    uint64_t margin_pairs = 0, ranker_agrees = 0, teaching = 0;
    double grad_total = 0, grad_true = 0;
    std::vector<uint8_t> seen;  // catalog items in the epoch's lists
  };
  static void AddMarginFigures(const Epoch& e, nlohmann::json& j);
  std::shared_ptr<const eval::TrueModel> truth_;
  std::vector<Epoch> epochs_;
};

}  // namespace cfrec::learner::cf

#endif  // CFREC_LEARNER_SRC_CF_FIDELITY_H_
