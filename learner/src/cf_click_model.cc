#include "cf_click_model.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

namespace cfrec::learner::cf {
namespace {

float Sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// AUC of one list's clicked against its unclicked logits (ties half); -1
// when the list lacks either.
double ListAuc(const std::vector<float>& s, const std::vector<uint8_t>& c) {
  double wins = 0, pairs = 0;
  for (size_t a = 0; a < s.size(); ++a) {
    if (!c[a]) continue;
    for (size_t b = 0; b < s.size(); ++b) {
      if (c[b]) continue;
      wins += s[a] > s[b] ? 1.0 : (s[a] == s[b] ? 0.5 : 0.0);
      pairs += 1;
    }
  }
  return pairs > 0 ? wins / pairs : -1;
}

// Every (list, entry) of `lists` whose user and item have rows.
std::vector<std::pair<uint32_t, uint32_t>> Entries(
    std::span<const eval::Impression> lists, uint32_t num_users,
    uint32_t num_items) {
  std::vector<std::pair<uint32_t, uint32_t>> order;
  for (size_t l = 0; l < lists.size(); ++l) {
    if (lists[l].user >= num_users) continue;
    for (size_t j = 0; j < lists[l].items.size(); ++j) {
      if (lists[l].items[j] < num_items) {
        order.push_back({uint32_t(l), uint32_t(j)});
      }
    }
  }
  return order;
}

// Runs `epoch` (which trains one epoch and returns the held-out AUC, or -1
// when nothing could be scored) until the AUC has not improved for
// `patience` epochs or `max_epochs` have run; returns the best AUC (-1 when
// none) and the epoch that reached it (0 when none).
template <typename TrainEpoch>
std::pair<double, int> TrainWhileImproving(int max_epochs, int patience,
                                           TrainEpoch epoch) {
  double top = -1;
  int top_epoch = 0, since = 0;
  for (int e = 1; e <= max_epochs; ++e) {
    const double auc = epoch();
    if (auc > top) {
      top = auc;
      top_epoch = e;
      since = 0;
    } else if (++since >= patience) {
      break;
    }
  }
  return {top, top_epoch};
}

// Fits every (dim, l2) of the options' grid with `fit`, which returns the
// best held-out AUC and the epoch that reached it; records each in
// `candidates` and keeps the first best.
template <typename Fit>
void SearchGrid(const ClickModelOptions& o, Fit fit, int& best_dim,
                double& best_l2, int& best_epochs, double& best_auc,
                nlohmann::json& candidates) {
  for (int dim : o.dims) {
    for (double l2 : o.l2) {
      const auto [top, top_epoch] = fit(dim, l2);
      candidates.push_back(
          {{"dim", dim}, {"l2", l2}, {"epochs", top_epoch}, {"auc", top}});
      if (top > best_auc) {
        best_auc = top;
        best_dim = dim;
        best_l2 = l2;
        best_epochs = std::max(1, top_epoch);
      }
    }
  }
}

}  // namespace

void ClickModel::Init(Params& p, uint32_t users, uint32_t items, int dim,
                      uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  p.dim = dim;
  p.a.assign(users, 0.0f);
  p.b.assign(items, 0.0f);
  p.x.resize(size_t(users) * dim);
  p.y.resize(size_t(items) * dim);
  for (float& v : p.x) v = normal(rng);
  for (float& v : p.y) v = normal(rng);
}

float ClickModel::Logit(const Params& p, uint32_t u, uint32_t i) {
  const float* x = p.x.data() + size_t(u) * p.dim;
  const float* y = p.y.data() + size_t(i) * p.dim;
  float s = p.a[u] + p.b[i];
  for (int d = 0; d < p.dim; ++d) s += x[d] * y[d];
  return s;
}

float ClickModel::Logit(uint32_t user, uint32_t item) const {
  if (user >= params_.a.size() || item >= params_.b.size()) return 0;
  return Logit(params_, user, item);
}

// One SGD pass over every (list, entry) in a fresh order; logistic loss
// with L2 on the touched parameters.
void ClickModel::Epoch(Params& p, std::span<const eval::Impression> lists,
                       std::vector<std::pair<uint32_t, uint32_t>>& order,
                       double lr, double l2, uint64_t& state) {
  std::mt19937_64 rng(state);
  std::shuffle(order.begin(), order.end(), rng);
  state = rng();
  const float eta = float(lr), lambda = float(l2);
  const int dim = p.dim;
  for (const auto& [l, j] : order) {
    const eval::Impression& imp = lists[l];
    const uint32_t u = imp.user, i = imp.items[j];
    const float label = j < imp.clicked.size() && imp.clicked[j] ? 1.0f : 0.0f;
    const float g = Sigmoid(Logit(p, u, i)) - label;
    float* x = p.x.data() + size_t(u) * dim;
    float* y = p.y.data() + size_t(i) * dim;
    p.a[u] -= eta * (g + lambda * p.a[u]);
    p.b[i] -= eta * (g + lambda * p.b[i]);
    for (int d = 0; d < dim; ++d) {
      const float xd = x[d];
      x[d] -= eta * (g * y[d] + lambda * xd);
      y[d] -= eta * (g * xd + lambda * y[d]);
    }
  }
}

std::pair<double, size_t> ClickModel::AucSum(
    const Params& p, std::span<const eval::Impression> lists) {
  double sum = 0;
  size_t n = 0;
  std::vector<float> s;
  std::vector<uint8_t> c;
  for (const eval::Impression& imp : lists) {
    if (imp.user >= p.a.size()) continue;
    s.clear();
    c.clear();
    for (size_t j = 0; j < imp.items.size(); ++j) {
      if (imp.items[j] >= p.b.size()) continue;
      s.push_back(Logit(p, imp.user, imp.items[j]));
      c.push_back(j < imp.clicked.size() && imp.clicked[j]);
    }
    const double auc = ListAuc(s, c);
    if (auc < 0) continue;
    sum += auc;
    ++n;
  }
  return {sum, n};
}

void ClickModel::SelectByFolds(std::span<const eval::Impression> lists,
                               uint32_t num_users, uint32_t num_items,
                               const ClickModelOptions& o, int& best_dim,
                               double& best_l2, int& best_epochs,
                               double& best_auc, nlohmann::json& candidates) {
  const int k = o.folds;
  std::vector<std::vector<eval::Impression>> train(k), held(k);
  std::mt19937_64 rng(o.seed ^ 0x9e3779b97f4a7c15ULL);
  std::uniform_int_distribution<int> fold(0, k - 1);
  for (const eval::Impression& imp : lists) {
    const int f = fold(rng);
    for (int g = 0; g < k; ++g) (g == f ? held[g] : train[g]).push_back(imp);
  }
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> orders(k);
  for (int g = 0; g < k; ++g)
    orders[g] = Entries(train[g], num_users, num_items);
  SearchGrid(
      o,
      [&](int dim, double l2) {
        std::vector<Params> p(k);
        std::vector<uint64_t> state(k, o.seed);
        for (int g = 0; g < k; ++g) {
          Init(p[g], num_users, num_items, dim, o.seed);
        }
        return TrainWhileImproving(o.max_epochs, o.patience, [&] {
          double sum = 0;
          size_t n = 0;
          for (int g = 0; g < k; ++g) {
            Epoch(p[g], train[g], orders[g], o.lr, l2, state[g]);
            const auto [s, m] = AucSum(p[g], held[g]);
            sum += s;
            n += m;
          }
          return n ? sum / double(n) : -1.0;
        });
      },
      best_dim, best_l2, best_epochs, best_auc, candidates);
}

void ClickModel::Fit(std::span<const eval::Impression> train,
                     std::span<const eval::Impression> heldout,
                     uint32_t num_users, uint32_t num_items,
                     const ClickModelOptions& o) {
  auto entries = [&](std::span<const eval::Impression> lists) {
    return Entries(lists, num_users, num_items);
  };
  std::vector<std::pair<uint32_t, uint32_t>> order = entries(train);
  int best_dim = o.dims.empty() ? 4 : o.dims.front();
  double best_l2 = o.l2.empty() ? 1e-3 : o.l2.front();
  int best_epochs = o.max_epochs;
  double best_auc = -1;
  nlohmann::json candidates = nlohmann::json::array();
  // Every list: what the folds split and the chosen settings refit on.
  std::vector<eval::Impression> all(train.begin(), train.end());
  all.insert(all.end(), heldout.begin(), heldout.end());
  size_t selection_lists = heldout.size();
  if (o.folds >= 2) {
    SelectByFolds(all, num_users, num_items, o, best_dim, best_l2, best_epochs,
                  best_auc, candidates);
    selection_lists = all.size();
  } else if (!heldout.empty()) {
    SearchGrid(
        o,
        [&](int dim, double l2) {
          Params p;
          Init(p, num_users, num_items, dim, o.seed);
          uint64_t state = o.seed;
          return TrainWhileImproving(o.max_epochs, o.patience, [&] {
            Epoch(p, train, order, o.lr, l2, state);
            const auto [sum, n] = AucSum(p, heldout);
            return n ? sum / double(n) : -1.0;
          });
        },
        best_dim, best_l2, best_epochs, best_auc, candidates);
  }
  // Refit on every list with the chosen settings.
  std::vector<std::pair<uint32_t, uint32_t>> all_order = entries(all);
  Init(params_, num_users, num_items, best_dim, o.seed);
  uint64_t state = o.seed;
  for (int e = 1; e <= best_epochs; ++e) {
    Epoch(params_, all, all_order, o.lr, best_l2, state);
  }
  view_cols_ = 0;
  report_ = {{"candidates", candidates},
             {"dim", best_dim},
             {"l2", best_l2},
             {"epochs", best_epochs},
             {"heldout_auc", best_auc},
             {"heldout_lists", selection_lists},
             {"folds", o.folds >= 2 ? o.folds : 0}};
}

bool ClickModel::View(const SemView& base, SemView& out) {
  const int dim = params_.dim;
  if (base.dim < dim + 1 || base.num_users != params_.a.size() ||
      base.num_items != params_.b.size() || base.max_positions <= 0) {
    return false;
  }
  const size_t cols = size_t(base.dim);
  if (view_cols_ != cols || w_s_.size() != size_t(base.max_positions)) {
    Build(cols, size_t(base.max_positions));
  }
  out = base;
  out.x = x_.data();
  out.y = y_.data();
  out.w_s = w_s_.data();
  out.mu_beta = beta_.data();
  out.log_sigma_beta = beta_.data();
  return true;
}

void ClickModel::Build(size_t cols, size_t positions) {
  const size_t dim = size_t(params_.dim);
  const size_t users = params_.a.size(), items = params_.b.size();
  view_cols_ = cols;
  x_.assign(users * cols, 0.0f);
  y_.assign(items * cols, 0.0f);
  for (size_t u = 0; u < users; ++u) {
    std::copy_n(params_.x.data() + u * dim, dim, x_.data() + u * cols);
    x_[u * cols + dim] = 1.0f;
  }
  for (size_t i = 0; i < items; ++i) {
    std::copy_n(params_.y.data() + i * dim, dim, y_.data() + i * cols);
    y_[i * cols + dim] = params_.b[i];
  }
  w_s_.assign(positions, 0.0f);
  beta_.assign(positions, 0.0f);
}

}  // namespace cfrec::learner::cf
