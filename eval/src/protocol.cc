#include "cfrec/eval/protocol.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace cfrec::eval {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void AddTo(HeldOutSummary* s, const HeldOutMetrics& m) {
  s->hr.Add(m.hr);
  s->ndcg.Add(m.ndcg);
  s->auc.Add(m.auc);
}

// Scores `item` against `negatives` for `user`. The candidates go to the
// model in one call: position 0 is the held-out item.
HeldOutMetrics ScoreOne(const Model& model, uint32_t user, uint32_t item,
                        const std::vector<uint32_t>& negatives, int k,
                        std::vector<uint32_t>* candidates,
                        std::vector<float>* scores) {
  candidates->clear();
  candidates->push_back(item);
  candidates->insert(candidates->end(), negatives.begin(), negatives.end());
  scores->assign(candidates->size(), 0.0f);
  model.Score(user, *candidates, *scores);
  return ScoreHeldOut((*scores)[0], std::span<const float>(*scores).subspan(1),
                      k);
}

struct HeldOutEval {
  HeldOutSummary sampled;
  HeldOutSummary all;
  std::array<HeldOutSummary, 3> coldness_sampled;
  std::array<HeldOutSummary, 3> coldness_all;
};

// Evaluates every held-out item; `item_counts` (may be null) buckets them.
HeldOutEval EvaluateHeldOut(const Model& model, const LeaveOneOutSplit& split,
                            const std::vector<HeldOut>& held_out,
                            uint32_t num_items, bool all_items, int k,
                            const std::vector<uint32_t>* item_counts,
                            const ProgressFn& progress) {
  HeldOutEval out;
  std::vector<uint32_t> candidates;
  std::vector<float> scores;
  for (size_t n = 0; n < held_out.size(); ++n) {
    const HeldOut& h = held_out[n];
    const HeldOutMetrics sampled =
        ScoreOne(model, h.user, h.item, h.negatives, k, &candidates, &scores);
    AddTo(&out.sampled, sampled);
    size_t bucket = 0;
    if (item_counts != nullptr) {
      bucket = static_cast<size_t>(ColdnessOf((*item_counts)[h.item]));
      AddTo(&out.coldness_sampled[bucket], sampled);
    }
    if (all_items) {
      const HeldOutMetrics all = ScoreOne(
          model, h.user, h.item, NonInteracted(split, num_items, h.user), k,
          &candidates, &scores);
      AddTo(&out.all, all);
      if (item_counts != nullptr) AddTo(&out.coldness_all[bucket], all);
    }
    if (progress && (n % 64 == 63 || n + 1 == held_out.size())) {
      progress(n + 1, held_out.size());
    }
  }
  return out;
}

// Patience-based selection shared by the protocols: higher is better.
class Selector {
 public:
  explicit Selector(int patience) : patience_(patience) {}
  EpochVerdict Offer(int epoch, double value) {
    if (best_epoch_ == 0 || value > best_value_) {
      best_value_ = value;
      best_epoch_ = epoch;
      return EpochVerdict::kBest;
    }
    return epoch - best_epoch_ >= patience_ ? EpochVerdict::kStop
                                            : EpochVerdict::kContinue;
  }
  int best_epoch() const { return best_epoch_; }

 private:
  int patience_;
  int best_epoch_ = 0;
  double best_value_ = 0;
};

}  // namespace

Result<LooResult> RunLeaveOneOut(Model& model, const Dataset& data,
                                 const LooProtocolOptions& options,
                                 const ProgressFn& progress) {
  if (options.k <= 0) return Status::InvalidArgument("loo: k must be > 0");
  Result<LeaveOneOutSplit> split_or = SplitLeaveOneOut(data, options.split);
  if (!split_or.ok()) return split_or.status();
  const LeaveOneOutSplit& split = *split_or;
  if (split.test.empty()) {
    return Status::InvalidArgument(
        "loo: no user has enough distinct positives to hold two out");
  }
  LooResult result;
  result.train_positives = split.train.positives.size();
  result.train_impressions = split.train.impressions.size();

  Selector selector(options.patience);
  FitContext context;
  context.seed = options.seed;
  context.on_epoch = [&](const EpochStats& stats) {
    const Clock::time_point valid_start = Clock::now();
    const HeldOutEval valid =
        EvaluateHeldOut(model, split, split.validation, data.num_items(),
                        options.all_items, options.k, nullptr, {});
    const HeldOutSummary& chosen =
        options.all_items ? valid.all : valid.sampled;
    result.curve.push_back({stats.epoch, stats.train_loss, chosen.hr.value(),
                            chosen.ndcg.value()});
    result.validation_seconds += SecondsSince(valid_start);
    return selector.Offer(stats.epoch, chosen.ndcg.value());
  };
  const Clock::time_point fit_start = Clock::now();
  CFREC_RETURN_IF_ERROR(model.Fit(split.train, context).WithContext("fit"));
  result.fit_seconds = SecondsSince(fit_start);
  result.best_epoch = selector.best_epoch();

  const Clock::time_point eval_start = Clock::now();
  const std::vector<uint32_t> counts = ItemInteractionCounts(split.train);
  const HeldOutEval valid =
      EvaluateHeldOut(model, split, split.validation, data.num_items(),
                      options.all_items, options.k, nullptr, {});
  const HeldOutEval test =
      EvaluateHeldOut(model, split, split.test, data.num_items(),
                      options.all_items, options.k, &counts, progress);
  result.valid_sampled = valid.sampled;
  result.valid_all = valid.all;
  result.test_sampled = test.sampled;
  result.test_all = test.all;
  result.coldness_sampled = test.coldness_sampled;
  result.coldness_all = test.coldness_all;
  result.eval_seconds = SecondsSince(eval_start);
  return result;
}

