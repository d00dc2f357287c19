// StreamModel: the stream-aware part of the learner, as a unit of its own
// with a step (OnImpression / OnClick), a checkpoint part (AppendTo /
// ReadFrom) and a snapshot part (MakeScorer).
//
// Step. An impression list is first turned into feature rows as serving saw
// it (before its own impressions count) and kept while its clicks arrive;
// once `label_window_ms` of event time has passed it trains the FeatureModel
// with all its clicks, on the rows it had when it was shown (no
// look-ahead). Lists whose clicks came inline train at once.
//
// State is bounded: items and users untouched for `evict_after_ms` of event
// time are dropped, and at most `max_pending_lists` lists wait for clicks.
//
// Thread-safety: none; one owner (the trainer thread). Scorers it makes
// are immutable.
#ifndef CFREC_STREAM_STREAM_MODEL_H_
#define CFREC_STREAM_STREAM_MODEL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/stream/feature_model.h"
#include "cfrec/stream/item_counters.h"
#include "cfrec/stream/scorer.h"
#include "cfrec/stream/user_exposure.h"

namespace cfrec::stream {

struct StreamOptions {
  FeatureModelOptions model;
  // Items and users not named by any event for this long (event time) are
  // forgotten. Default 72 h.
  int64_t evict_after_ms = int64_t{72} * 3600 * 1000;
  // Lists kept for clicks that arrive after their impression. Default
  // 20,000; the oldest go first.
  size_t max_pending_lists = 20000;
  // A list whose clicks come after it (the usual case through Kafka) trains
  // once this much event time has passed since it was shown, with every
  // click it got by then. Default 10 minutes.
  int64_t label_window_ms = 10 * 60 * 1000;
  // Items remembered per user as clicked (history included). Default 256.
  size_t max_user_items = 256;
  // Items remembered per user as shown (with how often). Default 256.
  size_t max_user_shown = 256;
};

// The identity of a shown list: its user and its items in order. A click
// event carries its impression's list, so this finds the list a click
// belongs to (also used by the learner's online-quality bookkeeping).
uint64_t ListKey(uint32_t user, std::span<const uint32_t> items);

struct StreamStats {
  uint64_t impressions = 0;
  uint64_t clicks = 0;
  uint64_t lists_trained = 0;     // training steps of the feature model
  uint64_t clicks_unmatched = 0;  // clicks whose list was no longer pending
  size_t items = 0;
  size_t users = 0;
  size_t pending_lists = 0;
  uint64_t evicted_items = 0;
  double loss = 0;  // EMA of the feature model's list log-loss
};

class StreamModel {
 public:
  explicit StreamModel(StreamOptions options = {});

  // A list as it is shown. `clicked` holds the positions already known to
  // be clicked; `history` the user's reads from before the stream (counted
  // once per user); `ranker` is f(u, items[k]) from the current ranker, or
  // empty when there is no user term (unknown user, no ranker). `served`,
  // when given, is the scorer that served the list: its item rows (as
  // stale as serving was) are what the list trains on, so the model learns
  // weights for the features it is actually served with. Null: the rows
  // of this moment.
  void OnImpression(uint32_t user, int64_t ts_ms,
                    std::span<const uint32_t> items,
                    std::span<const uint16_t> clicked,
                    std::span<const uint32_t> history,
                    std::span<const float> ranker,
                    const StreamScorer* served = nullptr);
  // A click on position `pos` of a list shown earlier.
  void OnClick(uint32_t user, int64_t ts_ms, std::span<const uint32_t> items,
               uint16_t pos);

  // The feature rows of `items` for `user`: item rows from `served` if
  // given, else of this moment (what a click would train).
  void Rows(uint32_t user, std::span<const uint32_t> items,
            std::span<const float> ranker, const StreamScorer* served,
            std::vector<FeatureRow>* rows) const;

  // The serving half, at the newest event time seen.
  std::shared_ptr<const StreamScorer> MakeScorer() const;

  // The user's clicked items (history included), ascending; empty if unknown.
  std::span<const uint32_t> UserClicked(uint32_t user) const;

  const ItemCounters& counters() const { return counters_; }
  const UserExposure& exposure() const { return exposure_; }
  const FeatureModel& model() const { return model_; }
  StreamStats Stats() const;

  std::string Serialize() const;
  Status Deserialize(std::string_view blob);

 private:
  struct UserState {
    std::vector<uint32_t> clicked;  // ascending, at most max_user_items
    std::deque<uint32_t> order;     // insertion order, for the bound
    int64_t touched_ms = 0;
    bool history_counted = false;
  };
  struct PendingList {
    uint32_t user = 0;
    std::vector<uint32_t> items;
    std::vector<FeatureRow> rows;
    std::vector<uint8_t> clicked;
    int64_t shown_ms = 0;
    uint64_t seq = 0;      // its entry in pending_order_
    bool trained = false;  // trained at once (its clicks came with it)
  };

  void AddUserItem(UserState& u, uint32_t item);
  // Trains the lists whose label window has passed (or that the bound
  // pushes out) with the clicks they got, and forgets them.
  void TrainMatured();
  void Evict();

  StreamOptions options_;
  ItemCounters counters_;
  UserExposure exposure_;
  FeatureModel model_;
  std::unordered_map<uint32_t, UserState> users_;
  std::unordered_map<uint64_t, PendingList> pending_;
  std::deque<std::pair<uint64_t, uint64_t>> pending_order_;  // (key, seq)
  uint64_t pending_seq_ = 0;
  StreamStats stats_;
  uint64_t events_since_evict_ = 0;
};

}  // namespace cfrec::stream

#endif  // CFREC_STREAM_STREAM_MODEL_H_
