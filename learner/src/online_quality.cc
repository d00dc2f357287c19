#include "online_quality.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cfrec/eval/metrics.h"
#include "cfrec/stream/stream_model.h"

namespace cfrec::learner {
namespace {

constexpr int kBaselineHalfLife = 2;  // index of 6 h in stream::kHalfLifeHours
constexpr uint64_t kEvictEvery = 4096;  // impressions between evictions

}  // namespace

OnlineQuality::OnlineQuality(OnlineQualityOptions options)
    : options_(options), counters_(int64_t{72} * 3600 * 1000) {}

void OnlineQuality::ScoreServed(const state::AppliedEvent& e,
                                const ModelSnapshot& served,
                                std::vector<float>* out) {
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  const size_t n = e.items.size();
  const bool user_known = e.user < served.num_users();
  std::vector<float> ranker(n, kNaN);
  std::vector<uint32_t> known;
  std::vector<size_t> at;
  for (size_t k = 0; k < n; ++k) {
    if (e.items[k] < served.num_items()) {
      known.push_back(e.items[k]);
      at.push_back(k);
    }
  }
  if (user_known && !known.empty()) {
    std::vector<float> s(known.size());
    served.Score(e.user, known, s);
    for (size_t j = 0; j < known.size(); ++j) {
      if (std::isfinite(s[j])) ranker[at[j]] = s[j];
    }
  }
  out->assign(n, 0.0f);
  if (const stream::StreamScorer* sc = served.stream(); sc != nullptr) {
    const std::span<const uint32_t> clicked =
        user_known ? served.ClickedItems(e.user) : std::span<const uint32_t>();
    sc->ScoreItems(e.user, e.items, clicked, ranker, *out);
    return;
  }
  if (user_known) {
    for (size_t k = 0; k < n; ++k) {
      (*out)[k] = std::isnan(ranker[k]) ? -1e30f : ranker[k];
    }
    return;
  }
  // Without stream features an unknown user gets the popularity list:
  // ranks by item, built once per served snapshot.
  if (popular_version_ != served.version() || popular_rank_.empty()) {
    popular_rank_.clear();
    const std::span<const uint32_t> popular = served.PopularItems();
    for (size_t i = 0; i < popular.size(); ++i) {
      popular_rank_.try_emplace(popular[i], static_cast<uint32_t>(i));
    }
    popular_version_ = served.version();
  }
  const float last = -float(popular_rank_.size());
  for (size_t k = 0; k < n; ++k) {
    auto it = popular_rank_.find(e.items[k]);
    (*out)[k] = it == popular_rank_.end() ? last : -float(it->second);
  }
}

void OnlineQuality::Observe(std::span<const state::AppliedEvent> events,
                            const ModelSnapshot* served) {
  for (const state::AppliedEvent& e : events) {
    if (e.kind == state::AppliedEvent::Kind::kClick) {
      if (!e.clicked.empty() && e.clicked.front() < e.items.size()) {
        auto it = open_.find(stream::ListKey(e.user, e.items));
        if (it != open_.end() && it->second.clicked.size() == e.items.size()) {
          it->second.clicked[e.clicked.front()] = 1;
        }
        counters_.AddClick(e.items[e.clicked.front()], e.ts_ms);
      }
      JudgeMatured(counters_.now());
      continue;
    }
    counters_.AdvanceTo(e.ts_ms);
    if (served != nullptr && !e.items.empty()) {
      OpenList list;
      list.shown_ms = counters_.now();
      ScoreServed(e, *served, &list.model);
      list.baseline.resize(e.items.size());
      for (size_t k = 0; k < e.items.size(); ++k) {
        const stream::ItemCounts* c = counters_.Find(e.items[k]);
        const stream::ItemCounts now =
            c != nullptr ? c->At(counters_.now()) : stream::ItemCounts{};
        list.baseline[k] =
            static_cast<float>((now.clicks[kBaselineHalfLife] + 0.1) /
                               (now.shows[kBaselineHalfLife] + 3));
      }
      list.clicked.assign(e.items.size(), 0);
      for (uint16_t p : e.clicked) {
        if (p < e.items.size()) list.clicked[p] = 1;
      }
      const uint64_t key = stream::ListKey(e.user, e.items);
      if (open_.insert_or_assign(key, std::move(list)).second) {
        order_.push_back({counters_.now(), key});
      }
    }
    for (size_t k = 0; k < e.items.size(); ++k) {
      counters_.AddShown(e.items[k], e.ts_ms);
    }
    for (uint16_t p : e.clicked) {
      if (p < e.items.size()) counters_.AddClick(e.items[p], e.ts_ms);
    }
    JudgeMatured(counters_.now());
    if (++since_evict_ >= kEvictEvery) {
      since_evict_ = 0;
      counters_.Evict();  // the baseline's counters stay bounded too
    }
  }
}

void OnlineQuality::JudgeMatured(int64_t now_ms) {
  while (!order_.empty() &&
         (order_.front().first + options_.label_window_ms <= now_ms ||
          order_.size() > options_.max_open_lists)) {
    auto it = open_.find(order_.front().second);
    if (it != open_.end()) {
      Judge(it->second);
      open_.erase(it);
    }
    order_.pop_front();
  }
}

void OnlineQuality::Judge(const OpenList& list) {
  const eval::ImpressionMetrics m =
      eval::ScoreImpression(list.model, list.clicked);
  if (!m.valid) return;
  const eval::ImpressionMetrics b =
      eval::ScoreImpression(list.baseline, list.clicked);
  Judged j{m.auc, m.ndcg10, b.auc, b.ndcg10};
  recent_.push_back(j);
  sum_.auc += j.auc;
  sum_.ndcg10 += j.ndcg10;
  sum_.base_auc += j.base_auc;
  sum_.base_ndcg10 += j.base_ndcg10;
  if (recent_.size() > options_.window_lists) {
    const Judged& old = recent_.front();
    sum_.auc -= old.auc;
    sum_.ndcg10 -= old.ndcg10;
    sum_.base_auc -= old.base_auc;
    sum_.base_ndcg10 -= old.base_ndcg10;
    recent_.pop_front();
  }
  ++judged_;
}

void OnlineQuality::Fill(TrainingStats* stats) const {
  stats->online_lists = judged_;
  const double n = static_cast<double>(recent_.size());
  if (n == 0) return;
  stats->online_auc = sum_.auc / n;
  stats->online_ndcg10 = sum_.ndcg10 / n;
  stats->online_baseline_auc = sum_.base_auc / n;
  stats->online_baseline_ndcg10 = sum_.base_ndcg10 / n;
}

}  // namespace cfrec::learner
