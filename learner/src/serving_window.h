// ServingWindow: the live candidate pool (items impressed within a window of
// event time before the newest event) and click popularity in that window.
// Owned by the trainer thread (not thread-safe); snapshots get copies.
#ifndef CFREC_LEARNER_SRC_SERVING_WINDOW_H_
#define CFREC_LEARNER_SRC_SERVING_WINDOW_H_

#include <cstdint>
#include <deque>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"

namespace cfrec::learner {

class ServingWindow {
 public:
  explicit ServingWindow(int64_t window_ms) : window_ms_(window_ms) {}

  void Observe(std::span<const state::AppliedEvent> events);
  // Items impressed in [newest - window, newest], ascending.
  std::vector<uint32_t> Candidates() const;
  // Candidates by clicks in the window, most first (ties: lower id first).
  std::vector<uint32_t> Popular() const;
  int64_t newest_ms() const { return newest_ms_; }

  std::string Serialize() const;
  Status Deserialize(std::string_view bytes);

 private:
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
  void Expire();
  // newest_ms_ - window_ms_, saturated.
  int64_t Cutoff() const;

  int64_t window_ms_;
  int64_t newest_ms_ = kNever;
  std::vector<int64_t> last_impression_ms_;          // per item; kNever = none
  std::deque<std::pair<int64_t, uint32_t>> clicks_;  // (ts, item)
  std::vector<uint32_t> click_count_;  // per item, clicks in clicks_
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_SERVING_WINDOW_H_
