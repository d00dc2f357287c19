// In-memory ModelSnapshot and EventSink for tests and benchmarks of the
// server: the learner and the Kafka producer are replaced by plain vectors.
//
// FakeSnapshot is immutable once built (fill it, then publish it), so it is
// as thread-safe as the real snapshots. RecordingSink is thread-safe.
#ifndef CFREC_SERVER_TESTING_FAKE_SNAPSHOT_H_
#define CFREC_SERVER_TESTING_FAKE_SNAPSHOT_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cfrec/ingest/event_sink.h"
#include "cfrec/learner/scoring_model.h"
#include "cfrec/learner/snapshot.h"
#include "cfrec/server/recommend.h"

namespace cfrec::server::testing {

// Ranker of the fake: dot product plus a per-item bias, so a test can tell
// the ranking stage (Score) from the retrieval stage (plain dot product).
// With set_dot_ranker(true) the ranker is the plain dot product over the
// retrieval vectors instead, as BPR's is in the real snapshot: then
// scoring_model() is a ScoringModel of kind kDot whose tables are the very
// arrays UserVector() and ItemVector() read.
class FakeSnapshot : public learner::ModelSnapshot {
 public:
  FakeSnapshot(uint64_t version, int dim) : version_(version), dim_(dim) {
    tables_.kind = learner::ScoringModel::Kind::kDot;
    tables_.dot_dim = dim;
  }

  // --- building (before publishing) -----------------------------------
  uint32_t AddUser(std::string id, std::vector<float> vector) {
    const auto index = static_cast<uint32_t>(user_ids_.size());
    user_index_.emplace(id, index);
    user_ids_.push_back(std::move(id));
    vector.resize(dim_);
    tables_.user.insert(tables_.user.end(), vector.begin(), vector.end());
    tables_.num_users = static_cast<int64_t>(user_ids_.size());
    clicked_.emplace_back();
    return index;
  }
  uint32_t AddItem(std::string id, std::vector<float> vector,
                   float bias = 0.0f) {
    const auto index = static_cast<uint32_t>(item_ids_.size());
    item_index_.emplace(id, index);
    item_ids_.push_back(std::move(id));
    vector.resize(dim_);
    tables_.item.insert(tables_.item.end(), vector.begin(), vector.end());
    tables_.num_items = static_cast<int64_t>(item_ids_.size());
    item_bias_.push_back(bias);
    return index;
  }
  void set_candidates(std::vector<uint32_t> items) {
    candidates_ = std::move(items);
  }
  void set_popular(std::vector<uint32_t> items) { popular_ = std::move(items); }
  void set_clicked(uint32_t user, std::vector<uint32_t> items) {
    std::sort(items.begin(), items.end());
    clicked_[user] = std::move(items);
  }
  // Pretend the model has rows for only the first `n` users (an id known
  // to the dictionary but not yet to the model).
  void set_num_users(size_t n) { num_users_override_ = n; }
  void set_created_unix_ms(int64_t ms) { created_ms_ = ms; }
  void set_version(uint64_t version) { version_ = version; }
  learner::TrainingStats& mutable_stats() { return stats_; }
  void set_stream(std::shared_ptr<const stream::StreamScorer> scorer) {
    stream_ = std::move(scorer);
  }
  const stream::StreamScorer* stream() const override { return stream_.get(); }
  void set_dot_ranker(bool on) { dot_ranker_ = on; }
  const learner::ScoringModel* scoring_model() const override {
    return dot_ranker_ ? &tables_ : nullptr;
  }