void ImpressionSummary::Add(const ImpressionMetrics& m) {
  if (!m.valid) {
    ++skipped;
    return;
  }
  auc.Add(m.auc);
  mrr.Add(m.mrr);
  ndcg5.Add(m.ndcg5);
  ndcg10.Add(m.ndcg10);
}

void ImpressionSummary::Merge(const ImpressionSummary& other) {
  auc.Merge(other.auc);
  mrr.Merge(other.mrr);
  ndcg5.Merge(other.ndcg5);
  ndcg10.Merge(other.ndcg10);
  skipped += other.skipped;
}

ImpressionSummary ScoreImpressions(const Model& model,
                                   const std::vector<Impression>& impressions) {
  ImpressionSummary out;
  std::vector<float> scores;
  for (const Impression& imp : impressions) {
    scores.assign(imp.items.size(), 0.0f);
    model.Score(imp.user, imp.items, scores);
    out.Add(ScoreImpression(scores, imp.clicked));
  }
  return out;
}

Result<TimeSplitResult> RunTimeSplit(Model& model, const Dataset& data,
                                     const TimeSplitProtocolOptions& options,
                                     const ProgressFn& progress) {
  Result<TimeSplit> split_or = SplitByTime(data, options.split);
  if (!split_or.ok()) return split_or.status();
  const TimeSplit& split = *split_or;
  TimeSplitResult result;
  result.validation_start_ms = split.validation_start_ms;
  result.test_start_ms = split.test_start_ms;
  result.train_impressions = split.train.impressions.size();

  Selector selector(options.patience);
  FitContext context;
  context.seed = options.seed;
  if (!split.validation.empty()) {
    context.on_epoch = [&](const EpochStats& stats) {
      const ImpressionSummary v = ScoreImpressions(model, split.validation);
      result.curve.push_back(
          {stats.epoch, stats.train_loss, v.auc.value(), v.ndcg10.value()});
      return selector.Offer(stats.epoch, v.auc.value());
    };
  }
  const Clock::time_point fit_start = Clock::now();
  CFREC_RETURN_IF_ERROR(model.Fit(split.train, context).WithContext("fit"));
  result.fit_seconds = SecondsSince(fit_start);
  result.best_epoch = selector.best_epoch();
  const Clock::time_point eval_start = Clock::now();
  result.validation = ScoreImpressions(model, split.validation);
  result.test = ScoreImpressions(model, split.test);
  if (progress) progress(1, 1);
  result.eval_seconds = SecondsSince(eval_start);
  return result;
}

Result<PrequentialResult> RunPrequential(Model& model, const Dataset& data,
                                         const PrequentialOptions& options,
                                         const ProgressFn& progress) {
  const std::vector<Window> windows =
      PrequentialWindows(data, options.num_windows);
  if (windows.size() < 2) {
    return Status::InvalidArgument(
        "prequential: the log yields fewer than two time windows");
  }
  PrequentialResult result;
  std::vector<uint8_t> users_seen;
  TrainData seen = WindowData(data, windows[0], &users_seen);
  FitContext context;
  context.seed = options.seed;
  CFREC_RETURN_IF_ERROR(model.Fit(seen, context).WithContext("fit window 0"));
  bool incremental = true;
  for (size_t w = 1; w < windows.size(); ++w) {
    WindowResult wr;
    wr.window = windows[w];
    const std::vector<Impression> window_imps(
        data.impressions().begin() + windows[w].begin,
        data.impressions().begin() + windows[w].end);
    wr.metrics = ScoreImpressions(model, window_imps);
    result.overall.Merge(wr.metrics);
    TrainData delta = WindowData(data, windows[w], &users_seen);
    const Clock::time_point start = Clock::now();
    if (w + 1 < windows.size()) {  // the last window is never used again
      Status st =
          incremental ? model.Update(delta) : Status::Unsupported("refit");
      if (st.code() == StatusCode::kUnsupported) {
        incremental = false;
        seen.positives.insert(seen.positives.end(), delta.positives.begin(),
                              delta.positives.end());
        seen.impressions.insert(seen.impressions.end(),
                                delta.impressions.begin(),
                                delta.impressions.end());
        // History positives of newly seen users sort before every click.
        std::stable_sort(seen.positives.begin(), seen.positives.end(),
                         [](const Interaction& a, const Interaction& b) {
                           return a.ts_ms < b.ts_ms;
                         });
        st = model.Fit(seen, context);
      }
      CFREC_RETURN_IF_ERROR(
          st.WithContext("learn window " + std::to_string(w)));
    }
    wr.train_seconds = SecondsSince(start);
    result.windows.push_back(std::move(wr));
    if (progress) progress(w, windows.size() - 1);
  }
  result.incremental = incremental;
  return result;
}

}  // namespace cfrec::eval
