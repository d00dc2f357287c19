// The features of one (user, item) pair at one moment of event time: what
// the stream model combines. Item features come from ItemCounters; user
// features from what the caller knows of the user; the ranker's score
// f(u, i) is one feature among them.
#ifndef CFREC_STREAM_FEATURES_H_
#define CFREC_STREAM_FEATURES_H_

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "cfrec/stream/item_counters.h"

namespace cfrec::stream {

enum Feature : int {
  // log-odds of the item's decayed CTR, shrunk towards the stream's decayed
  // CTR (prior strength kPriorShows impressions), one per half-life.
  kCtr0 = 0,
  kClicks0 = kCtr0 + kHalfLives,    // log(1 + decayed clicks), per half-life
  kShows0 = kClicks0 + kHalfLives,  // log(1 + decayed impressions)
  kAge = kShows0 + kHalfLives,      // log(1 + hours since first shown)
  kNeverShown,                      // 1 when the stream never showed the item
  kNeverClicked,                    // 1 when it was never clicked
  kSinceClick,    // log(1 + hours since the last click), 0 if never
  kTotalClicks,   // log(1 + all-time clicks)
  kTotalCtr,      // log((clicks + 0.1) / (shows + 3)), all time
  kHistoryUsers,  // log(1 + users with the item in their history)
  // One-hot bins, so the linear model can bend where a log cannot: the
  // item's age (shown items only; never-shown is kNeverShown), its decayed
  // impressions and its decayed clicks at the 6 h half-life.
  kAgeBin0,                        // < 1 h, 1-3, 3-6, 6-12, 12-24, 24-48, 48+
  kShowsBin0 = kAgeBin0 + 7,       // [0, .5), [.5, 1.5), ... , >= 15.5
  kClicksBin0 = kShowsBin0 + 6,    // [0, .5), [.5, 1.5), [1.5, 3.5), >= 3.5
  kUserClicked = kClicksBin0 + 4,  // 1 when the user clicked / read it before
  // One-hot: the item was shown to the user in 1, 2, or 3 or more earlier
  // lists (all zero: never). Passed over once, an item is less likely to
  // be clicked the next time (UserExposure).
  kShown1,
  kShown2,
  kShown3,
  kRanker,  // the ranker's f(u, i), clipped; 0 without a user term
  kNumFeatures
};

// Item-only features end before kUserClicked: they are what a snapshot can
// precompute once per item.
inline constexpr int kNumItemFeatures = kUserClicked;
inline constexpr double kPriorShows = 5;
inline constexpr float kRankerClip = 8;

std::string_view FeatureName(int feature);

using FeatureRow = std::array<float, kNumFeatures>;

// Writes the item features (0 .. kNumItemFeatures-1) of `counts` (null: an
// item the stream never named) at `now_ms`, given the stream-wide counts.
void ItemFeatures(const ItemCounts* counts, const ItemCounts& global,
                  int64_t now_ms, std::span<float, kNumItemFeatures> out);

// The ranker feature: f(u, i) clipped to [-kRankerClip, kRankerClip]; 0
// without a user term (nullopt or NaN).
inline float ClipRanker(std::optional<float> ranker) {
  float r = ranker.value_or(0.0f);
  if (std::isnan(r)) r = 0.0f;
  if (r < -kRankerClip) r = -kRankerClip;
  if (r > kRankerClip) r = kRankerClip;
  return r;
}

// What the stream knows of one (user, item) pair.
struct UserItem {
  bool clicked = false;  // the user clicked or read the item before
  uint32_t shown = 0;    // earlier lists that showed it to the user
};

// The user features of the row: the (user, item) pair's history and the
// ranker's score (nullopt or NaN: no user term, i.e. an unknown user or
// item, or no ranker).
inline void UserFeatures(UserItem pair, std::optional<float> ranker,
                         FeatureRow& row) {
  row[kUserClicked] = pair.clicked ? 1.0f : 0.0f;
  row[kShown1] = pair.shown == 1 ? 1.0f : 0.0f;
  row[kShown2] = pair.shown == 2 ? 1.0f : 0.0f;
  row[kShown3] = pair.shown >= 3 ? 1.0f : 0.0f;
  row[kRanker] = ClipRanker(ranker);
}
inline void UserFeatures(bool user_clicked, std::optional<float> ranker,
                         FeatureRow& row) {
  UserFeatures(UserItem{user_clicked, 0}, ranker, row);
}

}  // namespace cfrec::stream

#endif  // CFREC_STREAM_FEATURES_H_
