// The Gaussian policy pi(tau | u) of CPR eq. (11) in plain floats: a
// two-layer fully connected network with ReLU mapping a user representation
// x (p_R's P_u) to the mean of a Gaussian over item centers tau in p_R's
// item embedding space, trained by REINFORCE with Adam.
//
// The network predicts an offset from x: mu = x + W2 relu(W1 x + b1) + b2,
// with W2 starting small. p_R's own score P_u^T Q_k is then where the policy
// starts (the lists the recommender itself would show), and learning moves
// the center away from it towards lists that teach the ranker more. It is
// the same function class as the paper's network (the skip connection is
// linear), only a better starting point.
//
// A few hundred parameters: plain loops are faster than LibTorch here and
// keep the engine deterministic and cheap to checkpoint.
//
// Private to the learner library (and its tests). Not thread-safe.
#ifndef CFREC_LEARNER_SRC_CF_POLICY_H_
#define CFREC_LEARNER_SRC_CF_POLICY_H_

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "cfrec/schemas/status.h"

namespace cfrec::learner::cf {

// Fills out[0, n) with N(0, 1) draws (Box-Muller on 32-bit halves of one
// 64-bit draw per pair). Deterministic for the generator's state.
void FillNormal(std::mt19937_64& rng, float* out, size_t n);

class GaussianPolicy {
 public:
  // Input and output dimension `dim` (tau lives where x does), `hidden`
  // units; std is exp(log_std), initially `init_std`, learned only with
  // `learn_std`. Weights are drawn from `rng`.
  GaussianPolicy(int dim, int hidden, double init_std, bool learn_std,
                 double lr, std::mt19937_64& rng);

  int dim() const { return dim_; }
  int hidden() const { return hidden_; }
  // mu(x) into `mu` (dim floats); `h` (hidden floats) receives the
  // post-ReLU hidden layer.
  void Mean(const float* x, float* mu, float* h) const;
  // Per-dimension standard deviation.
  float Std(int d) const;

  // One REINFORCE step of gradient ascent on
  //   J = 1/T sum_t advantage[t] * log N(tau_t; mu(x_t), sigma^2)
  // (Algorithm 2, line 9, with a baseline subtracted from the reward).
  // xs and taus are T rows of dim floats.
  void Update(std::span<const float> xs, std::span<const float> taus,
              std::span<const double> advantages);
  uint64_t steps() const { return step_; }

  // All parameters and Adam moments, for checkpoints.
  std::vector<float> Parameters() const;
  std::vector<float> MomentsM() const { return m_; }
  std::vector<float> MomentsV() const { return v_; }
  // Restores what the accessors above returned (sizes must match).
  Status Restore(std::span<const float> theta, std::span<const float> m,
                 std::span<const float> v, uint64_t step);

 private:
  // Offsets into theta_: W1 [hidden, dim], b1 [hidden], W2 [dim, hidden],
  // b2 [dim], log_std [dim].
  size_t w1() const { return 0; }
  size_t b1() const { return w1() + size_t(hidden_) * dim_; }
  size_t w2() const { return b1() + hidden_; }
  size_t b2() const { return w2() + size_t(dim_) * hidden_; }
  size_t log_std() const { return b2() + dim_; }
  size_t size() const { return log_std() + dim_; }

  int dim_;
  int hidden_;
  bool learn_std_;
  double lr_;
  std::vector<float> theta_, m_, v_;
  uint64_t step_ = 0;
};

}  // namespace cfrec::learner::cf

#endif  // CFREC_LEARNER_SRC_CF_POLICY_H_
