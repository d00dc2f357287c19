#include "cfrec/stream/scorer.h"

#include <algorithm>

namespace cfrec::stream {

void StreamScorer::ScoreItems(std::span<const uint32_t> items,
                              std::span<const uint32_t> user_clicked,
                              std::span<const float> ranker,
                              std::span<float> out) const {
  for (size_t k = 0; k < items.size() && k < out.size(); ++k) {
    const bool clicked =
        std::binary_search(user_clicked.begin(), user_clicked.end(), items[k]);
    std::optional<float> r;
    if (k < ranker.size()) r = ranker[k];
    out[k] = Score(ItemScore(items[k]), clicked, r);
  }
}

}  // namespace cfrec::stream
