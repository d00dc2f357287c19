// ItemCounters: what the stream says about each item, in event time.
//
// Per item: impressions and clicks with exponential decay at a few
// half-lives (news lives for hours: a click of the last half hour says more
// than one of yesterday), all-time totals, when the item was first shown and
// last clicked, and how many users had it in their history (MIND's History
// column: reads from before the stream). Decayed values are stored with the
// time of their last update and brought forward lazily, so an update is
// O(half-lives) and time only moves forward (events that arrive out of order
// count at the newest time seen).
//
// Bounded: items untouched for `evict_after_ms` of event time are dropped by
// Evict().
//
// Thread-safety: none; one owner (the trainer thread).
#ifndef CFREC_STREAM_ITEM_COUNTERS_H_
#define CFREC_STREAM_ITEM_COUNTERS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cfrec/schemas/status.h"

namespace cfrec::stream {

// The decay half-lives, in hours: 30 min, 2 h, 6 h, 24 h.
inline constexpr int kHalfLives = 4;
inline constexpr std::array<double, kHalfLives> kHalfLifeHours = {0.5, 2, 6,
                                                                  24};

struct ItemCounts {
  int64_t updated_ms = 0;                  // time the decayed values refer to
  std::array<float, kHalfLives> shows{};   // decayed impressions
  std::array<float, kHalfLives> clicks{};  // decayed clicks
  float total_shows = 0;
  float total_clicks = 0;
  float history_users = 0;       // users with the item in their history
  int64_t first_shown_ms = -1;   // -1: never shown
  int64_t last_clicked_ms = -1;  // -1: never clicked
  int64_t touched_ms = 0;        // last event that named the item

  // The decayed values brought forward to `now_ms` (never backwards).
  ItemCounts At(int64_t now_ms) const;
};

class ItemCounters {
 public:
  explicit ItemCounters(int64_t evict_after_ms)
      : evict_after_ms_(evict_after_ms) {}

  // Event time moves forward with these; older timestamps count as now.
  void AddShown(uint32_t item, int64_t ts_ms);
  void AddClick(uint32_t item, int64_t ts_ms);
  void AddHistory(uint32_t item, int64_t ts_ms);
  // Moves the clock to `ts_ms` if that is later.
  void AdvanceTo(int64_t ts_ms) {
    if (ts_ms > now_ms_) now_ms_ = ts_ms;
  }

  // Null when the stream never named the item (or it was evicted).
  const ItemCounts* Find(uint32_t item) const;
  // Decayed impressions and clicks of all items together, at now().
  const ItemCounts& global() const { return global_; }
  // The newest event time seen.
  int64_t now() const { return now_ms_; }
  size_t size() const { return items_.size(); }
  const std::unordered_map<uint32_t, ItemCounts>& items() const {
    return items_;
  }

  // Drops items untouched for evict_after_ms before now(); returns how many.
  size_t Evict();

  void AppendTo(std::string* out) const;
  // Reads what AppendTo wrote, advancing `in`.
  Status ReadFrom(std::string_view* in);

 private:
  ItemCounts& Touch(uint32_t item, int64_t ts_ms);

  int64_t evict_after_ms_;
  int64_t now_ms_ = INT64_MIN;
  ItemCounts global_;
  std::unordered_map<uint32_t, ItemCounts> items_;
};

}  // namespace cfrec::stream

#endif  // CFREC_STREAM_ITEM_COUNTERS_H_
