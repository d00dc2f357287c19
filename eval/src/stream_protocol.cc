#include "cfrec/eval/stream_protocol.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "cfrec/eval/metrics.h"

namespace cfrec::eval {
namespace {

constexpr double kMsPerHour = 3.6e6;
constexpr float kAbsent = std::numeric_limits<float>::quiet_NaN();

std::string HoursName(double h) {
  std::ostringstream s;
  s << h << "h";
  return s.str();
}

// Decayed impressions and clicks per item at one half-life, in event time.
class DecayedCounts {
 public:
  DecayedCounts(double half_life_hours, size_t num_items)
      : half_life_ms_(half_life_hours * kMsPerHour),
        shows_(num_items, 0.0),
        clicks_(num_items, 0.0),
        at_(num_items, 0) {}

  void Add(uint32_t item, int64_t ts, bool clicked) {
    Bring(item, ts);
    shows_[item] += 1;
    clicks_[item] += clicked ? 1 : 0;
  }
  double Clicks(uint32_t item, int64_t ts) const {
    return clicks_[item] * Factor(item, ts);
  }
  double Ctr(uint32_t item, int64_t ts) const {
    const double f = Factor(item, ts);
    return (clicks_[item] * f + 0.1) / (shows_[item] * f + 3);
  }

 private:
  double Factor(uint32_t item, int64_t ts) const {
    return ts > at_[item] ? std::exp2(-double(ts - at_[item]) / half_life_ms_)
                          : 1.0;
  }
  void Bring(uint32_t item, int64_t ts) {
    const double f = Factor(item, ts);
    shows_[item] *= f;
    clicks_[item] *= f;
    at_[item] = std::max(at_[item], ts);
  }

  double half_life_ms_;
  std::vector<double> shows_, clicks_;
  std::vector<int64_t> at_;
};

}  // namespace

Result<StreamResult> RunStream(Model* ranker, const Dataset& data,
                               const StreamProtocolOptions& options,
                               const ProgressFn& progress) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Impression>& imps = data.impressions();
  if (imps.empty())
    return Status::InvalidArgument("the log has no impressions");
  if (!options.stream_features && ranker == nullptr) {
    return Status::InvalidArgument(
        "stream features off needs a ranker (there is nothing else to score "
        "with)");
  }
  const uint32_t num_users = data.num_users();
  const uint32_t num_items = data.num_items();
  const auto& histories = data.histories();

  StreamResult result;
  stream::StreamModel live(options.stream);
  std::shared_ptr<const stream::StreamScorer> scorer = live.MakeScorer();

  // What the serving snapshot knows, as of the last refresh.
  std::vector<uint8_t> ranker_users(num_users, 0), ranker_items(num_items, 0);
  std::vector<std::vector<uint32_t>> snap_clicked(num_users);
  std::vector<float> snap_popularity(num_items, 0.0f);
  // Since the last refresh.
  TrainData increment;
  increment.num_users = num_users;
  increment.num_items = num_items;
  std::vector<std::pair<uint32_t, uint32_t>> new_clicks;  // (user, item)
  std::vector<uint8_t> seen_user(num_users, 0), history_given(num_users, 0);
  bool fitted = false;

  // Baselines.
  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<float> uniform(0, 1);
  std::vector<float> all_clicks(num_items, 0.0f);
  std::vector<double> halves = {0.5, 2, 6, 24};
  if (std::find(halves.begin(), halves.end(), options.half_life_hours) ==
      halves.end()) {
    halves.push_back(options.half_life_hours);
  }
  std::vector<DecayedCounts> decayed;
  for (double h : halves) decayed.emplace_back(h, num_items);
  const size_t main_half = static_cast<size_t>(
      std::find(halves.begin(), halves.end(), options.half_life_hours) -
      halves.begin());
  const std::string clicks_decayed_name =
      "clicks_decayed_" + HoursName(options.half_life_hours);

  // The hindsight reference: whole-log counts.
  std::vector<float> log_shows(num_items, 0.0f), log_clicks(num_items, 0.0f);
  for (const Impression& imp : imps) {
    for (size_t j = 0; j < imp.items.size(); ++j) {
      log_shows[imp.items[j]] += 1;
      log_clicks[imp.items[j]] += imp.clicked[j] != 0;
    }
  }

  // Curve buckets.
  const int64_t t0 = imps.front().ts_ms;
  const int64_t t1 = imps.back().ts_ms;
  const uint32_t points = std::max<uint32_t>(1, options.curve_points);
  const double width = std::max(1.0, double(t1 - t0 + 1) / points);
  result.curve.resize(points);
  for (uint32_t b = 0; b < points; ++b) {
    result.curve[b].start_ms = t0 + static_cast<int64_t>(b * width);
    result.curve[b].end_ms = t0 + static_cast<int64_t>((b + 1) * width);
  }

