// CounterfactualEngine: CPR's counterfactual sample generator (sections
// 3.1.3-3.3, Algorithms 1-2). For a user it asks "what would this user have
// clicked had the recommender shown list r?" with the learned SEMs:
//
//   intervention   tau ~ pi(.|u), a Gaussian over item centers in p_R's
//                  item space ("learned", eq. 11), or a uniformly random
//                  list ("random", the paper's CPR-r);
//   abduction      alpha ~ q(alpha), beta ~ q(beta) (eqs. 8-9);
//   action         r = the K items with the largest tau^T Q_k + w^R_k alpha_k
//                  (eq. 4 with P_u replaced by tau), over the catalog or a
//                  random candidate pool;
//   prediction     p_S(r_k | u, r, beta) (eq. 10);
//   noise control  the k most and k least likely clicked items give k*k
//                  pairs (u, i, j) (section 3.3.3).
//
// In "learned" mode every round also takes one REINFORCE step on the
// policy with reward = the target ranker's loss on C(tau) (eq. 11) minus a
// running baseline. The policy reads P_u, p_R's user vector: tau lives in
// p_R's item space, P_u is in that space for every ranker (the ranker's own
// user vectors exist only for dot-product rankers, in another space), and
// the policy starts from it (see learner/src/cf_policy.h).
//
// All model reads go through Learner::sem_view() and the ranker's loss
// through Learner::RankerSampleLosses; the engine owns only the policy, its
// optimizer, a baseline and its own random generator (seeded by
// CounterfactualOptions::seed, saved in checkpoints), so the same calls on
// the same learner give identical output.
//
// Thread-safety: none; one thread owns an engine and the Learner it is
// handed during a call.
//
// This header is LibTorch-free.
#ifndef CFREC_LEARNER_COUNTERFACTUAL_H_
#define CFREC_LEARNER_COUNTERFACTUAL_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/learner/learner.h"
#include "cfrec/learner/options.h"
#include "cfrec/schemas/status.h"

namespace cfrec::learner {

// CounterfactualOptions is declared in options.h (it is part of the
// trainer's JSON config); CounterfactualSample in learner.h.

struct CounterfactualStats {
  uint64_t rounds = 0;             // Generate calls that simulated a list
  uint64_t lists_generated = 0;    // lists simulated by Generate
  uint64_t samples_generated = 0;  // (u, i, j) returned by Generate
  uint64_t pretrain_lists = 0;     // lists simulated by Pretrain
  uint64_t policy_updates = 0;     // REINFORCE steps (pretraining included)
  uint64_t users_skipped = 0;      // users without a p_R row
  double mean_reward = 0;          // mean reward (ranker loss on C(tau)) of the
                                   // latest round
  double baseline = 0;             // running reward baseline
  double seconds = 0;              // time spent in Generate and Pretrain
};

class CounterfactualEngine {
 public:
  // Fails on invalid options.
  static Result<std::unique_ptr<CounterfactualEngine>> Create(
      const CounterfactualOptions& options);
  ~CounterfactualEngine();
  CounterfactualEngine(const CounterfactualEngine&) = delete;
  CounterfactualEngine& operator=(const CounterfactualEngine&) = delete;

  // Algorithm 2: pretrains the policy ("learned" mode) for
  // options.pretrain_rounds episodes of options.pretrain_users users drawn
  // from `users`, with exploration noise on tau; the ranker is not trained.
  // No-op for "random" and "none", or without users.
  Status Pretrain(Learner& learner, std::span<const uint32_t> users);
  // Like Pretrain, with the lists drawn from the tables of `simulator`
  // (see Generate below).
  Status Pretrain(Learner& learner, const SemView& simulator,
                  std::span<const uint32_t> users);

  // One round: one simulated list per user (users without a p_R row are
  // skipped) and its k*k samples, in user order. In "learned" mode also one
  // REINFORCE step. Empty for "none", or when the catalog has fewer than K
  // items. The learner is only read (its ranker scores the reward).
  Result<std::vector<CounterfactualSample>> Generate(
      Learner& learner, std::span<const uint32_t> users);

  // Like Generate, also returning each list (K items, highest score first)
  // and its selection probabilities, K floats per list, in the same order
  // (for tests and diagnostics).
  struct Trace {
    std::vector<uint32_t> users;
    std::vector<uint32_t> lists;
    std::vector<float> probabilities;
  };
  Result<std::vector<CounterfactualSample>> Generate(
      Learner& learner, std::span<const uint32_t> users, Trace* trace);
  // Like Generate, with the lists and their clicks simulated from the
  // tables of `simulator` (p_R, p_S, posteriors) while `learner`'s ranker
  // scores the policy's reward: a simulator trained on its own, e.g. to
  // convergence on held-out lists, or another click model behind the same
  // tables. Both must have the same ids; the tables must stay valid during
  // the call.
  Result<std::vector<CounterfactualSample>> Generate(
      Learner& learner, const SemView& simulator,
      std::span<const uint32_t> users, Trace* trace);

  // The action step alone with alpha fixed: the K items with the largest
  // tau^T Q_k + w^R_k alpha_k over all items (alpha: one value per item of
  // the learner's catalog; empty = the posterior mean). Highest first.
  Result<std::vector<uint32_t>> TopK(const Learner& learner,
                                     std::span<const float> tau,
                                     std::span<const float> alpha) const;
  // The policy's mean tau for a user ("learned" mode, after the first
  // Generate or Pretrain created the policy); empty otherwise.
  std::vector<float> PolicyMean(const Learner& learner, uint32_t user) const;

  const CounterfactualOptions& options() const;
  const CounterfactualStats& stats() const;

  // Policy, its optimizer, baseline, generator and counters as one blob.
  Result<std::string> SaveCheckpoint() const;
  // Fails when the blob comes from an engine with another intervention,
  // list size or policy shape.
  Status RestoreCheckpoint(std::string_view blob);

 private:
  class Impl;
  explicit CounterfactualEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_COUNTERFACTUAL_H_
