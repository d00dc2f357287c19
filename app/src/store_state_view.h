// The dashboard's read-only view of the state store (server::StateView)
// over the EventStore. Thread-safe: it only calls the store's const
// methods, which are.
#ifndef CFREC_APP_STORE_STATE_VIEW_H_
#define CFREC_APP_STORE_STATE_VIEW_H_

#include <cstddef>
#include <string_view>
#include <vector>

#include "cfrec/server/dashboard.h"
#include "cfrec/state/event_store.h"

namespace cfrec::app {

class StoreStateView : public server::StateView {
 public:
  // `store` is not owned and must outlive this view.
  explicit StoreStateView(const state::EventStore* store) : store_(store) {}

  // Newest first, from the user's most recent impressions: kFirstRead of
  // them, then eight times more while they hold fewer than `n` clicks, up to
  // kMaxImpressions.
  Result<std::vector<server::ClickRecord>> RecentClicks(
      std::string_view user_id, size_t n) const override;
  Result<std::vector<server::DeadLetterRecord>> RecentDeadLetters(
      size_t n, size_t head_bytes) const override;

  static constexpr size_t kFirstRead = 64;
  static constexpr size_t kMaxImpressions = 10000;

 private:
  const state::EventStore* store_;
};

}  // namespace cfrec::app

#endif  // CFREC_APP_STORE_STATE_VIEW_H_
