// The oracle counterfactual simulator: CPR's intervention, action and
// prediction steps with the generator's true models in place of the
// learned SEMs (synthetic logs only). For a user it draws a list of K
// distinct items from the true exposure model (Plackett-Luce with weights
// exp(r_ij), the generator's own logging policy, via Gumbel-top-K) and
// orders the list by the true click logit (x1, or x1 + x1 x2, the quantity
// the click rule thresholds; strictly monotone in P(click) under noise and
// a tie-free refinement of it without); noise control then pairs the k most
// likely clicked items with the k least likely, exactly as
// CounterfactualEngine does with p_S. So every pair's order is the true
// model's: CPR with this simulator bounds what counterfactual samples can
// give the ranker on the log.
//
// That order also ranks items the user would not click against each other,
// which no model trained on clicks can learn. With `clicks_only` the list
// is ordered by the true P(click) instead and a pair is kept only when its
// two items differ in it (without click noise: one clicked, one not): the
// bound for a simulator that learns from clicks alone.
//
// LibTorch-free; one thread owns an instance.
#ifndef CFREC_LEARNER_SRC_CF_ORACLE_H_
#define CFREC_LEARNER_SRC_CF_ORACLE_H_

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "cfrec/eval/truth.h"
#include "cfrec/learner/counterfactual.h"
#include "cfrec/learner/learner.h"

namespace cfrec::learner::cf {

class OracleSimulator {
 public:
  // list_size K >= 2 noise_k, both >= 1; truth not null.
  OracleSimulator(std::shared_ptr<const eval::TrueModel> truth, int list_size,
                  int noise_k, bool clicks_only, uint64_t seed);

  // One list per user (users the truth does not know, or a catalog shorter
  // than K, give none) and its k*k samples appended to `out`, in user
  // order. With a trace, also each list (true order, most likely click
  // first) and its true click probabilities.
  void Generate(std::span<const uint32_t> users,
                std::vector<CounterfactualSample>& out,
                CounterfactualEngine::Trace* trace);

 private:
  const std::vector<float>& ExposureRow(uint32_t user);

  std::shared_ptr<const eval::TrueModel> truth_;
  int list_size_;
  int noise_k_;
  bool clicks_only_;
  std::mt19937_64 rng_;
  std::vector<std::vector<float>> exposure_;  // lazily filled, by user
};

}  // namespace cfrec::learner::cf

#endif  // CFREC_LEARNER_SRC_CF_ORACLE_H_
