// OnlineQuality: the service measuring itself. Every arriving impression is
// scored by the snapshot being served at that moment, before anything
// learns from it, and so is the decayed-CTR baseline (clicks + 0.1) /
// (shows + 3) at a 6 h half-life, kept here in event time. Clicks that
// arrive later join their list; a list is judged once `label_window_ms` of
// event time has passed since it was shown (or at once when its clicks came
// with it). Lists with a click and a non-click give MIND's AUC and nDCG@10;
// the mean of the last `window_lists` of them is the rolling figure.
//
// Thread-safety: none; the trainer thread owns it. Its figures reach
// readers through TrainingStats.
#ifndef CFREC_LEARNER_SRC_ONLINE_QUALITY_H_
#define CFREC_LEARNER_SRC_ONLINE_QUALITY_H_

#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "cfrec/learner/snapshot.h"
#include "cfrec/state/applied_event.h"
#include "cfrec/stream/item_counters.h"

namespace cfrec::learner {

struct OnlineQualityOptions {
  int64_t label_window_ms = 10 * 60 * 1000;  // Default 10 min.
  size_t window_lists = 2000;                // Default 2,000.
  size_t max_open_lists = 50000;             // Default 50,000.
};

class OnlineQuality {
 public:
  explicit OnlineQuality(OnlineQualityOptions options = {});

  // Call with each batch before anything trains on it; `served` is the
  // snapshot being served (may be null: nothing is scored).
  void Observe(std::span<const state::AppliedEvent> events,
               const ModelSnapshot* served);
  // Writes the rolling figures into `stats` (the online_* fields).
  void Fill(TrainingStats* stats) const;

 private:
  struct OpenList {
    int64_t shown_ms = 0;
    std::vector<float> model;
    std::vector<float> baseline;
    std::vector<uint8_t> clicked;
  };
  struct Judged {
    double auc = 0, ndcg10 = 0, base_auc = 0, base_ndcg10 = 0;
  };

  void ScoreServed(const state::AppliedEvent& e, const ModelSnapshot& served,
                   std::vector<float>* out);
  void Judge(const OpenList& list);
  void JudgeMatured(int64_t now_ms);

  OnlineQualityOptions options_;
  stream::ItemCounters counters_;
  std::unordered_map<uint64_t, OpenList> open_;
  std::deque<std::pair<int64_t, uint64_t>> order_;  // (shown_ms, key)
  std::deque<Judged> recent_;
  Judged sum_;  // over recent_
  // Popularity rank of each item in the served snapshot (stream features
  // off), rebuilt when the snapshot changes.
  std::unordered_map<uint32_t, uint32_t> popular_rank_;
  uint64_t popular_version_ = 0;
  uint64_t judged_ = 0;
  uint64_t since_evict_ = 0;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_ONLINE_QUALITY_H_
