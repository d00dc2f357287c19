// The Learner's model: the ranker, the SEMs and posteriors, the click lists,
// the sampler and their checkpoint and snapshot. Internal to cfrec::learner.
#ifndef CFREC_LEARNER_SRC_LEARNER_MODEL_H_
#define CFREC_LEARNER_SRC_LEARNER_MODEL_H_

#include <c10/util/Exception.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "acl.h"
#include "cfrec/learner/learner.h"
#include "click_lists.h"
#include "models.h"
#include "param_set.h"
#include "sem_models.h"
#include "snapshot_impl.h"
#include "triple_sampler.h"

namespace cfrec::learner {

// Runs a training step, turning exceptions into a Status; `on_failure`
// runs first (e.g. to drop gradients half-accumulated by the step).
template <typename F, typename G>
Status GuardedStep(F&& step, G&& on_failure) {
  try {
    return step();
  } catch (const c10::Error& e) {
    on_failure();
    return Status::Internal(std::string("LibTorch: ") +
                            e.what_without_backtrace());
  } catch (const std::exception& e) {
    on_failure();
    return Status::Internal(std::string("training failed: ") + e.what());
  }
}

// The models, their optimiser state, the click lists and the sampler: what
// the Learner trains, queries and checkpoints. It knows nothing of the
// pipelined rounds (Learner::Impl drives those).
class LearnerModel {
 public:
  explicit LearnerModel(const LearnerOptions& o);

  // Whether a round's batches can train on another thread while the next
  // round is sampled (LearnerOptions::train_pipeline): the fused MF kernel
  // and batches that draw no random numbers (no SEMs, no ACL), so the
  // generator sees the same draws in the same order as without it.
  bool CanPipelineRounds() const {
    return fused_mf_ && !acl_ && !options_.train_sems;
  }

  // Runs a training step, turning exceptions into a Status; gradients
  // half-accumulated by a failed step are dropped.
  template <typename F>
  Status Guarded(F&& step) {
    return GuardedStep(std::forward<F>(step), [this] { ClearAllGrads(); });
  }

  // One round on this thread: grows ids and tables (with `observe`), samples
  // the round's triples and trains its batches.
  Status Train(std::span<const state::AppliedEvent> events, bool observe);

  Status EnsureIds(size_t users, size_t items);

  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> scores);

  std::vector<float> SampleBeta(size_t k) { return sems_.SampleBeta(k, rng_); }

  std::vector<float> SampleAlpha(std::span<const uint32_t> items) {
    return sems_.SampleAlpha(items, num_items_, rng_);
  }

  std::vector<float> SelectionProbabilities(uint32_t user,
                                            std::span<const uint32_t> list,
                                            std::span<const float> beta) {
    if (!Known(user, list)) return {};
    return sems_.SelectionProbabilities(user, list, beta);
  }

  std::vector<float> ImpressionLogits(uint32_t user,
                                      std::span<const uint32_t> items,
                                      std::span<const float> alpha) {
    if (!Known(user, items)) return {};
    return sems_.ImpressionLogits(user, items, alpha);
  }

  double EvaluateElbo(std::span<const state::AppliedEvent> events) {
    return sems_.EvaluateElbo(events, num_users_, num_items_);
  }

  double SelectionLogLikelihood(std::span<const state::AppliedEvent> events) {
    return sems_.SelectionLogLikelihood(events, num_users_);
  }

  // Counterfactual triples with ids the model has rows for.
  // With `weights`, also each kept sample's weight.
  Triples KnownTriples(std::span<const CounterfactualSample> samples,
                       std::vector<size_t>* where,
                       std::vector<float>* weights = nullptr) const;

  Status TrainCounterfactual(std::span<const CounterfactualSample> samples);

  // Per-sample ranker loss: eq. (1) -log sigma(f_i - f_j), or eq. (2) as
  // the mean of the positive's and the negative's cross-entropy (so the
  // mean over samples equals the training loss).
  void SampleLosses(std::span<const CounterfactualSample> samples,
                    std::span<float> losses);

  SemView sem_view() const { return sems_.View(num_users_, num_items_); }

  int SamplesPerClick() const { return options_.num_negatives; }
  const TrainingStats& stats() const { return stats_; }
  TrainTimes train_times() const;
  uint64_t applied_seq() const { return stats_.applied_seq; }
  size_t num_users() const { return num_users_; }
  size_t num_items() const { return num_items_; }
  std::span<const uint32_t> ClickedItems(uint32_t user) const {
    return clicks_.Items(user);
  }

  Result<std::string> SaveCheckpoint() const;

  Status RestoreCheckpoint(std::string_view blob);

  std::shared_ptr<const ModelSnapshot> MakeSnapshot(SnapshotInputs in);

  // Whether the user and every item have rows (and the list is not empty).
  bool Known(uint32_t user, std::span<const uint32_t> items) const;

  void ClearAllGrads();

  void GrowTo(int64_t users, int64_t items);

  // Grows ids and tables and counts the events (their clicks and
  // histories are recorded by PrepareRound's sampler). `before_growing`
  // runs before the tables are reallocated, if they grow.
  void Observe(std::span<const state::AppliedEvent> events,
               const std::function<void()>& before_growing = {});

  // Ranker step on triples[begin, end): CPR eq. (1) or eq. (2), each
  // triple's loss times weights[k - begin] when given (a batch whose
  // weights are all 1 takes the unweighted step).
  double RankerStep(const Triples& t, size_t begin, size_t end,
                    std::span<const float> weights = {});

  double TorchRankerStep(const Triples& t, size_t begin, size_t end,
                         std::span<const float> weights);

  // Samples a round's triples into `triples`; with `record_clicks`, the
  // sampler first records the events' clicks and histories in the click
  // lists. `pooled`: on the fused kernel's threads (not while they may train
  // the round before).
  void PrepareRound(std::span<const state::AppliedEvent> events,
                    bool record_clicks, bool pooled, Triples& triples);

  // The round's batches: ranker steps on `triples`, and the SEMs, the
  // posteriors and g_psi on `events` split over the steps.
  void TrainBatches(const Triples& triples,
                    std::span<const state::AppliedEvent> events);

 private:
  LearnerOptions options_;
  Rng rng_;
  std::unique_ptr<Ranker> ranker_;
  SemModels sems_;                          // p_R, p_S and the posteriors
  std::unique_ptr<ExposureObjective> acl_;  // trainers "ps" and "acl" only
  // Kernel "fused": BPR-MF and GMF without ACL; null otherwise.
  std::unique_ptr<FusedMfStep> fused_mf_;
  TripleSampler sampler_;
  Triples triples_;  // the round's, reused
  TrainTimes times_;
  AdamOptions ranker_adam_;

  int64_t num_users_ = 0;
  int64_t num_items_ = 0;
  ClickLists clicks_;
  bool graph_dirty_ = false;
  uint64_t ranker_steps_ = 0;
  uint64_t graph_built_step_ = 0;
  uint64_t sem_r_steps_ = 0, sem_s_steps_ = 0, posterior_steps_ = 0;
  TrainingStats stats_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_LEARNER_MODEL_H_
