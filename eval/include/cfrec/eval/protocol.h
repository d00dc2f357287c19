// The three evaluation protocols, each running one Model on one Dataset.
//
// - Leave-one-out (CPR 4.1.3, ACL A.6.2): HR@k, NDCG@k and AUC of each
//   user's last clicked item against 100 sampled never-interacted items, and
//   against all never-interacted items; per coldness bucket too. Iterative
//   models pick their epoch on the validation items only.
// - Time split: impressions after a cut-off ranked as shown, with MIND's
//   AUC, MRR, nDCG@5 and nDCG@10.
// - Prequential: the stream cut into windows; each window is scored by the
//   model trained on the windows before it, then learned.
//
// Functions run on the calling thread and hold no state between calls.
#ifndef CFREC_EVAL_PROTOCOL_H_
#define CFREC_EVAL_PROTOCOL_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/metrics.h"
#include "cfrec/eval/model.h"
#include "cfrec/eval/split.h"
#include "cfrec/schemas/status.h"

namespace cfrec::eval {

// Progress of a long run: (done, total). May be empty.
using ProgressFn = std::function<void(size_t done, size_t total)>;

// One point of a learning curve (one training epoch).
struct CurvePoint {
  int epoch = 0;
  double train_loss = 0;
  double valid_hr = 0;    // validation HR@k in the selection mode
  double valid_ndcg = 0;  // validation NDCG@k in the selection mode
};

struct LooProtocolOptions {
  LeaveOneOutOptions split;  // negatives, seed, minimum positives
  int k = 10;                // cut-off of HR and NDCG. Default 10.
  // Also rank each held-out item against every item the user never
  // interacted with (100 negatives saturate on small catalogues). Model
  // selection then uses this mode. Default true.
  bool all_items = true;
  // Stop an iterative model after this many epochs without a better
  // validation NDCG@k. Default 5.
  int patience = 5;
  uint64_t seed = 1;  // passed to Model::Fit. Default 1.
};

// HR@k, NDCG@k, AUC averaged over held-out users.
struct HeldOutSummary {
  Mean hr;
  Mean ndcg;
  Mean auc;
};

struct LooResult {
  HeldOutSummary test_sampled;  // vs. the sampled negatives
  HeldOutSummary test_all;      // vs. all non-interacted (if all_items)
  HeldOutSummary valid_sampled;
  HeldOutSummary valid_all;
  // Test metrics (sampled negatives) by the test item's coldness (CPR
  // Table 4), indexed by Coldness; and the same for all-items ranking.
  std::array<HeldOutSummary, 3> coldness_sampled;
  std::array<HeldOutSummary, 3> coldness_all;
  std::vector<CurvePoint> curve;  // empty for models without epochs
  int best_epoch = 0;             // 0 for models without epochs
  size_t train_positives = 0;
  size_t train_impressions = 0;
  double fit_seconds = 0;
  double validation_seconds = 0;  // of fit_seconds: the per-epoch validation
  double eval_seconds = 0;
};

Result<LooResult> RunLeaveOneOut(Model& model, const Dataset& data,
                                 const LooProtocolOptions& options,
                                 const ProgressFn& progress = {});

// MIND impression metrics averaged over valid impressions.
struct ImpressionSummary {
  Mean auc;
  Mean mrr;
  Mean ndcg5;
  Mean ndcg10;
  size_t skipped = 0;  // lists without a click or without a non-click
  void Add(const ImpressionMetrics& m);
  void Merge(const ImpressionSummary& other);
};

// Scores every impression with the model.
ImpressionSummary ScoreImpressions(const Model& model,
                                   const std::vector<Impression>& impressions);

struct TimeSplitProtocolOptions {
  TimeSplitOptions split;
  int patience = 5;   // as in LooProtocolOptions. Default 5.
  uint64_t seed = 1;  // Default 1.
};

struct TimeSplitResult {
  ImpressionSummary test;
  ImpressionSummary validation;   // of the selected epoch
  std::vector<CurvePoint> curve;  // valid_hr holds validation AUC, valid_ndcg
                                  // validation nDCG@10
  int best_epoch = 0;
  int64_t validation_start_ms = 0;
  int64_t test_start_ms = 0;
  size_t train_impressions = 0;
  double fit_seconds = 0;
  double eval_seconds = 0;
};

Result<TimeSplitResult> RunTimeSplit(Model& model, const Dataset& data,
                                     const TimeSplitProtocolOptions& options,
                                     const ProgressFn& progress = {});

struct PrequentialOptions {
  // Windows of the stream; window 0 only trains. Default 10.
  uint32_t num_windows = 10;
  uint64_t seed = 1;  // Default 1.
};

struct WindowResult {
  Window window;
  ImpressionSummary metrics;  // of this window, before learning it
  double train_seconds = 0;   // learning this window
};

struct PrequentialResult {
  std::vector<WindowResult> windows;  // windows 1..n-1
  ImpressionSummary overall;          // over all scored impressions
  bool incremental = false;           // Model::Update was used (else refits)
};

Result<PrequentialResult> RunPrequential(Model& model, const Dataset& data,
                                         const PrequentialOptions& options,
                                         const ProgressFn& progress = {});

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_PROTOCOL_H_
