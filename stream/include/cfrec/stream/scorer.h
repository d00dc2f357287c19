// StreamScorer: the immutable, serving half of the stream model. Built from
// a StreamModel at one moment of event time, it holds each item's
// item-only score (the feature model's weights times the item's features at
// that moment) and the weights of the user terms, so scoring an item is a
// lookup and two multiply-adds.
//
// Thread-safe after construction.
#ifndef CFREC_STREAM_SCORER_H_
#define CFREC_STREAM_SCORER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "cfrec/stream/feature_model.h"
#include "cfrec/stream/features.h"
#include "cfrec/stream/user_exposure.h"

namespace cfrec::stream {

class StreamScorer {
 public:
  using ItemRow = std::array<float, kNumItemFeatures>;
  struct Item {
    float score;  // the item part of the score
    ItemRow row;  // the item features it came from
  };

  StreamScorer(int64_t now_ms, const Weights& weights,
               std::unordered_map<uint32_t, Item> items, const Item& unseen,
               std::shared_ptr<const UserExposure::Snapshot> exposure = nullptr)
      : now_ms_(now_ms),
        weights_(weights),
        items_(std::move(items)),
        unseen_(unseen),
        exposure_(std::move(exposure)) {}

  // What a scorer is computed from: the item counters at one moment (the
  // decayed values as stored, brought forward by At() when scored). The
  // replicas of a trainer rebuild its scorer from these (replica/), so the
  // scorer keeps them.
  using Counts = std::unordered_map<uint32_t, ItemCounts>;
  struct Source {
    int64_t now_ms = 0;
    ItemCounts global;  // as stored (not brought forward)
    std::shared_ptr<const Counts> items;
  };

  // The scorer of `source` with `weights`: each item's features at
  // source.now_ms and their score. StreamModel::MakeScorer builds its
  // scorers with this, and so do replicas, so both compute the same floats.
  static std::shared_ptr<const StreamScorer> FromCounts(
      Source source, const Weights& weights,
      std::shared_ptr<const UserExposure::Snapshot> exposure);

  // What FromCounts built this scorer from; null for a scorer made
  // otherwise.
  const Source* source() const { return source_ ? &*source_ : nullptr; }
  // The users' exposure it reads (null: none).
  const std::shared_ptr<const UserExposure::Snapshot>& exposure() const {
    return exposure_;
  }

  // The event time the item scores refer to.
  int64_t now_ms() const { return now_ms_; }
  const Weights& weights() const { return weights_; }

  // The item-only part: the item's score, or the prior of an item the stream
  // never named (new items are not pushed to the end: the prior is what the
  // model learned of never-shown items).
  float ItemScore(uint32_t item) const { return Find(item).score; }
  float unseen_score() const { return unseen_.score; }
  // The item features as of now_ms() (an unseen item's for unknown ids):
  // the rows serving used, which is what the stream model trains on.
  const ItemRow& ItemFeatureRow(uint32_t item) const { return Find(item).row; }

  // The (user, item) pair as of now_ms(): whether the user clicked it
  // (`clicked`, known to the caller) and what earlier lists showed of it.
  UserItem Pair(uint32_t user, uint32_t item, bool clicked) const {
    return Pair(Exposure(user), item, clicked);
  }
  // The same for many items of one user: fetch the user's exposure once.
  const UserExposure::Record* Exposure(uint32_t user) const {
    return exposure_ != nullptr ? exposure_->User(user) : nullptr;
  }
  static UserItem Pair(const UserExposure::Record* exposure, uint32_t item,
                       bool clicked) {
    return UserItem{clicked, UserExposure::Lookup(exposure, item).count};
  }

  // The whole score: the item part plus the user terms. `ranker` is the
  // ranker's f(u, i), nullopt for an unknown user (no user term).
  float Score(float item_score, UserItem pair,
              std::optional<float> ranker) const {
    return item_score + UserTerms(pair, ranker);
  }
  // The user terms alone: the weights times UserFeatures(pair, ranker),
  // without building the row (serving's per-candidate cost).
  float UserTerms(UserItem pair, std::optional<float> ranker) const {
    float s = pair.clicked ? weights_[kUserClicked] : 0.0f;
    if (pair.shown > 0) {
      s += weights_[pair.shown == 1   ? kShown1
                    : pair.shown == 2 ? kShown2
                                      : kShown3];
    }
    return s + weights_[kRanker] * ClipRanker(ranker);
  }
  float Score(float item_score, bool user_clicked,
              std::optional<float> ranker) const {
    return Score(item_score, UserItem{user_clicked, 0}, ranker);
  }

  // Scores a list shown to `user`: `user_clicked` is the user's clicked
  // items, ascending (empty for an unknown user); `ranker` is
  // f(u, items[k]) or empty.
  void ScoreItems(uint32_t user, std::span<const uint32_t> items,
                  std::span<const uint32_t> user_clicked,
                  std::span<const float> ranker, std::span<float> out) const;
  // The same without the user's exposure (a user the stream does not know).
  void ScoreItems(std::span<const uint32_t> items,
                  std::span<const uint32_t> user_clicked,
                  std::span<const float> ranker, std::span<float> out) const;

  size_t num_items() const { return items_.size(); }

 private:
  const Item& Find(uint32_t item) const {
    auto it = items_.find(item);
    return it == items_.end() ? unseen_ : it->second;
  }

  int64_t now_ms_;
  Weights weights_;
  std::unordered_map<uint32_t, Item> items_;
  Item unseen_;
  std::shared_ptr<const UserExposure::Snapshot> exposure_;
  std::optional<Source> source_;
};

}  // namespace cfrec::stream

#endif  // CFREC_STREAM_SCORER_H_
