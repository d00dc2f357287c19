#include "stream_step.h"

#include <cmath>
#include <limits>

namespace cfrec::learner {

void StreamStep::Observe(std::span<const state::AppliedEvent> events,
                         Learner& learner, const stream::StreamScorer* served) {
  constexpr float kAbsent = std::numeric_limits<float>::quiet_NaN();
  for (const state::AppliedEvent& e : events) {
    if (e.kind == state::AppliedEvent::Kind::kClick) {
      if (!e.clicked.empty()) {
        model_.OnClick(e.user, e.ts_ms, e.items, e.clicked.front());
      }
      continue;
    }
    // The user term: the ranker's score where it has rows for the user and
    // the item, nothing elsewhere (a user seen first is scored by the
    // stream features alone, as serving scores it).
    ranker_.assign(e.items.size(), kAbsent);
    if (e.user < learner.num_users() && !e.items.empty()) {
      learner.Score(e.user, e.items, ranker_);
      for (size_t k = 0; k < e.items.size(); ++k) {
        if (e.items[k] >= learner.num_items() || !std::isfinite(ranker_[k])) {
          ranker_[k] = kAbsent;
        }
      }
    }
    model_.OnImpression(e.user, e.ts_ms, e.items, e.clicked, e.history, ranker_,
                        served);
  }
}

}  // namespace cfrec::learner
