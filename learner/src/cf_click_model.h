// A click simulator for CPR with another inductive bias than the SEMs' p_S:
// a logistic model of "clicked" against "shown and not clicked" over every
// entry of the shown lists,
//
//   logit(u, i) = a_u + b_i + x_u^T y_i      (x, y of a small dimension),
//
// fitted by SGD. p_S (CPR eq. 6) is a softmax over a list's entries, so
// lists without a click (most of them on the CPR generator) teach it
// nothing and it has no item intercept; here every shown entry counts, and
// an item's intercept pools what all users did with it. Inside a list the
// user's intercept cancels, so the model's in-list click probabilities are
// softmax(b_i + x_u^T y_i), which the counterfactual engine reads through
// a SemView (x and y padded, the intercept in a constant coordinate, no
// position term).
//
// The dimension, the L2 weight and the number of epochs are chosen on
// held-out lists (in-list AUC); the model is then refitted on all lists
// with the chosen settings. With `folds` >= 2 the choice is made by
// cross-validation instead: every list (training and held-out) is held out
// once, in one of `folds` random folds, and the candidates' in-list AUC is
// pooled over all of them. On a small log the single held-out split has a
// few dozen lists with a click, too few to tell the candidates apart.
//
// LibTorch-free.
#ifndef CFREC_LEARNER_SRC_CF_CLICK_MODEL_H_
#define CFREC_LEARNER_SRC_CF_CLICK_MODEL_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <utility>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/learner/learner.h"

namespace cfrec::learner::cf {

struct ClickModelOptions {
  std::vector<int> dims = {2, 4, 8};            // candidates
  std::vector<double> l2 = {1e-4, 1e-3, 1e-2};  // candidates
  int max_epochs = 60;
  int patience = 5;
  double lr = 0.05;
  uint64_t seed = 1;
  // 0: select on the held-out lists passed to Fit; >= 2: by
  // cross-validation over all lists in this many folds.
  int folds = 0;
};

class ClickModel {
 public:
  // Selects dim, l2 and epochs on `heldout`, then fits on `train` plus
  // `heldout`. `heldout` may be empty (then the first candidates and
  // max_epochs are used).
  void Fit(std::span<const eval::Impression> train,
           std::span<const eval::Impression> heldout, uint32_t num_users,
           uint32_t num_items, const ClickModelOptions& options);

  float Logit(uint32_t user, uint32_t item) const;

  // A copy of `base` whose p_S tables are this model's: x = [x_u, 1, 0..],
  // y = [y_i, b_i, 0..] in `base.dim` columns, w_S = 0 (no position term).
  // Fails (returns false) when base.dim < dim + 1 or the ids differ. The
  // arrays are built on the first call after Fit and live in this object
  // until the next Fit.
  bool View(const SemView& base, SemView& out);

  // Selection figures: the candidates' held-out AUC and the choice.
  const nlohmann::json& report() const { return report_; }

 private:
  struct Params {
    int dim = 0;
    std::vector<float> a, b, x, y;
  };
  static void Init(Params& p, uint32_t users, uint32_t items, int dim,
                   uint64_t seed);
  static float Logit(const Params& p, uint32_t u, uint32_t i);
  static void Epoch(Params& p, std::span<const eval::Impression> lists,
                    std::vector<std::pair<uint32_t, uint32_t>>& order,
                    double lr, double l2, uint64_t& state);
  void Build(size_t cols, size_t positions);
  // Sum of the in-list AUCs of the lists with a click and a non-click,
  // and their number.
  static std::pair<double, size_t> AucSum(
      const Params& p, std::span<const eval::Impression> lists);
  // Candidates chosen by cross-validation (options.folds >= 2) over
  // `lists`; fills dim, l2, epochs and auc of the best, and `candidates`.
  static void SelectByFolds(std::span<const eval::Impression> lists,
                            uint32_t num_users, uint32_t num_items,
                            const ClickModelOptions& o, int& dim, double& l2,
                            int& epochs, double& auc,
                            nlohmann::json& candidates);

  Params params_;
  nlohmann::json report_;
  std::vector<float> x_, y_, w_s_, beta_;
  size_t view_cols_ = 0;
};

}  // namespace cfrec::learner::cf

#endif  // CFREC_LEARNER_SRC_CF_CLICK_MODEL_H_
