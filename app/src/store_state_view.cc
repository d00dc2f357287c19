#include "store_state_view.h"

#include <algorithm>

namespace cfrec::app {

Result<std::vector<server::ClickRecord>> StoreStateView::RecentClicks(
    std::string_view user_id, size_t n) const {
  const std::optional<state::UserIndex> user = store_->FindUser(user_id);
  if (!user.has_value()) {
    return Status::NotFound("the store has no user '" + std::string(user_id) +
                            "'");
  }
  // The newest impressions first, read further back only while they hold
  // fewer than `n` clicks.
  std::vector<server::ClickRecord> clicks;
  for (size_t want = std::min(kFirstRead, kMaxImpressions);;
       want = std::min(want * 8, kMaxImpressions)) {
    auto impressions = store_->RecentUserImpressions(*user, want);
    if (!impressions.ok()) return impressions.status();
    clicks.clear();
    for (auto it = impressions->rbegin();
         it != impressions->rend() && clicks.size() < n; ++it) {
      for (auto pos = it->clicked.rbegin();
           pos != it->clicked.rend() && clicks.size() < n; ++pos) {
        if (*pos >= it->items.size()) continue;
        clicks.push_back(
            {store_->ItemId(it->items[*pos]), it->impression_id, it->ts_ms});
      }
    }
    if (clicks.size() >= n || impressions->size() < want ||
        want == kMaxImpressions) {
      break;
    }
  }
  return clicks;
}

Result<std::vector<server::DeadLetterRecord>> StoreStateView::RecentDeadLetters(
    size_t n, size_t head_bytes) const {
  // Dead letters are numbered 1, 2, ... as they are recorded.
  const uint64_t total = store_->Counters().dead_letters;
  const uint64_t from = total > n ? total - n + 1 : 1;
  auto letters = store_->ReadDeadLetters(from, n);
  if (!letters.ok()) return letters.status();
  std::vector<server::DeadLetterRecord> out;
  out.reserve(letters->size());
  for (auto it = letters->rbegin(); it != letters->rend(); ++it) {
    out.push_back({it->seq, it->reason, it->topic, it->partition, it->offset,
                   it->payload.substr(0, head_bytes), it->payload.size()});
  }
  return out;
}

}  // namespace cfrec::app
