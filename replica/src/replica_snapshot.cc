// The ModelSnapshot of a replica's ModelState, and the trainer's snapshots
// under their published version numbers.
#include <charconv>

#include "cfrec/replica/model_codec.h"

namespace cfrec::replica {
namespace {

class ReplicaSnapshot final : public learner::ModelSnapshot {
 public:
  explicit ReplicaSnapshot(std::shared_ptr<const ModelState> s)
      : s_(std::move(s)) {
    const auto& user =
        s_->separate_retrieval ? *s_->retrieval_user : s_->ranker->user;
    const auto& item =
        s_->separate_retrieval ? *s_->retrieval_item : s_->ranker->item;
    user_vectors_ = user.data();
    item_vectors_ = item.data();
  }

  uint64_t version() const override { return s_->version; }
  int64_t created_unix_ms() const override { return s_->created_unix_ms; }
  const learner::TrainingStats& stats() const override { return s_->stats; }
  std::optional<uint32_t> FindUser(std::string_view id) const override {
    return Find(*s_->users, id);
  }
  std::optional<uint32_t> FindItem(std::string_view id) const override {
    return Find(*s_->items, id);
  }
  std::string ItemId(uint32_t item) const override {
    return item < s_->items->ids.size() ? s_->items->ids[item]
                                        : std::to_string(item);
  }
  size_t num_users() const override { return s_->num_users; }
  size_t num_items() const override { return s_->num_items; }
  int dim() const override { return s_->dim; }
  std::span<const float> UserVector(uint32_t user) const override {
    if (user >= s_->num_users) return {};
    return {user_vectors_ + size_t{user} * s_->dim,
            static_cast<size_t>(s_->dim)};
  }
  std::span<const float> ItemVector(uint32_t item) const override {
    if (item >= s_->num_items) return {};
    return {item_vectors_ + size_t{item} * s_->dim,
            static_cast<size_t>(s_->dim)};
  }
  std::span<const uint32_t> CandidateItems() const override {
    return *s_->candidates;
  }
  std::span<const uint32_t> PopularItems() const override {
    return *s_->popular;
  }
  std::span<const uint32_t> ClickedItems(uint32_t user) const override {
    const Clicks& c = *s_->clicked;
    if (size_t{user} + 1 >= c.offsets.size()) return {};
    return {c.items.data() + c.offsets[user],
            c.items.data() + c.offsets[user + 1]};
  }
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> scores) const override {
    s_->ranker->Score(user, items, scores);
  }
  const stream::StreamScorer* stream() const override {
    return s_->stream.get();
  }
  const learner::ScoringModel* scoring_model() const override {
    return s_->ranker.get();
  }

 private:
  static std::optional<uint32_t> Find(const Dictionary& d,
                                      std::string_view id) {
    auto it = d.index.find(std::string(id));
    if (it == d.index.end()) return std::nullopt;
    return it->second;
  }

  std::shared_ptr<const ModelState> s_;
  const float* user_vectors_ = nullptr;
  const float* item_vectors_ = nullptr;
};

// Every call goes to `inner`; only the version differs.
class VersionedSnapshot final : public learner::ModelSnapshot {
 public:
  VersionedSnapshot(std::shared_ptr<const learner::ModelSnapshot> inner,
                    uint64_t version)
      : inner_(std::move(inner)), version_(version) {}

  uint64_t version() const override { return version_; }
  int64_t created_unix_ms() const override { return inner_->created_unix_ms(); }
  const learner::TrainingStats& stats() const override {
    return inner_->stats();
  }
  std::optional<uint32_t> FindUser(std::string_view id) const override {
    return inner_->FindUser(id);
  }
  std::optional<uint32_t> FindItem(std::string_view id) const override {
    return inner_->FindItem(id);
  }
  std::string ItemId(uint32_t item) const override {
    return inner_->ItemId(item);
  }
  size_t num_users() const override { return inner_->num_users(); }
  size_t num_items() const override { return inner_->num_items(); }
  int dim() const override { return inner_->dim(); }
  std::span<const float> UserVector(uint32_t user) const override {
    return inner_->UserVector(user);
  }
  std::span<const float> ItemVector(uint32_t item) const override {
    return inner_->ItemVector(item);
  }
  std::span<const uint32_t> CandidateItems() const override {
    return inner_->CandidateItems();
  }
  std::span<const uint32_t> PopularItems() const override {
    return inner_->PopularItems();
  }
  std::span<const uint32_t> ClickedItems(uint32_t user) const override {
    return inner_->ClickedItems(user);
  }
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> scores) const override {
    inner_->Score(user, items, scores);
  }
  const stream::StreamScorer* stream() const override {
    return inner_->stream();
  }
  const learner::ScoringModel* scoring_model() const override {
    return inner_->scoring_model();
  }

 private:
  std::shared_ptr<const learner::ModelSnapshot> inner_;
  uint64_t version_;
};

}  // namespace

std::shared_ptr<const learner::ModelSnapshot> MakeReplicaSnapshot(
    std::shared_ptr<const ModelState> state) {
  return std::make_shared<ReplicaSnapshot>(std::move(state));
}

std::shared_ptr<const learner::ModelSnapshot> WithVersion(
    std::shared_ptr<const learner::ModelSnapshot> inner, uint64_t version) {
  return std::make_shared<VersionedSnapshot>(std::move(inner), version);
}

}  // namespace cfrec::replica
