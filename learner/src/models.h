// The LibTorch models: rankers f(u, i) (CPR section 2.2), the impression
// model p_R (eq. 4), the selection model p_S (eq. 5) and the variational
// posteriors q(alpha), q(beta) (eqs. 8-9). Private to the learner library;
// owned by one thread (not thread-safe).
//
// Parameters live in ParamSets (see param_set.h for why not torch::nn).
#ifndef CFREC_LEARNER_SRC_MODELS_H_
#define CFREC_LEARNER_SRC_MODELS_H_

#include <ATen/ATen.h>

#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cfrec/learner/options.h"
#include "fused_mf.h"
#include "fused_sem.h"
#include "param_set.h"
#include "scoring.h"

namespace cfrec::learner {

// A ranker: differentiable logits f(u, i) over parallel index vectors.
class Ranker {
 public:
  virtual ~Ranker() = default;
  // Grows the tables to cover users < num_users and items < num_items.
  virtual void EnsureRows(int64_t num_users, int64_t num_items, Rng& rng) = 0;
  // f(users[n], items[n]) for n in [0, N). With `train`, gradients flow into
  // the parameters at the next params().Step(); without, no graph is built.
  virtual at::Tensor Forward(const at::Tensor& users, const at::Tensor& items,
                             bool train) = 0;
  // Copies the weights for serving (rows [0, num_users) x [0, num_items)).
  virtual ScoringModel Export(int64_t num_users, int64_t num_items) = 0;
  // Whether Export gives a dot-product model usable for retrieval.
  virtual bool IsDotProduct() const = 0;
  // Called after every optimizer step.
  virtual void AfterStep() {}
  // BPR-MF and GMF: their parameters for the fused kernel (fused_mf.h);
  // false for the rankers that train through LibTorch.
  virtual bool FusedParams(MfParams* out) {
    (void)out;
    return false;
  }
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }

 protected:
  ParamSet params_;
};

// BPR-MF, GMF, MLP and NeuMF (He et al.'s NCF family).
std::unique_ptr<Ranker> MakeEmbeddingRanker(const LearnerOptions& options,
                                            Rng& rng);

// The user-item click graph LightGCN propagates over: symmetric-normalised
// adjacency D^-1/2 A D^-1/2 of the bipartite graph, nodes [users; items].
struct ClickGraph {
  int64_t num_users = 0;
  int64_t num_items = 0;
  at::Tensor rows, cols, vals;  // both directions; empty = no edges
};
// LightGCN's propagation step on one side of the bipartite graph:
// out[to[e]] += w[e] * src[from[e]] over the edges in order (out has
// `out_rows` rows), differentiable in `src`. Bit-identical to
// zeros.index_add(0, to, src.index_select(0, from) * w.unsqueeze(1)) and its
// gradient, without the edges x d temporaries.
at::Tensor SpreadEdges(const at::Tensor& src, const at::Tensor& from,
                       const at::Tensor& to, const at::Tensor& w,
                       int64_t out_rows);

ClickGraph BuildClickGraph(int64_t num_users, int64_t num_items,
                           const std::vector<std::vector<uint32_t>>& clicked);

class LightGcn : public Ranker {
 public:
  LightGcn(const LearnerOptions& options, Rng& rng);
  void EnsureRows(int64_t num_users, int64_t num_items, Rng& rng) override;
  at::Tensor Forward(const at::Tensor& users, const at::Tensor& items,
                     bool train) override;
  ScoringModel Export(int64_t num_users, int64_t num_items) override;
  bool IsDotProduct() const override { return true; }
  void AfterStep() override { propagated_ = at::Tensor(); }
  void SetGraph(ClickGraph graph) {
    graph_ = std::move(graph);
    propagated_ = at::Tensor();
  }
  const ClickGraph& graph() const { return graph_; }

 private:
  // Mean of layer embeddings E_0..E_L, E_k = A_hat E_{k-1} (LightGCN).
  at::Tensor Propagate(const at::Tensor& e0) const;
  int layers_;
  int users_ = 0;
  int items_ = 0;
  ClickGraph graph_;
  at::Tensor propagated_;  // cache for inference, dropped after a step
};

std::unique_ptr<Ranker> MakeRanker(const LearnerOptions& options, Rng& rng);

// p_R, CPR eq. (4): logit(u, k) = P_u . Q_k + w^R_k alpha_k.
class ImpressionModel {
 public:
  ImpressionModel(const LearnerOptions& options, Rng& rng);
  void EnsureRows(int64_t num_users, int64_t num_items, Rng& rng);
  // alpha broadcasts against the [N] logits (e.g. [S, N]).
  at::Tensor Logits(const at::Tensor& users, const at::Tensor& items,
                    const at::Tensor& alpha, bool train);
  // P, Q and w^R for the fused step (fused_sem.h).
  ImpressionParams FusedParams() {
    return {params_.Raw(p_), params_.Raw(q_), params_.Raw(w_)};
  }
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }

 private:
  ParamSet params_;
  int p_, q_, w_;
};

// p_S, CPR eq. (5): logit(u, j) = X_u . Y_{r_j} + w^S_j beta_j, normalised
// over the shown list.
class SelectionModel {
 public:
  SelectionModel(const LearnerOptions& options, Rng& rng);
  void EnsureRows(int64_t num_users, int64_t num_items, Rng& rng);
  // Flat over list entries; beta is [S, N] or [N] (already per entry).
  at::Tensor Logits(const at::Tensor& users, const at::Tensor& items,
                    const at::Tensor& positions, const at::Tensor& beta,
                    bool train);
  // X, Y and w^S for the fused step (fused_sem.h).
  SelectionParams FusedParams() {
    return {params_.Raw(x_), params_.Raw(y_), params_.Raw(w_)};
  }
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }

 private:
  ParamSet params_;
  int x_, y_, w_;
};

// q(alpha) = N(mu_a, sigma_a) per item and q(beta) = N(mu_b, sigma_b) per
// list position, sigma = exp(log_sigma); they start at the prior N(0, 1).
class Posteriors {
 public:
  Posteriors(const LearnerOptions& options, Rng& rng);
  void EnsureRows(int64_t num_items, Rng& rng);
  // Reparameterised draws mu + sigma * eps: alpha for `items` ([S, N]) and
  // beta for all positions ([S, max_positions]).
  at::Tensor Alpha(const at::Tensor& items, const at::Tensor& eps, bool train);
  at::Tensor Beta(const at::Tensor& eps, bool train);
  // KL(q || N(0, I)) of the given items' alpha and of all betas.
  at::Tensor AlphaKl(const at::Tensor& items, bool train);
  at::Tensor BetaKl(bool train);
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }
  int max_positions() const { return max_positions_; }

 private:
  ParamSet params_;
  int mu_a_, log_sigma_a_, mu_b_, log_sigma_b_;
  int max_positions_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_MODELS_H_
