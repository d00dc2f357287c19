// ModelSnapshot: an immutable, self-contained view of the model that serving
// reads. The trainer builds one every `snapshot_interval_ms` and publishes it
// through a SnapshotHolder; a request holds the snapshot it started with for
// its whole duration, so it never sees a half-updated model.
//
// This header is LibTorch-free on purpose: the server includes it.
#ifndef CFREC_LEARNER_SNAPSHOT_H_
#define CFREC_LEARNER_SNAPSHOT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/stream/scorer.h"

namespace cfrec::learner {

struct ScoringModel;  // cfrec/learner/scoring_model.h

// What the trainer has done so far; copied into every snapshot.
struct TrainingStats {
  std::string ranker;             // "bpr", "gmf", "mlp", "neumf", "lightgcn"
  std::string loss;               // "pairwise" or "pointwise"
  std::string intervention;       // "none", "random", "learned"
  std::string trainer;            // "default", "ps", "acl"
  uint64_t applied_seq = 0;       // last applied event trained on
  uint64_t events_consumed = 0;   // applied events taken from ingest
  uint64_t observed_samples = 0;  // ranker samples from real events
  uint64_t counterfactual_samples = 0;  // ranker samples from C(tau)
  uint64_t steps = 0;                   // optimizer steps of the ranker
  double ranker_loss = 0;               // exponential moving average
  double sem_r_loss = 0;                // p_R, CPR eq. (6)
  double sem_s_loss = 0;                // p_S, CPR eq. (7)
  double elbo = 0;                      // CPR eq. (9)
  double policy_reward = 0;  // mean reward of the policy, CPR eq. (11)
  double policy_baseline = 0;
  double samples_per_sec = 0;
  // Trainers "ps" and "acl" (ACL paper, objective (8)); zero otherwise.
  // The ranker's side: its loss weighted by 1/G_beta (EMA).
  double acl_ranker_objective = 0;
  // The exposure model's side: weighted loss - alpha * exposure loss (EMA;
  // "ps" reports -exposure loss, its stage-1 objective).
  double acl_exposure_objective = 0;
  double exposure_loss = 0;  // g_psi's exposure-fitting cross-entropy (EMA)
  // Propensities G_beta of the last weighted mini-batch, after clipping.
  double propensity_min = 0;
  double propensity_mean = 0;
  double propensity_max = 0;
  // Online quality: arriving impression lists scored by the snapshot served
  // at that moment, before training on them, and judged once their clicks
  // are in; means over the most recent lists (OnlineQuality). The baseline
  // is the decayed CTR (clicks + 0.1) / (shows + 3) at a 6 h half-life.
  uint64_t online_lists = 0;  // lists judged so far
  double online_auc = 0;
  double online_ndcg10 = 0;
  double online_baseline_auc = 0;
  double online_baseline_ndcg10 = 0;
};

class ModelSnapshot {
 public:
  virtual ~ModelSnapshot() = default;

  // Increases with every published snapshot: by one while the trainer
  // runs, and across a restart to above every version published before.
  virtual uint64_t version() const = 0;
  // Wall-clock creation time, ms since the Unix epoch.
  virtual int64_t created_unix_ms() const = 0;
  virtual const TrainingStats& stats() const = 0;

  // Id mapping (external id <-> dense index) as of this snapshot.
  virtual std::optional<uint32_t> FindUser(std::string_view user_id) const = 0;
  virtual std::optional<uint32_t> FindItem(std::string_view item_id) const = 0;
  virtual std::string ItemId(uint32_t item) const = 0;
  // Users and items the model has rows for; a known id with an index at or
  // past these counts is treated as unknown (popularity fallback).
  virtual size_t num_users() const = 0;
  virtual size_t num_items() const = 0;

  // Stage 1, retrieval: one vector per user and item; higher dot product is
  // better. All vectors have dim() floats.
  virtual int dim() const = 0;
  virtual std::span<const float> UserVector(uint32_t user) const = 0;
  virtual std::span<const float> ItemVector(uint32_t item) const = 0;
  // The live candidate pool: items impressed within the configured event
  // time window before the newest event seen.
  virtual std::span<const uint32_t> CandidateItems() const = 0;
  // Candidate items by popularity (clicks in the window), most popular
  // first: the fallback for unknown users.
  virtual std::span<const uint32_t> PopularItems() const = 0;
  // Items the user clicked (history included), ascending.
  virtual std::span<const uint32_t> ClickedItems(uint32_t user) const = 0;

  // Stage 2, ranking by the active ranker: scores[k] for items[k]. Higher is
  // better. items and scores have the same size.
  virtual void Score(uint32_t user, std::span<const uint32_t> items,
                     std::span<float> scores) const = 0;

  // Stream-aware scoring: the stream features and the feature model that
  // combines them with Score()'s f(u, i). What serving ranks by when set;
  // null when stream features are off (then Score() alone ranks, and
  // unknown users get PopularItems()).
  virtual const stream::StreamScorer* stream() const { return nullptr; }

  // The weights Score() computes with, when it is a ScoringModel (what the
  // trainer publishes to serving replicas, replica/); null otherwise.
  virtual const ScoringModel* scoring_model() const { return nullptr; }
};

// Holds the latest snapshot. Thread-safe: Publish and Get may be called from
// any threads; Get returns a reference that keeps its snapshot alive.
//
// Serving never pays for a new snapshot: what is derived from one (the
// retrieval index) is built by the on-publish hook in the publishing thread
// before readers can see it, and a replaced snapshot is kept until the next
// Publish, so it is almost always freed by the publisher, not by the last
// request that held it (the price: memory for one more snapshot).
class SnapshotHolder {
 public:
  using OnPublish =
      std::function<void(const std::shared_ptr<const ModelSnapshot>&)>;

  std::shared_ptr<const ModelSnapshot> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  void Publish(std::shared_ptr<const ModelSnapshot> snapshot) {
    if (on_publish_ && snapshot != nullptr) on_publish_(snapshot);
    std::shared_ptr<const ModelSnapshot> retired;
    {
      std::lock_guard<std::mutex> lock(mu_);
      retired = std::move(previous_);
      previous_ = std::move(current_);
      current_ = std::move(snapshot);
    }
    // `retired` is released here, after the lock, so a large model is
    // never freed while readers wait.
  }
  // Called by Publish with each snapshot before Get can return it, in the
  // publishing thread. Set it before the first Publish; not thread-safe
  // against a concurrent Publish.
  void SetOnPublish(OnPublish hook) { on_publish_ = std::move(hook); }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ModelSnapshot> current_;
  std::shared_ptr<const ModelSnapshot> previous_;
  OnPublish on_publish_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SNAPSHOT_H_
