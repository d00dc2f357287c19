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

// What the serving snapshot needs besides the models.
struct SnapshotInputs {
  uint64_t version = 0;
  // Id dictionary the snapshot's FindUser/FindItem/ItemId delegate to; not
  // owned, must outlive the snapshot. Null: ids are decimal indices.
  const state::EventStore* ids = nullptr;
  std::vector<uint32_t> candidates;  // live candidate pool
  std::vector<uint32_t> popular;     // most clicked first
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

  // Ranker samples per observed click, for callers sizing budgets.
  int SamplesPerClick() const;

  const TrainingStats& stats() const;
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
