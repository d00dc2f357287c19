#include "cfrec/learner/semisynth.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace cfrec::learner {
namespace {

using Rng = std::mt19937_64;

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// log sigma(x) without overflow.
double LogSigmoid(double x) {
  return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
}

// A standard normal that depends only on (seed, stream, u, i): the noise
// eps1, eps2 of a pair is the same in both stages and in any visiting
// order.
double PairNormal(uint64_t seed, uint64_t stream, uint32_t u, uint32_t i) {
  auto mix = [](uint64_t z) {  // SplitMix64 finaliser
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  uint64_t a = mix(seed ^ mix(stream ^ mix((uint64_t{u} << 32) | i)));
  uint64_t b = mix(a);
  double u1 = (double(a >> 11) + 0.5) / double(1ULL << 53);
  double u2 = double(b >> 11) / double(1ULL << 53);
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

struct Sample {
  uint32_t u, i;
  float label;
};

// Logistic matrix factorisation by SGD on (u, i, label) samples; `draw`
// yields the samples of one epoch (fresh negatives each time).
template <typename Draw>
FactorModel FitLogistic(uint32_t users, uint32_t items,
                        const SemiSyntheticOptions& o, Rng& rng, Draw draw) {
  FactorModel m;
  m.dim = o.dim;
  m.user_bias.assign(users, 0);
  m.item_bias.assign(items, 0);
  std::normal_distribution<float> init(0, 0.1f);
  m.user.resize(size_t(users) * o.dim);
  m.item.resize(size_t(items) * o.dim);
  for (float& x : m.user) x = init(rng);
  for (float& x : m.item) x = init(rng);
  std::vector<Sample> samples;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    samples.clear();
    draw(samples, rng);
    std::shuffle(samples.begin(), samples.end(), rng);
    const float lr = static_cast<float>(o.lr), l2 = static_cast<float>(o.l2);
    for (const Sample& s : samples) {
      float* p = &m.user[size_t(s.u) * o.dim];
      float* q = &m.item[size_t(s.i) * o.dim];
      // d(-log-likelihood)/d logit = sigma(logit) - label.
      float g = static_cast<float>(Sigmoid(m.Logit(s.u, s.i))) - s.label;
      m.bias -= lr * g * 0.1f;  // the global bias moves slower
      m.user_bias[s.u] -= lr * (g + l2 * m.user_bias[s.u]);
      m.item_bias[s.i] -= lr * (g + l2 * m.item_bias[s.i]);
      for (int d = 0; d < o.dim; ++d) {
        float pd = p[d], qd = q[d];
        p[d] -= lr * (g * qd + l2 * pd);
        q[d] -= lr * (g * pd + l2 * qd);
      }
    }
  }
  return m;
}

uint64_t PairKey(uint32_t u, uint32_t i) { return (uint64_t{u} << 32) | i; }

}  // namespace

float FactorModel::Logit(uint32_t u, uint32_t i) const {
  const float* p = &user[size_t(u) * dim];
  const float* q = &item[size_t(i) * dim];
  float s = bias + user_bias[u] + item_bias[i];
  for (int d = 0; d < dim; ++d) s += p[d] * q[d];
  return s;
}

Status ValidateSemiSyntheticOptions(const SemiSyntheticOptions& o) {
  auto positive = [](const char* field, double v) {
    return v > 0 ? Status::Ok()
                 : Status::InvalidArgument(std::string("option '") + field +
                                           "' must be > 0");
  };
  CFREC_RETURN_IF_ERROR(positive("dim", o.dim));
  CFREC_RETURN_IF_ERROR(positive("epochs", o.epochs));
  CFREC_RETURN_IF_ERROR(positive("lr", o.lr));
  CFREC_RETURN_IF_ERROR(
      positive("negatives_per_positive", o.negatives_per_positive));
  CFREC_RETURN_IF_ERROR(positive("list_size", o.list_size));
  if (o.l2 < 0 || o.relevance_noise < 0 || o.exposure_noise < 0) {
    return Status::InvalidArgument(
        "options 'l2', 'relevance_noise' and 'exposure_noise' must be >= 0");
  }
  if (o.exposure_term != "none" && o.exposure_term != "dot" &&
      o.exposure_term != "item") {
    return Status::InvalidArgument("option 'exposure_term' is '" +
                                   o.exposure_term +
                                   "'; expected one of: none, dot, item");
  }
  return Status::Ok();
}

Result<SemiSyntheticData> SimulateSemiSynthetic(const std::vector<MindRow>& log,
                                                const SemiSyntheticOptions& o) {
  CFREC_RETURN_IF_ERROR(ValidateSemiSyntheticOptions(o));
  SemiSyntheticData out;
  std::unordered_map<std::string, uint32_t> user_index, item_index;
  auto index = [](std::unordered_map<std::string, uint32_t>& map,
                  std::vector<std::string>& ids, const std::string& id) {
    auto [it, added] = map.emplace(id, static_cast<uint32_t>(ids.size()));
    if (added) ids.push_back(id);
    return it->second;
  };
  // Shown pairs (distinct) with whether any impression clicked them.
  std::unordered_map<uint64_t, bool> shown;
  int64_t t0 = 0;
  bool first = true;
  for (const MindRow& row : log) {
    if (row.items.empty()) continue;
    t0 = first ? row.ts_ms : std::min(t0, row.ts_ms);
    first = false;
    uint32_t u = index(user_index, out.user_ids, row.user_id);
    for (size_t k = 0; k < row.items.size(); ++k) {
      uint32_t i = index(item_index, out.item_ids, row.items[k]);
      bool& clicked = shown[PairKey(u, i)];
      clicked = clicked || (k < row.clicked.size() && row.clicked[k]);
    }
  }
  const uint32_t users = static_cast<uint32_t>(out.user_ids.size());
  const uint32_t items = static_cast<uint32_t>(out.item_ids.size());
  if (items < 2 || shown.empty()) {
    return Status::InvalidArgument(
        "the log needs impressions of at least two items");
  }
  std::vector<Sample> shown_samples;
  std::vector<uint32_t> shown_per_user(users, 0);
  shown_samples.reserve(shown.size());
  for (const auto& [key, clicked] : shown) {
    uint32_t u = uint32_t(key >> 32), i = uint32_t(key);
    shown_samples.push_back({u, i, clicked ? 1.0f : 0.0f});
    ++shown_per_user[u];
  }
  // Hash order is not portable: sort for a deterministic sample order.
  std::sort(shown_samples.begin(), shown_samples.end(),
            [](const Sample& a, const Sample& b) {
              return PairKey(a.u, a.i) < PairKey(b.u, b.i);
            });
  Rng rng(o.seed);
  std::uniform_int_distribution<uint32_t> any_item(0, items - 1);

  // Stage 1a: relevance r(u, i), clicks among shown items.
  out.relevance =
      FitLogistic(users, items, o, rng,
                  [&](std::vector<Sample>& s, Rng&) { s = shown_samples; });
  // Stage 1b: exposure p_hat, shown items against sampled catalog items.
  out.exposure =
      FitLogistic(users, items, o, rng, [&](std::vector<Sample>& s, Rng& r) {
        for (const Sample& x : shown_samples) {
          s.push_back({x.u, x.i, 1});
          for (int k = 0; k < o.negatives_per_positive; ++k) {
            uint32_t j = any_item(r);
            if (shown.count(PairKey(x.u, j)) == 0) s.push_back({x.u, j, 0});
          }
        }
      });
  // With k uniform negatives per shown pair, the fitted odds are those of
  // the log times items / (k * shown_u): undo that per user.
  for (uint32_t u = 0; u < users; ++u) {
    out.exposure.user_bias[u] += static_cast<float>(
        std::log(double(o.negatives_per_positive) *
                 std::max<uint32_t>(shown_per_user[u], 1) / double(items)));
  }

  auto log_p1 = [&](uint32_t u, uint32_t i) {
    double l = LogSigmoid(out.exposure.Logit(u, i)) +
               o.exposure_noise * PairNormal(o.seed, 2, u, i);
    return std::min(0.0, l);
  };
  auto click_p = [&](uint32_t u, uint32_t i) {
    return Sigmoid(out.relevance.Logit(u, i) -
                   o.relevance_noise * PairNormal(o.seed, 1, u, i));
  };
  // Generates one stage: every (user, item) exposed with probability
  // exp(log_p(u, i)), clicked with p1(Y=1 | O=1); exposed items of a user
  // form rows of list_size in random order.
  auto generate = [&](auto log_p, const char* prefix,
                      std::vector<MindRow>& rows, std::vector<double>& mass,
                      uint64_t& exposed, uint64_t& clicks) {
    mass.assign(items, 0);
    std::uniform_real_distribution<double> unit(0, 1);
    std::vector<std::vector<MindRow>> per_user(users);
    std::vector<std::pair<uint32_t, bool>> picked;
    for (uint32_t u = 0; u < users; ++u) {
      picked.clear();
      for (uint32_t i = 0; i < items; ++i) {
        double p = std::exp(log_p(u, i));
        mass[i] += p;
        if (unit(rng) < p) picked.push_back({i, unit(rng) < click_p(u, i)});
      }
      std::shuffle(picked.begin(), picked.end(), rng);
      for (size_t k = 0; k < picked.size(); k += o.list_size) {
        MindRow row;
        row.user_id = out.user_ids[u];
        for (size_t j = k; j < std::min(picked.size(), k + o.list_size); ++j) {
          row.items.push_back(out.item_ids[picked[j].first]);
          row.clicked.push_back(picked[j].second ? 1 : 0);
          ++exposed;
          clicks += picked[j].second ? 1 : 0;
        }
        per_user[u].push_back(std::move(row));
      }
    }
    // Time order: round r of every user, then round r + 1 (1 s apart).
    uint64_t n = 0;
    for (size_t r = 0;; ++r) {
      bool any = false;
      for (uint32_t u = 0; u < users; ++u) {
        if (r >= per_user[u].size()) continue;
        any = true;
        MindRow& row = per_user[u][r];
        row.impression_id = std::string(prefix) + std::to_string(++n);
        row.ts_ms = t0 + static_cast<int64_t>(n) * 1000;
        rows.push_back(std::move(row));
      }
      if (!any) break;
    }
  };
  generate(log_p1, "S1-", out.stage1, out.item_exposure1, out.exposed1,
           out.clicks1);

  // Stage 2: x, z from an implicit factorisation of the stage-1 clicks.
  std::vector<Sample> clicked;
  std::unordered_map<std::string, uint32_t>& ui = user_index;
  for (const MindRow& row : out.stage1) {
    for (size_t k = 0; k < row.items.size(); ++k) {
      if (row.clicked[k]) {
        clicked.push_back({ui.at(row.user_id), item_index.at(row.items[k]), 1});
      }
    }
  }
  FactorModel xz =
      FitLogistic(users, items, o, rng, [&](std::vector<Sample>& s, Rng& r) {
        for (const Sample& x : clicked) {
          s.push_back(x);
          for (int k = 0; k < o.negatives_per_positive; ++k) {
            s.push_back({x.u, any_item(r), 0});
          }
        }
      });
  std::vector<float> direction(o.dim);
  {
    std::normal_distribution<float> normal(0, 1);
    double norm = 0;
    for (float& d : direction) {
      d = normal(rng);
      norm += double(d) * d;
    }
    for (float& d : direction) d /= static_cast<float>(std::sqrt(norm));
  }
  auto raw_term = [&](uint32_t u, uint32_t i) -> double {
    const float* z = &xz.item[size_t(i) * o.dim];
    double s = 0;
    if (o.exposure_term == "dot") {
      const float* x = &xz.user[size_t(u) * o.dim];
      for (int d = 0; d < o.dim; ++d) s += x[d] * z[d];
    } else if (o.exposure_term == "item") {
      for (int d = 0; d < o.dim; ++d) s += direction[d] * z[d];
    }
    return s;
  };
  // Standardise e over the pairs (items only for the item term).
  double sum = 0, sum2 = 0, count = 0;
  if (o.exposure_term != "none") {
    uint32_t user_stride = o.exposure_term == "item" ? users : 1;
    for (uint32_t u = 0; u < users; u += user_stride) {
      for (uint32_t i = 0; i < items; ++i) {
        double t = raw_term(u, i);
        sum += t;
        sum2 += t * t;
        count += 1;
      }
    }
  }
  double mean = count > 0 ? sum / count : 0;
  double sd =
      count > 0 ? std::sqrt(std::max(1e-12, sum2 / count - mean * mean)) : 1;
  auto term = [&](uint32_t u, uint32_t i) {
    if (o.exposure_term == "none") return 0.0;
    return o.exposure_strength * (raw_term(u, i) - mean) / sd;
  };
  out.item_term.assign(items, 0);
  for (uint32_t u = 0; u < users; ++u) {
    for (uint32_t i = 0; i < items; ++i) {
      out.item_term[i] += term(u, i) / users;
    }
  }
  auto log_p2 = [&](uint32_t u, uint32_t i) {
    return std::min(0.0, log_p1(u, i) + term(u, i));
  };
  generate(log_p2, "S2-", out.stage2, out.item_exposure2, out.exposed2,
           out.clicks2);
  return out;
}

}  // namespace cfrec::learner
