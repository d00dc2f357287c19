#include "cfrec/stream/scorer.h"

#include <algorithm>
#include <limits>

namespace cfrec::stream {
namespace {

constexpr uint32_t kNoUser = std::numeric_limits<uint32_t>::max();

}  // namespace

std::shared_ptr<const StreamScorer> StreamScorer::FromCounts(
    Source source, const Weights& w,
    std::shared_ptr<const UserExposure::Snapshot> exposure) {
  const int64_t now = source.now_ms;
  const ItemCounts global = source.global.At(now);  // decayed once
  auto item = [&](const ItemCounts* c) {
    Item out;
    ItemFeatures(c, global, now, out.row);
    out.score = 0;
    for (int f = 0; f < kNumItemFeatures; ++f) out.score += w[f] * out.row[f];
    return out;
  };
  std::unordered_map<uint32_t, Item> items;
  if (source.items != nullptr) {
    items.reserve(source.items->size());
    for (const auto& [id, counts] : *source.items) {
      items.emplace(id, item(&counts));
    }
  }
  auto scorer = std::make_shared<StreamScorer>(
      now, w, std::move(items), item(nullptr), std::move(exposure));
  scorer->source_ = std::move(source);
  return scorer;
}

void StreamScorer::ScoreItems(uint32_t user, std::span<const uint32_t> items,
                              std::span<const uint32_t> user_clicked,
                              std::span<const float> ranker,
                              std::span<float> out) const {
  const UserExposure::Record* exposure =
      user != kNoUser ? Exposure(user) : nullptr;
  for (size_t k = 0; k < items.size() && k < out.size(); ++k) {
    const bool clicked =
        std::binary_search(user_clicked.begin(), user_clicked.end(), items[k]);
    std::optional<float> r;
    if (k < ranker.size()) r = ranker[k];
    out[k] = Score(ItemScore(items[k]), Pair(exposure, items[k], clicked), r);
  }
}

void StreamScorer::ScoreItems(std::span<const uint32_t> items,
                              std::span<const uint32_t> user_clicked,
                              std::span<const float> ranker,
                              std::span<float> out) const {
  ScoreItems(kNoUser, items, user_clicked, ranker, out);
}

}  // namespace cfrec::stream
