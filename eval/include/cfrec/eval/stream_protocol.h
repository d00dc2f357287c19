// The streaming protocol (`cfrec eval --protocol stream`): the log replayed
// in time order, as the service lives it. Each impression is scored with
// the snapshot current at its moment, then learned:
//
//  - the stream model (cfrec::stream: decayed counters and the online
//    feature model) learns every impression at once, as the service's
//    trainer does;
//  - the serving snapshot (the stream scorer, the ranker's parameters, the
//    users' clicked items) is refreshed every `refresh_events` impressions
//    or `refresh_minutes` of event time, whichever comes first; the ranker
//    learns the impressions since the last refresh at each refresh
//    (Model::Update: one pass, plus counterfactual samples with an
//    intervention);
//  - baselines are scored on the same impressions at the same moments and
//    updated after every impression (the strongest form of each): random,
//    all-time clicks, and decayed clicks and decayed smoothed CTR
//    ((clicks + 0.1) / (shows + 3)) at several half-lives.
//
// Deterministic for a seed: one thread, no wall-clock decisions.
#ifndef CFREC_EVAL_STREAM_PROTOCOL_H_
#define CFREC_EVAL_STREAM_PROTOCOL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/model.h"
#include "cfrec/eval/protocol.h"
#include "cfrec/schemas/status.h"
#include "cfrec/stream/stream_model.h"

namespace cfrec::eval {

struct StreamProtocolOptions {
  // Combine the ranker with the stream features (the service's default).
  // Off: the ranker alone, and unknown users get the all-time popularity
  // list (the service's behaviour without stream features).
  bool stream_features = true;
  stream::StreamOptions stream;
  // Train the feature model on the item rows the snapshot served (as the
  // service does) rather than on rows of the list's own moment.
  bool train_on_served_rows = true;
  // Snapshot refresh: every this many impressions... Default 200.
  uint32_t refresh_events = 200;
  // ...or this much event time, whichever comes first (0: events only).
  // Default 10 minutes.
  double refresh_minutes = 10;
  // Half-life of the decayed baselines reported as "ctr_decayed" and
  // "clicks_decayed" (the others use 0.5, 2 and 24 h). Default 6 h.
  double half_life_hours = 6;
  // Points of the quality-over-time curve. Default 24.
  uint32_t curve_points = 24;
  uint64_t seed = 1;
};

// One point of the curve: the impressions of an event-time bucket.
struct StreamCurvePoint {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  ImpressionSummary model;
  ImpressionSummary ctr_decayed;  // at half_life_hours
};

struct StreamResult {
  ImpressionSummary model;
  // By name: "random", "clicks", "clicks_decayed_6h", "ctr_decayed_0.5h",
  // ..., "ctr_decayed_24h".
  std::map<std::string, ImpressionSummary> baselines;
  std::string best_baseline;  // the baseline of highest AUC
  // A reference no streaming scorer can use: each item's smoothed CTR over
  // the whole log (past and future) except the scored list itself. It
  // bounds what item statistics alone can reach on the log.
  ImpressionSummary ctr_hindsight;
  std::vector<StreamCurvePoint> curve;
  // The model's quality on lists of users seen before vs seen first.
  ImpressionSummary returning_users;
  ImpressionSummary new_users;
  size_t refreshes = 0;
  stream::StreamStats stream_stats;
  std::vector<float> weights;  // the feature model's final weights
  double ranker_seconds = 0;   // in Model::Update
  double seconds = 0;
};

// `ranker` may be null: the stream features alone.
Result<StreamResult> RunStream(Model* ranker, const Dataset& data,
                               const StreamProtocolOptions& options,
                               const ProgressFn& progress = {});

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_STREAM_PROTOCOL_H_