  // --- ModelSnapshot ----------------------------------------------------
  uint64_t version() const override { return version_; }
  int64_t created_unix_ms() const override { return created_ms_; }
  const learner::TrainingStats& stats() const override { return stats_; }
  std::optional<uint32_t> FindUser(std::string_view id) const override {
    auto it = user_index_.find(std::string(id));
    if (it == user_index_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<uint32_t> FindItem(std::string_view id) const override {
    auto it = item_index_.find(std::string(id));
    if (it == item_index_.end()) return std::nullopt;
    return it->second;
  }
  std::string ItemId(uint32_t item) const override { return item_ids_[item]; }
  size_t num_users() const override {
    return num_users_override_.value_or(user_ids_.size());
  }
  size_t num_items() const override { return item_ids_.size(); }
  int dim() const override { return dim_; }
  std::span<const float> UserVector(uint32_t user) const override {
    return {tables_.user.data() + static_cast<size_t>(user) * dim_,
            static_cast<size_t>(dim_)};
  }
  std::span<const float> ItemVector(uint32_t item) const override {
    return {tables_.item.data() + static_cast<size_t>(item) * dim_,
            static_cast<size_t>(dim_)};
  }
  std::span<const uint32_t> CandidateItems() const override {
    return candidates_;
  }
  std::span<const uint32_t> PopularItems() const override { return popular_; }
  std::span<const uint32_t> ClickedItems(uint32_t user) const override {
    return clicked_[user];
  }
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> scores) const override {
    const auto u = UserVector(user);
    for (size_t k = 0; k < items.size(); ++k) {
      scores[k] = Dot(u, ItemVector(items[k])) +
                  (dot_ranker_ ? 0.0f : item_bias_[items[k]]);
    }
  }

 private:
  std::shared_ptr<const stream::StreamScorer> stream_;
  uint64_t version_;
  int dim_;
  int64_t created_ms_ = 0;
  learner::TrainingStats stats_;
  std::unordered_map<std::string, uint32_t> user_index_, item_index_;
  std::vector<std::string> user_ids_, item_ids_;
  // The user and item vectors (num_users x dim, num_items x dim), in the
  // tables of a dot-product ScoringModel.
  learner::ScoringModel tables_;
  bool dot_ranker_ = false;
  std::vector<float> item_bias_;
  std::vector<uint32_t> candidates_, popular_;
  std::vector<std::vector<uint32_t>> clicked_;
  std::optional<size_t> num_users_override_;
};

// A random model: users "U<i>", items "N<i>", Gaussian vectors, every item
// a candidate, popularity = index order, `clicks_per_user` random clicks.
inline std::shared_ptr<FakeSnapshot> MakeRandomSnapshot(
    uint64_t version, size_t num_users, size_t num_items, int dim,
    size_t clicks_per_user, uint32_t seed) {
  auto snapshot = std::make_shared<FakeSnapshot>(version, dim);
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> v(dim);
  for (size_t i = 0; i < num_items; ++i) {
    for (auto& x : v) x = gauss(rng);
    snapshot->AddItem("N" + std::to_string(i), v, 0.1f * gauss(rng));
  }
  std::uniform_int_distribution<uint32_t> pick(
      0, static_cast<uint32_t>(num_items == 0 ? 0 : num_items - 1));
  for (size_t u = 0; u < num_users; ++u) {
    for (auto& x : v) x = gauss(rng);
    const uint32_t user = snapshot->AddUser("U" + std::to_string(u), v);
    std::vector<uint32_t> clicked;
    for (size_t c = 0; c < clicks_per_user && num_items > 0; ++c) {
      clicked.push_back(pick(rng));
    }
    clicked.erase(std::unique((std::sort(clicked.begin(), clicked.end()),
                               clicked.begin()),
                              clicked.end()),
                  clicked.end());
    snapshot->set_clicked(user, std::move(clicked));
  }
  std::vector<uint32_t> all(num_items);
  for (size_t i = 0; i < num_items; ++i) all[i] = static_cast<uint32_t>(i);
  snapshot->set_candidates(all);
  snapshot->set_popular(all);
  snapshot->set_created_unix_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  return snapshot;
}

// EventSink that records what it was sent; can be told to refuse.
class RecordingSink : public ingest::EventSink {
 public:
  Status Send(std::string_view key, std::string_view payload) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (refuse_after_.has_value() && messages_.size() >= *refuse_after_) {
      return Status::ResourceExhausted("queue full");
    }
    messages_.emplace_back(std::string(key), std::string(payload));
    return Status::Ok();
  }
  Status Flush(std::chrono::milliseconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (undelivered_) return Status::Unavailable("flush timed out");
    return Status::Ok();
  }

  // From now on Flush (and so SendDurable) reports the messages
  // undelivered.
  void NeverDeliver() {
    std::lock_guard<std::mutex> lock(mu_);
    undelivered_ = true;
  }
  void RefuseAfter(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    refuse_after_ = n;
  }
  std::vector<std::pair<std::string, std::string>> messages() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> messages_;
  std::optional<size_t> refuse_after_;
  bool undelivered_ = false;
};

}  // namespace cfrec::server::testing

#endif  // CFREC_SERVER_TESTING_FAKE_SNAPSHOT_H_
