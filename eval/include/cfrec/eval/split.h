// Train / validation / test splits of the three protocols, and the coldness
// buckets of CPR Table 4. All functions are pure and deterministic for a
// given seed; results own their data.
#ifndef CFREC_EVAL_SPLIT_H_
#define CFREC_EVAL_SPLIT_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/model.h"
#include "cfrec/schemas/status.h"

namespace cfrec::eval {

// ------------------------------------------------------------ leave-one-out

struct LeaveOneOutOptions {
  // Sampled negatives per held-out item, drawn uniformly from the items of
  // the log the user never interacted with (CPR reference code: 100). Fewer
  // when fewer exist. Default 100.
  uint32_t num_negatives = 100;
  // Seed of the negative sampling; each user's draw depends only on the seed
  // and the user, so the same users get the same negatives in every run.
  // Default 1.
  uint64_t seed = 1;
  // A user is held out only with at least this many distinct positive items
  // (test, validation, and something to train on). Default 3.
  uint32_t min_distinct_positives = 3;
};

// One held-out (user, item) with its sampled negatives.
struct HeldOut {
  uint32_t user = 0;
  uint32_t item = 0;
  std::vector<uint32_t> negatives;
};

struct LeaveOneOutSplit {
  // Positives and impressions of the training period. For a held-out user,
  // neither the test nor the validation item appears in any of them, and
  // impressions from the one holding the validation click on are dropped.
  TrainData train;
  std::vector<HeldOut> validation;  // the second-to-last distinct click
  std::vector<HeldOut> test;        // the last distinct click
  // Per user: every item the user ever interacted with (clicks and history
  // of the whole log, test and validation included), sorted. The all-items
  // ranking mode ranks a held-out item against every other item not here.
  std::vector<std::vector<uint32_t>> interacted;
};

// Leave-one-out as in the CPR reference code and ACL A.6.2: per user, the
// item of the last click is the test item; the item of the last click on a
// different item is the validation item.
Result<LeaveOneOutSplit> SplitLeaveOneOut(const Dataset& data,
                                          const LeaveOneOutOptions& options);

// The items of the log that `user` never interacted with, ascending: the
// candidates of the all-items ranking mode.
std::vector<uint32_t> NonInteracted(const LeaveOneOutSplit& split,
                                    uint32_t num_items, uint32_t user);

// --------------------------------------------------------------- time split

struct TimeSplitOptions {
  // Share of impressions (latest in time) held out for test. Default 0.2.
  double test_fraction = 0.2;
  // Share of impressions just before the test period used for validation
  // (model selection); 0 disables it. Default 0.1.
  double validation_fraction = 0.1;
};

struct TimeSplit {
  // Histories (they predate the log) plus clicks and impressions before
  // validation_start_ms.
  TrainData train;
  std::vector<Impression> validation;  // ts in [validation_start, test_start)
  std::vector<Impression> test;        // ts >= test_start_ms
  int64_t validation_start_ms = 0;
  int64_t test_start_ms = 0;
};

// Splits by time so that no impression of the training period is later than
// one held out; impressions with equal timestamps stay on the same side.
Result<TimeSplit> SplitByTime(const Dataset& data,
                              const TimeSplitOptions& options);

// -------------------------------------------------------------- prequential

// A half-open range [begin, end) of Dataset::impressions().
struct Window {
  size_t begin = 0;
  size_t end = 0;
  int64_t start_ms = 0;  // ts of the first impression
  int64_t end_ms = 0;    // ts of the last impression
};

// Cuts the time-ordered stream into `num_windows` windows of about equal
// impression counts (equal timestamps never straddle a boundary, so there
// may be fewer windows). Prequential evaluation tests on window w with what
// was learned from windows < w, then learns window w.
std::vector<Window> PrequentialWindows(const Dataset& data,
                                       uint32_t num_windows);

// The training data of one window: its impressions and clicks, plus the
// history column of each user not yet marked in `users_seen` (histories
// predate the log, so they are learned when the user first shows up).
// Marks the window's users in `users_seen` (size num_users; not owned).
TrainData WindowData(const Dataset& data, const Window& window,
                     std::vector<uint8_t>* users_seen);

// ------------------------------------------------------------------ coldness

// CPR section 4.3.2 / Table 4: an item is "low" with < 5 training
// interactions, "middle" with 5 to 15, "high" with > 15.
enum class Coldness { kLow = 0, kMiddle = 1, kHigh = 2 };
Coldness ColdnessOf(uint32_t train_interactions);
std::string_view ColdnessName(Coldness c);

// Training positives per item (index = item id).
std::vector<uint32_t> ItemInteractionCounts(const TrainData& train);

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_SPLIT_H_
