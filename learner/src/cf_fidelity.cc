#include "cf_fidelity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <unordered_set>

namespace cfrec::learner::cf {
namespace {

constexpr size_t kMaxUsers = 1000;    // p_R AUC: users sampled
constexpr size_t kMaxNotShown = 200;  // p_R AUC: non-shown items per user
constexpr size_t kFreshLists = 3000;  // synthetic held-out lists
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

float Dot(const float* a, const float* b, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// AUC of positives against negatives (ties half), by ranks.
double Auc(std::vector<float> pos, std::vector<float> neg) {
  if (pos.empty() || neg.empty()) return kNaN;
  std::sort(neg.begin(), neg.end());
  double wins = 0;
  for (float p : pos) {
    auto lo = std::lower_bound(neg.begin(), neg.end(), p);
    auto hi = std::upper_bound(lo, neg.end(), p);
    wins += double(lo - neg.begin()) + 0.5 * double(hi - lo);
  }
  return wins / (double(pos.size()) * double(neg.size()));
}

nlohmann::json Number(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json();
}

// p_S's logit of entry `position` of a list, beta at its posterior mean.
float SelectionScore(const SemView& v, uint32_t user, uint32_t item,
                     size_t position) {
  size_t pos = std::min<size_t>(position, size_t(v.max_positions) - 1);
  return Dot(v.x + size_t(user) * v.dim, v.y + size_t(item) * v.dim, v.dim) +
         v.w_s[pos] * v.mu_beta[pos];
}

float ImpressionScore(const SemView& v, uint32_t user, uint32_t item) {
  return Dot(v.p + size_t(user) * v.dim, v.q + size_t(item) * v.dim, v.dim) +
         v.w_r[item] * v.mu_alpha[item];
}

// ListAuc, also counting the lists used.
double ListAuc(const SemView& v, std::span<const eval::Impression> lists,
               const ListScorer& ranker, size_t* counted) {
  double auc_sum = 0;
  size_t n = 0;
  std::vector<float> pos, neg, scores;
  std::vector<uint32_t> items;
  for (const eval::Impression& imp : lists) {
    if (imp.user >= v.num_users) continue;
    items.clear();
    std::vector<size_t> at;
    for (size_t j = 0; j < imp.items.size(); ++j) {
      if (imp.items[j] >= v.num_items) continue;
      items.push_back(imp.items[j]);
      at.push_back(j);
    }
    scores.resize(items.size());
    if (ranker) {
      ranker(imp.user, items, scores);
    } else {
      for (size_t n2 = 0; n2 < items.size(); ++n2) {
        scores[n2] = SelectionScore(v, imp.user, items[n2], at[n2]);
      }
    }
    pos.clear();
    neg.clear();
    for (size_t n2 = 0; n2 < items.size(); ++n2) {
      size_t j = at[n2];
      (j < imp.clicked.size() && imp.clicked[j] ? pos : neg)
          .push_back(scores[n2]);
    }
    if (pos.empty() || neg.empty()) continue;
    auc_sum += Auc(pos, neg);
    ++n;
  }
  if (counted != nullptr) *counted = n;
  return n ? auc_sum / double(n) : kNaN;
}

}  // namespace

double MeanListAuc(std::span<const float> scores,
                   std::span<const uint8_t> labels, size_t list_size,
                   size_t* counted) {
  double sum = 0;
  size_t n = 0;
  std::vector<float> pos, neg;
  for (size_t b = 0; b + list_size <= scores.size(); b += list_size) {
    pos.clear();
    neg.clear();
    for (size_t j = b; j < b + list_size; ++j) {
      (labels[j] ? pos : neg).push_back(scores[j]);
    }
    if (pos.empty() || neg.empty()) continue;
    sum += Auc(pos, neg);
    ++n;
  }
  if (counted != nullptr) *counted = n;
  return n == 0 ? kNaN : sum / double(n);
}

double ListAuc(const SemView& v, std::span<const eval::Impression> lists,
               const ListScorer& ranker) {
  return ListAuc(v, lists, ranker, nullptr);
}

nlohmann::json SemFidelity(const SemView& v, const eval::TrainData& data,
                           const eval::TrueModel* truth, uint64_t seed,
                           const ListScorer& ranker) {
  nlohmann::json out;
  if (v.p == nullptr || v.x == nullptr || v.dim <= 0) return out;
  // p_S (and the ranker), training lists with a click and a non-click.
  size_t lists = 0;
  out["ps_auc_train"] = Number(ListAuc(v, data.impressions, {}, &lists));
  out["ps_lists_train"] = lists;
  if (ranker) {
    out["ranker_auc_train"] =
        Number(ListAuc(v, data.impressions, ranker, nullptr));
  }
  std::vector<float> pos, neg;

  // p_R (and the true exposure score), shown vs not shown per user.
  std::mt19937_64 rng(seed);
  std::vector<std::vector<uint32_t>> shown(v.num_users);
  for (const eval::Impression& imp : data.impressions) {
    if (imp.user >= v.num_users) continue;
    for (uint32_t i : imp.items) {
      if (i < v.num_items) shown[imp.user].push_back(i);
    }
  }
  std::vector<uint32_t> users;
  for (uint32_t u = 0; u < v.num_users; ++u) {
    auto& s = shown[u];
    std::sort(s.begin(), s.end());
    s.erase(std::unique(s.begin(), s.end()), s.end());
    if (!s.empty() && s.size() < v.num_items) users.push_back(u);
  }
  std::shuffle(users.begin(), users.end(), rng);
  if (users.size() > kMaxUsers) users.resize(kMaxUsers);
  const bool truth_ok = truth != nullptr && truth->num_users() >= v.num_users &&
                        truth->num_items() >= v.num_items;
  double pr_sum = 0, tr_sum = 0;
  std::uniform_int_distribution<uint32_t> any_item(
      0, static_cast<uint32_t>(std::max<size_t>(v.num_items, 1) - 1));
  std::vector<uint32_t> not_shown;
  std::vector<float> tpos, tneg;
  for (uint32_t u : users) {
    const auto& s = shown[u];
    not_shown.clear();
    if (v.num_items - s.size() <= kMaxNotShown) {
      for (uint32_t i = 0; i < v.num_items; ++i) {
        if (!std::binary_search(s.begin(), s.end(), i)) not_shown.push_back(i);
      }
    } else {
      while (not_shown.size() < kMaxNotShown) {
        uint32_t i = any_item(rng);
        if (!std::binary_search(s.begin(), s.end(), i)) not_shown.push_back(i);
      }
    }
    pos.clear();
    neg.clear();
    tpos.clear();
    tneg.clear();
    for (uint32_t i : s) {
      pos.push_back(ImpressionScore(v, u, i));
      if (truth_ok) tpos.push_back(float(truth->Exposure(u, i)));
    }
    for (uint32_t i : not_shown) {
      neg.push_back(ImpressionScore(v, u, i));
      if (truth_ok) tneg.push_back(float(truth->Exposure(u, i)));
    }
    pr_sum += Auc(pos, neg);
    if (truth_ok) tr_sum += Auc(tpos, tneg);
  }
  const double nu = double(users.size());
  out["pr_auc_train"] = Number(users.empty() ? kNaN : pr_sum / nu);
  out["pr_users"] = users.size();
  if (truth_ok) {
    out["pr_auc_train_true_model"] = Number(users.empty() ? kNaN : tr_sum / nu);
  }
  if (!truth_ok || v.num_users == 0) return out;

  // Fresh lists from the generator: users uniform, items by Gumbel-top-K
  // on the true exposure, clicks from the true response model.
  size_t k_len = 0;
  for (const eval::Impression& imp : data.impressions) {
    k_len = std::max(k_len, imp.items.size());
  }
  k_len = std::min(k_len, size_t(v.num_items));
  if (k_len < 2) return out;
  std::uniform_int_distribution<uint32_t> any_user(
      0, static_cast<uint32_t>(v.num_users - 1));
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<std::pair<double, uint32_t>> keys(v.num_items);
  std::vector<float> ps, true_logit, rs;
  std::vector<uint8_t> clicked;
  std::vector<uint32_t> fresh_items(k_len);
  for (size_t l = 0; l < kFreshLists; ++l) {
    uint32_t u = any_user(rng);
    for (uint32_t k = 0; k < v.num_items; ++k) {
      double g = -std::log(-std::log(std::max(unit(rng), 1e-300)));
      keys[k] = {truth->Exposure(u, k) + g, k};
    }
    std::partial_sort(keys.begin(),
                      keys.begin() + static_cast<std::ptrdiff_t>(k_len),
                      keys.end(), std::greater<>());
    if (ranker) {
      for (size_t j = 0; j < k_len; ++j) fresh_items[j] = keys[j].second;
      rs.resize(rs.size() + k_len);
      ranker(u, fresh_items,
             std::span<float>(rs.data() + rs.size() - k_len, k_len));
    }
    for (size_t j = 0; j < k_len; ++j) {
      uint32_t i = keys[j].second;
      ps.push_back(SelectionScore(v, u, i, j));
      true_logit.push_back(float(truth->ClickLogit(u, i)));
      double p = truth->ClickProbability(u, i);
      clicked.push_back(truth->noise_std() > 0 ? uint8_t(unit(rng) < p)
                                               : uint8_t(p > 0.5));
    }
  }
  size_t counted = 0;
  out["ps_auc_fresh"] = Number(MeanListAuc(ps, clicked, k_len, &counted));
  if (ranker) {
    out["ranker_auc_fresh"] = Number(MeanListAuc(rs, clicked, k_len, nullptr));
  }
  out["true_model_auc_fresh"] =
      Number(MeanListAuc(true_logit, clicked, k_len, nullptr));
  out["fresh_lists_with_click_and_nonclick"] = counted;
  out["fresh_lists"] = kFreshLists;
  return out;
}

void FidelityTracker::BeginEpoch(int epoch) {
  epochs_.push_back({});
  epochs_.back().epoch = epoch;
}

void FidelityTracker::AddRound(std::span<const CounterfactualSample> samples,
                               const CounterfactualEngine::Trace& trace,
                               size_t list_size, const double* mean_reward,
                               std::span<const float> ranker_margin) {
  if (epochs_.empty()) BeginEpoch(0);
  Epoch& e = epochs_.back();
  e.lists += trace.users.size();
  e.samples += samples.size();
  if (mean_reward != nullptr && std::isfinite(*mean_reward)) {
    e.reward_sum += *mean_reward;
    ++e.reward_rounds;
  }
  for (uint32_t i : trace.lists) {
    if (e.seen.size() <= i) e.seen.resize(size_t(i) + 1, 0);
    e.seen[i] = 1;
  }
  if (truth_ == nullptr) return;
  for (const CounterfactualSample& c : samples) {
    if (c.user >= truth_->num_users() || c.pos >= truth_->num_items() ||
        c.neg >= truth_->num_items()) {
      continue;
    }
    double a = truth_->ClickLogit(c.user, c.pos);
    double b = truth_->ClickLogit(c.user, c.neg);
    e.pair_agree += a > b ? 1.0 : (a == b ? 0.5 : 0.0);
    ++e.pairs;
    if (ranker_margin.size() == samples.size()) {
      const float m = ranker_margin[size_t(&c - samples.data())];
      const double w = 1 / (1 + std::exp(double(m)));  // sigma(-m)
      ++e.margin_pairs;
      e.ranker_agrees += m > 0;
      e.teaching += m <= 0 && a > b;
      e.grad_total += w;
      if (a > b) e.grad_true += w;
    }
  }
  if (list_size == 0 || trace.lists.size() != trace.users.size() * list_size ||
      trace.probabilities.size() != trace.lists.size()) {
    return;
  }
  std::vector<uint8_t> clicked(trace.lists.size());
  for (size_t t = 0; t < trace.users.size(); ++t) {
    bool any = false;
    for (size_t j = 0; j < list_size; ++j) {
      size_t n = t * list_size + j;
      uint32_t u = trace.users[t], i = trace.lists[n];
      bool c = u < truth_->num_users() && i < truth_->num_items() &&
               truth_->ClickProbability(u, i) > 0.5;
      clicked[n] = c;
      any = any || c;
    }
    e.lists_with_click += any;
  }
  size_t counted = 0;
  double auc = MeanListAuc(trace.probabilities, clicked, list_size, &counted);
  if (counted > 0) {
    e.auc_sum += auc * double(counted);
    e.auc_lists += counted;
  }
}

void FidelityTracker::AddMarginFigures(const Epoch& e, nlohmann::json& j) {
  if (e.margin_pairs == 0) return;
  const double n = double(e.margin_pairs);
  // Share of pairs the ranker already orders as the pair does.
  j["ranker_agrees"] = Number(double(e.ranker_agrees) / n);
  // Share of pairs the ranker orders wrongly and the truth agrees with.
  j["pairs_teaching"] = Number(double(e.teaching) / n);
  // Share of the pairs' gradient weight on pairs with the true order.
  j["gradient_true_share"] =
      Number(e.grad_total > 0 ? e.grad_true / e.grad_total : kNaN);
}

void FidelityTracker::AddTraining(uint64_t steps, uint64_t samples) {
  if (epochs_.empty()) BeginEpoch(0);
  epochs_.back().steps += steps;
  epochs_.back().trained += samples;
}

nlohmann::json FidelityTracker::Json(size_t num_items) const {
  nlohmann::json by_epoch = nlohmann::json::array();
  Epoch total;
  std::vector<uint8_t> seen;
  for (const Epoch& e : epochs_) {
    nlohmann::json j = {{"epoch", e.epoch},
                        {"lists", e.lists},
                        {"samples", e.samples},
                        {"trained", e.trained},
                        {"ranker_steps", e.steps}};
    j["mean_reward"] =
        Number(e.reward_rounds ? e.reward_sum / double(e.reward_rounds) : kNaN);
    size_t distinct = std::count(e.seen.begin(), e.seen.end(), uint8_t(1));
    j["catalog_share"] =
        Number(num_items ? double(distinct) / double(num_items) : kNaN);
    if (truth_ != nullptr) {
      j["pair_agreement"] =
          Number(e.pairs ? e.pair_agree / double(e.pairs) : kNaN);
      j["list_click_auc"] =
          Number(e.auc_lists ? e.auc_sum / double(e.auc_lists) : kNaN);
      j["lists_with_true_click"] =
          Number(e.lists ? double(e.lists_with_click) / double(e.lists) : kNaN);
      AddMarginFigures(e, j);
    }
    by_epoch.push_back(j);
    total.lists += e.lists;
    total.samples += e.samples;
    total.trained += e.trained;
    total.steps += e.steps;
    total.pair_agree += e.pair_agree;
    total.pairs += e.pairs;
    total.auc_sum += e.auc_sum;
    total.auc_lists += e.auc_lists;
    total.lists_with_click += e.lists_with_click;
    total.margin_pairs += e.margin_pairs;
    total.ranker_agrees += e.ranker_agrees;
    total.teaching += e.teaching;
    total.grad_total += e.grad_total;
    total.grad_true += e.grad_true;
    if (seen.size() < e.seen.size()) seen.resize(e.seen.size(), 0);
    for (size_t i = 0; i < e.seen.size(); ++i) seen[i] |= e.seen[i];
  }
  nlohmann::json t = {{"lists", total.lists},
                      {"samples", total.samples},
                      {"trained", total.trained},
                      {"ranker_steps", total.steps}};
  size_t distinct = std::count(seen.begin(), seen.end(), uint8_t(1));
  t["catalog_share"] =
      Number(num_items ? double(distinct) / double(num_items) : kNaN);
  if (truth_ != nullptr) {
    t["pair_agreement"] =
        Number(total.pairs ? total.pair_agree / double(total.pairs) : kNaN);
    t["list_click_auc"] = Number(
        total.auc_lists ? total.auc_sum / double(total.auc_lists) : kNaN);
    t["lists_with_true_click"] = Number(
        total.lists ? double(total.lists_with_click) / double(total.lists)
                    : kNaN);
    AddMarginFigures(total, t);
  }
  return {{"by_epoch", by_epoch}, {"total", t}};
}

}  // namespace cfrec::learner::cf
