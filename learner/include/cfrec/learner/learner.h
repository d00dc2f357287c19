// Learner: the models of CPR (ranker, p_R, p_S, q(alpha), q(beta)) behind a
// deterministic, synchronous API. The online Trainer drives one from its
// thread; evaluation and the counterfactual engine use it directly.
//
// Determinism: every random choice (initialisation, negatives, noise draws,
// shuffles) comes from one generator seeded by LearnerOptions::seed and
// saved in checkpoints, so the same calls give bit-identical models, and
// save + restore + continue equals an uninterrupted run.
//
// Thread-safety: none. One thread owns a Learner; snapshots it builds are
// immutable and may be shared freely.
//
// Errors: no exception leaves this API. Training and checkpoint calls return
// a Status; queries that fail internally return empty vectors (scores: -inf,
// ELBO: NaN).
//
// This header is LibTorch-free; the implementation is private.
#ifndef CFREC_LEARNER_LEARNER_H_
#define CFREC_LEARNER_LEARNER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/learner/options.h"
#include "cfrec/learner/snapshot.h"
#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"

namespace cfrec::state {
class EventStore;
}

namespace cfrec::learner {

// Where training time went, in seconds summed since the Learner was made
// (not checkpointed); `cfrec bench train` prints it per phase.
struct TrainTimes {
  double prepare = 0;  // recording clicks, drawing negatives, shuffling
  // The fused ranker kernel (fused_mf.h), by phase.
  double ranker_index = 0;     // unique rows of the batch
  double ranker_gradient = 0;  // scores, loss and per-row gradient sums
  double ranker_update = 0;    // Adam on the touched rows
  double ranker_torch = 0;     // the LibTorch ranker step, whole
  double sems = 0;             // p_R, p_S and posterior steps, whole
  double sem_impression = 0;   // of which the p_R step (eq. 6)
  double sem_selection = 0;    // the p_S step (eq. 7)
  double sem_posterior = 0;    // the posteriors' step (eq. 9)
};

// A counterfactual ranker sample (u, i, j) of C(tau): i is among the k
// items the simulated user most likely clicks, j among the k least likely
// (CPR section 3.3.3). `weight` multiplies the sample's loss in the
// ranker step (the step's loss is the mean of weight x loss over its
// samples), so 1 is CPR's unweighted loss.
struct CounterfactualSample {
  uint32_t user = 0;
  uint32_t pos = 0;
  uint32_t neg = 0;
  float weight = 1.0f;
};

// Read-only, row-major float views of p_R (eq. 4), p_S (eq. 5) and the
// posteriors q(alpha), q(beta), for the counterfactual engine's plain-float
// kernels. Pointers into the Learner's tables: valid until the next
// non-const call on that Learner (training may grow or replace them).
struct SemView {
  int dim = 0;                      // d_R = d_S (LearnerOptions::sem_dim)
  size_t num_users = 0;             // rows usable in p, x
  size_t num_items = 0;             // rows usable in q, w_r, y, alpha tables
  int max_positions = 0;            // entries of w_s and the beta tables
  const float* p = nullptr;         // P [num_users, dim]
  const float* q = nullptr;         // Q [num_items, dim]
  const float* w_r = nullptr;       // w^R [num_items]
  const float* mu_alpha = nullptr;  // q(alpha) mean [num_items]
  const float* log_sigma_alpha = nullptr;  // q(alpha) log std [num_items]
  const float* x = nullptr;                // X [num_users, dim]
  const float* y = nullptr;                // Y [num_items, dim]
  const float* w_s = nullptr;              // w^S [max_positions]
  const float* mu_beta = nullptr;          // q(beta) mean [max_positions]
  const float* log_sigma_beta = nullptr;   // q(beta) log std [max_positions]
};

// What the serving snapshot needs besides the models.
struct SnapshotInputs {
  uint64_t version = 0;
  // Id dictionary the snapshot's FindUser/FindItem/ItemId delegate to; not
  // owned, must outlive the snapshot. Null: ids are decimal indices.
  const state::EventStore* ids = nullptr;
  std::vector<uint32_t> candidates;  // live candidate pool
  std::vector<uint32_t> popular;     // most clicked first
  // Stream-aware scoring at this moment; null when stream features are off.
  std::shared_ptr<const stream::StreamScorer> stream;
  TrainingStats stats;
};

class Learner {
 public:
  // Fails on invalid options.
  static Result<std::unique_ptr<Learner>> Create(const LearnerOptions& options);
  ~Learner();
  Learner(const Learner&) = delete;
  Learner& operator=(const Learner&) = delete;

