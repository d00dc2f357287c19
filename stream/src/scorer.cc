#include "cfrec/stream/scorer.h"

#include <algorithm>
#include <limits>

namespace cfrec::stream {
namespace {

constexpr uint32_t kNoUser = std::numeric_limits<uint32_t>::max();

}  // namespace

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
