// The semi-synthetic simulation of the ACL paper's appendix A.6.3: from a
// real impression log, fit a relevance model and an exposure model (stage
// 1), generate clicks that stay truthful to the log, then re-fit user and
// item factors x, z on those clicks and add a user-defined term e(x, z) to
// the exposure mechanism (stage 2):
//
//   p1(Y=1 | O=1) = sigma(r(u, i) - eps1)            relevance model r
//   log p1(O=1)   = log p_hat(O=1 | u, i) + eps2     exposure model p_hat
//   log p2(O=1)   = log p1(O=1) + e(x_u, z_i)        (capped at p = 1)
//   clicks: O ~ Bernoulli(p_s(O=1)), then Y ~ Bernoulli(p1(Y=1 | O=1))
//
// The log is implicit feedback (MIND: shown and clicked), so r is a
// logistic matrix factorisation of clicks among shown items (the
// appendix's rating regression needs explicit ratings), and p_hat a
// logistic factorisation of shown items against catalog items the log did
// not show, calibrated back to the log's exposure rate. eps1, eps2 are
// Gaussian noise per (user, item), the unobserved factors.
//
// Torch-free plain SGD: the models are small and the generator must be
// deterministic for a seed. Thread-safety: the functions are pure.
#ifndef CFREC_LEARNER_SEMISYNTH_H_
#define CFREC_LEARNER_SEMISYNTH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cfrec/schemas/mind.h"
#include "cfrec/schemas/status.h"

namespace cfrec::learner {

struct SemiSyntheticOptions {
  // Hidden factors of the three factorisation models. Default 16.
  int dim = 16;
  // SGD epochs per model fit. Default 20.
  int epochs = 20;
  // SGD learning rate and L2 strength. Defaults 0.05 and 1e-4.
  double lr = 0.05;
  double l2 = 1e-4;
  // Catalog (not shown / not clicked) samples per positive when fitting
  // the exposure model and the stage-2 factors. Default 4.
  int negatives_per_positive = 4;
  // Standard deviations of eps1 and eps2. Defaults 0.5 and 0.5.
  double relevance_noise = 0.5;
  double exposure_noise = 0.5;
  // e(x, z): "none"; "dot": gamma * standardised x_u . z_i (the system
  // shows what it predicts a user clicks, a feedback loop); "item":
  // gamma * standardised z_i . d for a fixed random unit direction d (an
  // item-side skew independent of the user). Default "item".
  std::string exposure_term = "item";
  // gamma, the strength of e(x, z). Default 1.5.
  double exposure_strength = 1.5;
  // Items per generated impression row (a user's exposed items are split
  // into rows of this size, in random order). Default 10.
  int list_size = 10;
  // Seed of every random choice. Default 42.
  uint64_t seed = 42;
};

// Ground truth of one stage-1 model: logit(u, i) = bias + b_u[u] + b_i[i] +
// user[u] . item[i] (row-major, `dim` floats per row).
struct FactorModel {
  int dim = 0;
  float bias = 0;
  std::vector<float> user_bias, item_bias, user, item;
  float Logit(uint32_t u, uint32_t i) const;
};

struct SemiSyntheticData {
  std::vector<std::string> user_ids, item_ids;  // dense index -> log id
  FactorModel relevance;  // r: the true preference (before eps1)
  // p_hat(O=1) = sigma(logit); the calibration to the log's exposure rate
  // (log(k * shown_u / items) for k sampled negatives) is in user_bias.
  FactorModel exposure;
  // Generated logs (MIND rows, time-ordered per stage).
  std::vector<MindRow> stage1, stage2;
  // Expected exposures per item, sum over users of p1(O=1) and p2(O=1),
  // and the mean of e(x, z) over users per item.
  std::vector<double> item_exposure1, item_exposure2, item_term;
  // Counts of the generated logs.
  uint64_t exposed1 = 0, clicks1 = 0, exposed2 = 0, clicks2 = 0;
};

// Runs both stages on `log` (at least one click and two items). Errors
// name the bad option.
Result<SemiSyntheticData> SimulateSemiSynthetic(
    const std::vector<MindRow>& log, const SemiSyntheticOptions& options);

Status ValidateSemiSyntheticOptions(const SemiSyntheticOptions& options);

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SEMISYNTH_H_