  // Takes new events in seq order: grows the id space and tables, records
  // clicks and histories, and trains one pass over the samples they yield
  // (ranker, then p_R, p_S and the posteriors on the same events, in
  // mini-batches of batch_size ranker samples). Advances applied_seq().
  Status Train(std::span<const state::AppliedEvent> events);
  // Trains on events already taken by Train (e.g. replayed from the applied
  // log), with fresh negatives, without updating clicks or applied_seq().
  Status Replay(std::span<const state::AppliedEvent> events);
  // Train(events) once, then `epochs - 1` Replay passes in shuffled order.
  Status TrainEpochs(std::span<const state::AppliedEvent> events, int epochs);

  // Grows the id space (and every table) to at least these many users and
  // items, as if events had named them: for callers that know the catalog
  // up front (evaluation), so items never trained on still get a row.
  Status EnsureIds(size_t num_users, size_t num_items);

  // Ranker scores f(user, items[k]); -inf for ids the model has no row for.
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> scores);

  // --- SEMs and abduction (for the counterfactual engine) ---
  // Draws from q(beta), one per list position 0..k-1.
  std::vector<float> SampleBeta(size_t k);
  // Draws from q(alpha) for the given items.
  std::vector<float> SampleAlpha(std::span<const uint32_t> items);
  // CPR eq. (10): p_S(r_k | u, r, beta) for every position of `list`; empty
  // beta uses the posterior mean. Empty when the user or an item of the
  // list has no row yet (the engine only simulates known ids).
  std::vector<float> SelectionProbabilities(uint32_t user,
                                            std::span<const uint32_t> list,
                                            std::span<const float> beta = {});
  // CPR eq. (4) logits P_u^T Q_k + w^R_k alpha_k; empty alpha uses the
  // posterior mean. Empty when the user or an item has no row yet.
  std::vector<float> ImpressionLogits(uint32_t user,
                                      std::span<const uint32_t> items,
                                      std::span<const float> alpha = {});
  // ELBO of eq. (9) per observation on `events` (q(beta) with p_S plus
  // q(alpha) with p_R's negative-sampling likelihood), estimated with a
  // fixed internal seed so repeated calls are comparable.
  double EvaluateElbo(std::span<const state::AppliedEvent> events);
  // Mean p_S log-likelihood of the clicks in `events` (eq. 7, beta = mean).
  double SelectionLogLikelihood(std::span<const state::AppliedEvent> events);

  // --- Counterfactual samples (CPR Algorithm 1, line 8) ---
  // Ranker steps on C(tau), in mini-batches of batch_size: pairwise eq. (1)
  // on (u, i, j), or pointwise eq. (2) with i positive and j negative,
  // each sample's loss times its weight (the fused MF kernel and the
  // LibTorch step both take weights; the acl trainer takes none). Samples
  // with ids the model has no row for are skipped. Counts
  // TrainingStats::counterfactual_samples and steps; ranker_loss stays the
  // loss on observed samples.
  Status TrainCounterfactual(std::span<const CounterfactualSample> samples);
  // The ranker's mean loss on `samples` (same loss as training), without
  // gradients or any state change: the policy's reward (eq. 11). 0 when
  // empty, NaN on failure.
  double RankerLoss(std::span<const CounterfactualSample> samples);
  // The same per sample into `losses` (same size as `samples`); unknown ids
  // give 0.
  Status RankerSampleLosses(std::span<const CounterfactualSample> samples,
                            std::span<float> losses);
  // Views of the SEMs and posteriors; see SemView for their lifetime.
  SemView sem_view() const;

  // Ranker samples per observed click, for callers sizing budgets.
  int SamplesPerClick() const;

  const TrainingStats& stats() const;
  TrainTimes train_times() const;
  uint64_t applied_seq() const;
  size_t num_users() const;
  size_t num_items() const;
  // Items the user clicked (history included), ascending.
  std::span<const uint32_t> ClickedItems(uint32_t user) const;

  // Models, optimizer state, generator, clicks and counters as one blob.
  Result<std::string> SaveCheckpoint() const;
  // Replaces the state with a checkpoint from a learner with the same model
  // options (ranker, dims, max_positions); fails otherwise.
  Status RestoreCheckpoint(std::string_view blob);

  // Copies what serving needs into an immutable snapshot. Retrieval vectors:
  // the ranker's own for dot-product rankers (bpr, lightgcn), otherwise
  // p_R's P and Q (eq. 4 is a dot product; MLP towers are not).
  Result<std::shared_ptr<const ModelSnapshot>> MakeSnapshot(
      SnapshotInputs inputs);

 private:
  class Impl;
  explicit Learner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_LEARNER_H_
