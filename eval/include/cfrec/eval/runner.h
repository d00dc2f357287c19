// One evaluation run end to end, as `cfrec eval` performs it: read a
// MIND-format log and a JSON config, build the model from a registry, run a
// protocol, and describe everything in one JSON object.
//
// Config file (all keys optional; unknown keys are rejected as typos):
//   {
//     "loo":         {"num_negatives": 100, "k": 10, "all_items": true,
//                     "patience": 5, "min_distinct_positives": 3},
//     "time_split":  {"test_fraction": 0.2, "validation_fraction": 0.1,
//                     "patience": 5},
//     "prequential": {"num_windows": 10},
//     "stream":      {"refresh_events": 200, "refresh_minutes": 10,
//                     "half_life_hours": 6, "curve_points": 24,
//                     "learning_rate": 0.1, "l2": 1e-4,
//                     "evict_after_hours": 72},
//     "models":      {"itemknn": {"k": 50, "shrink": 0}, "<ranker>": {...}}
//   }
#ifndef CFREC_EVAL_RUNNER_H_
#define CFREC_EVAL_RUNNER_H_

#include <cstdint>
#include <string>

#include "cfrec/eval/model.h"
#include "cfrec/eval/protocol.h"
#include "cfrec/schemas/status.h"

namespace cfrec::eval {

struct EvalRequest {
  std::string data_path;              // behaviors.tsv; required
  std::string ranker = "itemknn";     // or "none" with protocol stream.
  std::string intervention = "none";  // none|random|learned|oracle.
  std::string trainer = "default";    // default|ps|acl. Default default.
  std::string protocol = "loo";       // loo|impressions|prequential|stream.
  // --protocol stream: combine the ranker with the stream features.
  bool stream_features = true;
  uint64_t seed = 1;        // Default 1.
  std::string config_path;  // JSON file; empty = defaults
};

// Runs the request on the calling thread; thread-compatible (no shared
// state). `registry` is only read. The result is one line of JSON (no newline)
// holding the request, the effective configuration, dataset sizes, every
// metric, the learning curve or per-window metrics, and timings. `progress`
// (may be empty) receives (done, total) of the slowest phase.
Result<std::string> RunEvaluation(const EvalRequest& request,
                                  const ModelRegistry& registry,
                                  const ProgressFn& progress = {});

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_RUNNER_H_
