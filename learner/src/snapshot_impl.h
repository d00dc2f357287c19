// The ModelSnapshot the learner publishes: plain copies of weights, pools and
// click lists. Immutable after construction, so every method is safe to call
// from many threads at once.
#ifndef CFREC_LEARNER_SRC_SNAPSHOT_IMPL_H_
#define CFREC_LEARNER_SRC_SNAPSHOT_IMPL_H_

#include <cstdint>
#include <vector>

#include "cfrec/learner/snapshot.h"
#include "scoring.h"

namespace cfrec::state {
class EventStore;
}

namespace cfrec::learner {

struct SnapshotData {
  uint64_t version = 0;
  int64_t created_unix_ms = 0;
  TrainingStats stats;
  const state::EventStore* ids = nullptr;  // not owned
  size_t num_users = 0;
  size_t num_items = 0;
  int dim = 0;
  // Retrieval vectors (num_users x dim, num_items x dim). Empty when the
  // ranker is a dot product: then they are ranker.user / ranker.item.
  std::vector<float> user_vectors;
  std::vector<float> item_vectors;
  std::vector<uint32_t> candidates;
  std::vector<uint32_t> popular;
  std::vector<uint64_t> clicked_offsets;  // num_users + 1
  std::vector<uint32_t> clicked_items;
  ScoringModel ranker;
  std::shared_ptr<const stream::StreamScorer> stream;  // null: off
};

class ModelSnapshotImpl final : public ModelSnapshot {
 public:
  explicit ModelSnapshotImpl(SnapshotData data) : d_(std::move(data)) {}

  uint64_t version() const override { return d_.version; }
  int64_t created_unix_ms() const override { return d_.created_unix_ms; }
  const TrainingStats& stats() const override { return d_.stats; }
  std::optional<uint32_t> FindUser(std::string_view user_id) const override;
  std::optional<uint32_t> FindItem(std::string_view item_id) const override;
  std::string ItemId(uint32_t item) const override;
  size_t num_users() const override { return d_.num_users; }
  size_t num_items() const override { return d_.num_items; }
  int dim() const override { return d_.dim; }
  std::span<const float> UserVector(uint32_t user) const override;
  std::span<const float> ItemVector(uint32_t item) const override;
  std::span<const uint32_t> CandidateItems() const override {
    return d_.candidates;
  }
  std::span<const uint32_t> PopularItems() const override { return d_.popular; }
  std::span<const uint32_t> ClickedItems(uint32_t user) const override;
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> scores) const override {
    d_.ranker.Score(user, items, scores);
  }
  const stream::StreamScorer* stream() const override {
    return d_.stream.get();
  }
  const ScoringModel* scoring_model() const override { return &d_.ranker; }

 private:
  SnapshotData d_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_SNAPSHOT_IMPL_H_