  auto refresh = [&]() -> Status {
    if (ranker != nullptr && !increment.impressions.empty()) {
      const auto r0 = std::chrono::steady_clock::now();
      if (!fitted) {
        FitContext context;
        context.seed = options.seed;
        context.on_epoch = [](const EpochStats&) {
          return EpochVerdict::kStop;
        };
        CFREC_RETURN_IF_ERROR(ranker->Fit(increment, context));
        fitted = true;
      } else {
        CFREC_RETURN_IF_ERROR(ranker->Update(increment));
      }
      result.ranker_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - r0)
              .count();
      for (const Impression& imp : increment.impressions) {
        ranker_users[imp.user] = 1;
        for (uint32_t i : imp.items) ranker_items[i] = 1;
      }
      for (const Interaction& x : increment.positives) ranker_items[x.item] = 1;
    }
    increment.impressions.clear();
    increment.positives.clear();
    for (const auto& [u, i] : new_clicks) {
      auto& v = snap_clicked[u];
      auto at = std::lower_bound(v.begin(), v.end(), i);
      if (at == v.end() || *at != i) v.insert(at, i);
    }
    new_clicks.clear();
    snap_popularity = all_clicks;
    scorer = live.MakeScorer();
    ++result.refreshes;
    return Status::Ok();
  };

  const double refresh_ms = options.refresh_minutes * 60 * 1000;
  int64_t last_refresh_ts = t0;
  uint32_t since_refresh = 0;
  std::vector<float> ranker_scores, scores, base;
  std::vector<uint16_t> clicked_pos;
  for (size_t n = 0; n < imps.size(); ++n) {
    const Impression& imp = imps[n];
    if (since_refresh >= options.refresh_events ||
        (refresh_ms > 0 && double(imp.ts_ms - last_refresh_ts) >= refresh_ms)) {
      CFREC_RETURN_IF_ERROR(refresh());
      since_refresh = 0;
      last_refresh_ts = imp.ts_ms;
    }
    const size_t k = imp.items.size();
    // 1. Score with the snapshot of this moment.
    ranker_scores.assign(k, kAbsent);
    const bool user_known = ranker != nullptr && ranker_users[imp.user];
    if (user_known) {
      std::vector<float> raw(k);
      ranker->Score(imp.user, imp.items, raw);
      for (size_t j = 0; j < k; ++j) {
        if (ranker_items[imp.items[j]]) ranker_scores[j] = raw[j];
      }
    }
    scores.assign(k, 0.0f);
    if (options.stream_features) {
      scorer->ScoreItems(imp.user, imp.items, snap_clicked[imp.user],
                         ranker_scores, scores);
    } else if (user_known) {
      for (size_t j = 0; j < k; ++j) {
        scores[j] = std::isnan(ranker_scores[j]) ? -1e30f : ranker_scores[j];
      }
    } else {
      for (size_t j = 0; j < k; ++j) scores[j] = snap_popularity[imp.items[j]];
    }
    const ImpressionMetrics m = ScoreImpression(scores, imp.clicked);
    result.model.Add(m);
    (seen_user[imp.user] ? result.returning_users : result.new_users).Add(m);
    const size_t bucket = std::min<size_t>(
        points - 1, static_cast<size_t>(double(imp.ts_ms - t0) / width));
    result.curve[bucket].model.Add(m);

    // 2. Baselines at the same moment.
    base.resize(k);
    for (size_t j = 0; j < k; ++j) base[j] = uniform(rng);
    result.baselines["random"].Add(ScoreImpression(base, imp.clicked));
    for (size_t j = 0; j < k; ++j) {
      const uint32_t i = imp.items[j];
      base[j] = (log_clicks[i] - float(imp.clicked[j] != 0) + 0.1f) /
                (log_shows[i] - 1 + 3);
    }
    result.ctr_hindsight.Add(ScoreImpression(base, imp.clicked));
    for (size_t j = 0; j < k; ++j) base[j] = all_clicks[imp.items[j]];
    result.baselines["clicks"].Add(ScoreImpression(base, imp.clicked));
    for (size_t j = 0; j < k; ++j) {
      base[j] = static_cast<float>(
          decayed[main_half].Clicks(imp.items[j], imp.ts_ms));
    }
    result.baselines[clicks_decayed_name].Add(
        ScoreImpression(base, imp.clicked));
    for (size_t h = 0; h < halves.size(); ++h) {
      for (size_t j = 0; j < k; ++j) {
        base[j] = static_cast<float>(decayed[h].Ctr(imp.items[j], imp.ts_ms));
      }
      const ImpressionMetrics b = ScoreImpression(base, imp.clicked);
      result.baselines["ctr_decayed_" + HoursName(halves[h])].Add(b);
      if (h == main_half) result.curve[bucket].ctr_decayed.Add(b);
    }

    // 3. Learn it.
    clicked_pos.clear();
    for (size_t j = 0; j < k; ++j) {
      if (imp.clicked[j]) clicked_pos.push_back(static_cast<uint16_t>(j));
    }
    std::span<const uint32_t> history;
    if (!history_given[imp.user]) {
      history_given[imp.user] = 1;
      history = histories[imp.user];
      for (uint32_t h : history) {
        new_clicks.emplace_back(imp.user, h);
        increment.positives.push_back({imp.user, h, kHistoryTimestamp});
      }
    }
    if (options.stream_features) {
      live.OnImpression(imp.user, imp.ts_ms, imp.items, clicked_pos, history,
                        ranker_scores,
                        options.train_on_served_rows ? scorer.get() : nullptr);
    }
    for (size_t j = 0; j < k; ++j) {
      for (DecayedCounts& d : decayed) {
        d.Add(imp.items[j], imp.ts_ms, imp.clicked[j] != 0);
      }
      if (imp.clicked[j]) {
        all_clicks[imp.items[j]] += 1;
        new_clicks.emplace_back(imp.user, imp.items[j]);
        increment.positives.push_back({imp.user, imp.items[j], imp.ts_ms});
      }
    }
    increment.impressions.push_back(imp);
    seen_user[imp.user] = 1;
    ++since_refresh;
    if (progress && (n % 500 == 0 || n + 1 == imps.size())) {
      progress(n + 1, imps.size());
    }
  }

  double best = -1;
  for (const auto& [name, s] : result.baselines) {
    if (name != "random" && s.auc.value() > best) {
      best = s.auc.value();
      result.best_baseline = name;
    }
  }
  result.stream_stats = live.Stats();
  const auto& w = live.model().weights();
  result.weights.assign(w.begin(), w.end());
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return result;
}

}  // namespace cfrec::eval
