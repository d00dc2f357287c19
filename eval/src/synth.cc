#include "cfrec/eval/synth.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <system_error>

#include "random.h"

namespace cfrec::eval {
namespace {

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

std::vector<double> GaussianVector(Rng& rng, uint32_t dim) {
  std::vector<double> v(dim);
  for (double& x : v) x = rng.Normal();
  return v;
}

// Walker's alias table: O(1) draws from a fixed discrete distribution.
class AliasTable {
 public:
  explicit AliasTable(const std::vector<double>& weights) {
    const size_t n = weights.size();
    prob_.assign(n, 0.0);
    alias_.assign(n, 0);
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    std::vector<double> scaled(n);
    std::vector<uint32_t> small;
    std::vector<uint32_t> large;
    for (size_t i = 0; i < n; ++i) {
      scaled[i] = weights[i] * n / total;
      (scaled[i] < 1.0 ? small : large).push_back(static_cast<uint32_t>(i));
    }
    while (!small.empty() && !large.empty()) {
      const uint32_t s = small.back();
      small.pop_back();
      const uint32_t l = large.back();
      prob_[s] = scaled[s];
      alias_[s] = l;
      scaled[l] -= 1.0 - scaled[s];
      if (scaled[l] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
    for (uint32_t i : large) prob_[i] = 1.0;
    for (uint32_t i : small) prob_[i] = 1.0;
  }

  uint32_t Draw(Rng& rng) const {
    const uint32_t column = static_cast<uint32_t>(rng.Below(prob_.size()));
    return rng.Uniform() < prob_[column] ? column : alias_[column];
  }

 private:
  std::vector<double> prob_;
  std::vector<uint32_t> alias_;
};

std::vector<double> ZipfWeights(uint32_t n, double exponent) {
  std::vector<double> w(n);
  for (uint32_t i = 0; i < n; ++i) w[i] = std::pow(i + 1.0, -exponent);
  return w;
}

uint32_t Poisson(Rng& rng, double lambda) {
  // Knuth's product method; lambda stays small here (< click_rate * 300).
  const double limit = std::exp(-lambda);
  uint32_t k = 0;
  double product = rng.Uniform();
  while (product > limit) {
    ++k;
    product *= rng.Uniform();
  }
  return k;
}

std::string UserId(uint32_t index) { return "U" + std::to_string(index + 1); }
std::string ItemId(uint32_t index) { return "N" + std::to_string(index + 1); }

}  // namespace

std::string_view ResponseModelName(ResponseModel m) {
  return m == ResponseModel::kLinear ? "linear" : "nonlinear";
}

Result<ResponseModel> ParseResponseModel(std::string_view name) {
  if (name == "linear") return ResponseModel::kLinear;
  if (name == "nonlinear" || name == "non-linear") {
    return ResponseModel::kNonlinear;
  }
  return Status::InvalidArgument(
      "response model must be linear or "
      "nonlinear, got '" +
      std::string(name) + "'");
}

double ResponseX1(std::span<const double> p, std::span<const double> q,
                  std::span<const double> a, double b) {
  // CPR eq. (12): x1 = a^T phi1(phi2([p, q])) + b.
  double x = b;
  const size_t d = p.size();
  for (size_t k = 0; k < 2 * d; ++k) {
    const double y = k < d ? p[k] : q[k - d];
    if (y > 0) x += a[k] * (y - 0.5);
  }
  return x;
}

double ResponseX2(std::span<const double> p, std::span<const double> q,
                  std::span<const double> a, double b) {
  // CPR eq. (12), x2 read as the mirror of x1 on the negative coordinates
  // (see synth.h): sum over y_k < 0 of a_k (y_k + 0.5), plus b.
  double x = b;
  const size_t d = p.size();
  for (size_t k = 0; k < 2 * d; ++k) {
    const double y = k < d ? p[k] : q[k - d];
    if (y < 0) x += a[k] * (y + 0.5);
  }
  return x;
}

double ExposureScore(std::span<const double> p, std::span<const double> q,
                     std::span<const double> a, double b) {
  return 1.0 - Sigmoid(ResponseX1(p, q, a, b));
}

double ResponseLogit(ResponseModel m, std::span<const double> p,
                     std::span<const double> q, std::span<const double> a,
                     double b) {
  const double x1 = ResponseX1(p, q, a, b);
  if (m == ResponseModel::kLinear) return x1;
  return x1 + x1 * ResponseX2(p, q, a, b);
}

double ClickProbability(ResponseModel m, double noise_std,
                        std::span<const double> p, std::span<const double> q,
                        std::span<const double> a, double b) {
  const double margin = Sigmoid(ResponseLogit(m, p, q, a, b)) - 0.5;
  if (noise_std <= 0) return margin > 0 ? 1.0 : 0.0;
  // P(margin + N_y > 0) = Phi(margin / noise_std).
  return 0.5 * std::erfc(-margin / (noise_std * std::sqrt(2.0)));
}

Result<SynthData> GenerateSynthetic(const SynthOptions& options) {
  if (options.num_users == 0 || options.num_items == 0 || options.dim == 0 ||
      options.lists_per_user == 0 || options.list_length == 0) {
    return Status::InvalidArgument("synth: sizes must be positive");
  }
  if (options.list_length > options.num_items) {
    return Status::InvalidArgument("synth: list_length exceeds num_items");
  }
  if (!(options.noise_std >= 0)) {
    return Status::InvalidArgument("synth: noise must be >= 0");
  }
  SynthData data;
  SynthGroundTruth& truth = data.truth;
  truth.options = options;
  Rng vectors(MixSeed(options.seed, 1));
  for (uint32_t i = 0; i < options.num_users; ++i) {
    truth.user_vectors.push_back(GaussianVector(vectors, options.dim));
  }
  for (uint32_t j = 0; j < options.num_items; ++j) {
    truth.item_vectors.push_back(GaussianVector(vectors, options.dim));
  }
  truth.a.assign(2 * options.dim, 1.0);
  truth.b = 0.0;

  // exp(r_ij) for every pair, and the click logit's sigmoid margin.
  const uint32_t n_items = options.num_items;
  std::vector<std::vector<double>> weight(options.num_users,
                                          std::vector<double>(n_items));
  std::vector<std::vector<double>> margin(options.num_users,
                                          std::vector<double>(n_items));
  for (uint32_t i = 0; i < options.num_users; ++i) {
    for (uint32_t j = 0; j < n_items; ++j) {
      const auto& p = truth.user_vectors[i];
      const auto& q = truth.item_vectors[j];
      weight[i][j] = std::exp(ExposureScore(p, q, truth.a, truth.b));
      margin[i][j] =
          Sigmoid(ResponseLogit(options.response, p, q, truth.a, truth.b)) -
          0.5;
    }
  }

  Rng lists(MixSeed(options.seed, 2));
  Rng noise(MixSeed(options.seed, 3));
  Rng order(MixSeed(options.seed, 4));
  std::vector<uint32_t> users(options.num_users);
  std::iota(users.begin(), users.end(), 0u);
  std::vector<double> w(n_items);
  uint64_t impression = 0;
  data.rows.reserve(static_cast<size_t>(options.num_users) *
                    options.lists_per_user);
  for (uint32_t round = 0; round < options.lists_per_user; ++round) {
    for (uint32_t i = options.num_users; i > 1; --i) {
      std::swap(users[i - 1], users[order.Below(i)]);
    }
    for (uint32_t user : users) {
      MindRow row;
      row.impression_id = std::to_string(impression + 1);
      row.user_id = UserId(user);
      row.ts_ms =
          options.start_ms + static_cast<int64_t>(impression) * options.step_ms;
      ++impression;
      // Sequential draws proportional to exp(r_ij) without replacement.
      w = weight[user];
      double total = std::accumulate(w.begin(), w.end(), 0.0);
      for (uint32_t pos = 0; pos < options.list_length; ++pos) {
        double target = lists.Uniform() * total;
        uint32_t pick = 0;
        // The last positive weight absorbs rounding at the top end.
        uint32_t last_positive = 0;
        for (uint32_t j = 0; j < n_items; ++j) {
          if (w[j] <= 0) continue;
          last_positive = j;
          if (target < w[j]) {
            pick = j;
            break;
          }
          target -= w[j];
          pick = last_positive;
        }
        total -= w[pick];
        w[pick] = 0;
        row.items.push_back(ItemId(pick));
        const double n_y =
            options.noise_std > 0 ? options.noise_std * noise.Normal() : 0.0;
        // CPR eq. (12): s = I(sigmoid(.) + N_y - 0.5 > 0).
        row.clicked.push_back(margin[user][pick] + n_y > 0 ? 1 : 0);
      }
      data.rows.push_back(std::move(row));
    }
  }
  return data;
}

Status WriteMindFile(const std::vector<MindRow>& rows,
                     const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::IOError("cannot create '" + path + "'");
  for (const MindRow& row : rows) {
    out << FormatMindRow(row) << '\n';
  }
  out.flush();
  if (!out) return Status::IOError("error writing '" + path + "'");
  return Status::Ok();
}

Status WriteSynthetic(const SynthData& data, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::IOError("cannot create '" + dir + "': " + ec.message());
  }
  CFREC_RETURN_IF_ERROR(WriteMindFile(data.rows, dir + "/behaviors.tsv"));
  const SynthGroundTruth& t = data.truth;
  const SynthOptions& o = t.options;
  nlohmann::json j;
  j["generator"] = "cpr-section-4.1.1-eq-12";
  j["options"] = {{"num_users", o.num_users},
                  {"num_items", o.num_items},
                  {"dim", o.dim},
                  {"lists_per_user", o.lists_per_user},
                  {"list_length", o.list_length},
                  {"response", std::string(ResponseModelName(o.response))},
                  {"noise_std", o.noise_std},
                  {"seed", o.seed},
                  {"start_ms", o.start_ms},
                  {"step_ms", o.step_ms}};
  j["exposure"] = "r_ij = 1 - sigmoid(x1); P(item) proportional to exp(r_ij)";
  j["x2_reading"] =
      "x2 = sum over coordinates y_k < 0 of [p, q] of a_k (y_k + 0.5) + b";
  j["a"] = t.a;
  j["b"] = t.b;
  j["user_ids_are"] = "U<index+1>";
  j["item_ids_are"] = "N<index+1>";
  j["user_vectors"] = t.user_vectors;
  j["item_vectors"] = t.item_vectors;
  std::ofstream out(dir + "/ground_truth.json", std::ios::trunc);
  if (!out) return Status::IOError("cannot create ground_truth.json");
  out << j.dump() << '\n';
  if (!out) return Status::IOError("error writing ground_truth.json");
  return Status::Ok();
}

Result<std::vector<MindRow>> GenerateMindLike(const MindLikeOptions& o) {
  if (o.num_users == 0 || o.num_items < 2 || o.dim == 0 ||
      o.min_list_length == 0 || o.min_list_length > o.max_list_length ||
      o.median_list_length <= 0 || o.list_length_sigma < 0 ||
      !(o.click_rate > 0 && o.click_rate <= 1) || o.mean_history_length < 0 ||
      o.mean_gap_ms < 0) {
    return Status::InvalidArgument("mind-like: invalid options");
  }
  Rng rng(MixSeed(o.seed, 10));
  const AliasTable user_draw(ZipfWeights(o.num_users, o.user_zipf));
  const AliasTable item_draw(ZipfWeights(o.num_items, o.item_zipf));
  // Latent vectors give the clicks a learnable structure. They are drawn
  // lazily per id from the id's own stream, so cost scales with use.
  auto latent = [&](uint64_t stream, uint32_t index) {
    Rng r(MixSeed(o.seed, stream * 0x100000000ull + index));
    std::vector<double> v(o.dim);
    for (double& x : v) x = r.Normal() / std::sqrt(static_cast<double>(o.dim));
    return v;
  };
  std::vector<std::vector<double>> user_vec(o.num_users);
  std::vector<std::vector<double>> item_vec(o.num_items);
  std::vector<std::vector<std::string>> history(o.num_users);
  std::vector<uint8_t> user_ready(o.num_users, 0);
  auto item_vector = [&](uint32_t j) -> const std::vector<double>& {
    if (item_vec[j].empty()) item_vec[j] = latent(2, j);
    return item_vec[j];
  };
  const uint32_t max_len = std::min(o.max_list_length, o.num_items);
  auto draw_length = [&](Rng& r) {
    const double raw =
        o.median_list_length * std::exp(o.list_length_sigma * r.Normal());
    return std::clamp<uint32_t>(static_cast<uint32_t>(std::lround(raw)),
                                o.min_list_length, max_len);
  };
  // Every list has one click (as in MIND) plus Poisson(extra_rate * len)
  // more; extra_rate makes E[clicks] / E[len] = click_rate, with E[len]
  // estimated on a separate stream. Floors at 1 / E[len].
  double mean_length = 0;
  {
    Rng probe(MixSeed(o.seed, 11));
    constexpr int kProbes = 20000;
    for (int i = 0; i < kProbes; ++i) mean_length += draw_length(probe);
    mean_length /= kProbes;
  }
  const double extra_rate = std::max(0.0, o.click_rate - 1.0 / mean_length);
  const double geometric_p = 1.0 / (1.0 + o.mean_history_length);

  std::vector<MindRow> rows;
  rows.reserve(o.num_impressions);
  int64_t ts = o.start_ms;
  std::vector<uint32_t> list;
  std::vector<double> affinity;
  std::vector<uint8_t> in_list(o.num_items, 0);
  for (uint64_t n = 0; n < o.num_impressions; ++n) {
    const uint32_t user = user_draw.Draw(rng);
    if (!user_ready[user]) {
      user_ready[user] = 1;
      user_vec[user] = latent(1, user);
      if (o.mean_history_length > 0) {
        const double u = 1.0 - rng.Uniform();
        const uint32_t len = std::min<uint32_t>(
            static_cast<uint32_t>(std::log(u) / std::log1p(-geometric_p)),
            o.num_items / 2);
        for (uint32_t h = 0; h < len; ++h) {
          const uint32_t item = item_draw.Draw(rng);
          history[user].push_back(ItemId(item));
        }
        std::sort(history[user].begin(), history[user].end());
        history[user].erase(
            std::unique(history[user].begin(), history[user].end()),
            history[user].end());
      }
    }
    const uint32_t len = draw_length(rng);  // log-normal, clamped
    list.clear();
    if (len * 2 > o.num_items) {
      std::vector<uint32_t> all(o.num_items);
      std::iota(all.begin(), all.end(), 0u);
      for (uint32_t i = 0; i < len; ++i) {
        std::swap(all[i], all[i + rng.Below(o.num_items - i)]);
      }
      list.assign(all.begin(), all.begin() + len);
    } else {
      while (list.size() < len) {
        const uint32_t item = item_draw.Draw(rng);
        if (in_list[item]) continue;
        in_list[item] = 1;
        list.push_back(item);
      }
      for (uint32_t item : list) in_list[item] = 0;
    }
    // Clicks chosen without replacement with weight
    // exp(2 * <p_u, q_j> * sqrt(dim)).
    const uint32_t clicks =
        std::min<uint32_t>(len, 1 + Poisson(rng, extra_rate * len));
    affinity.assign(len, 0.0);
    const std::vector<double>& pu = user_vec[user];
    for (uint32_t i = 0; i < len; ++i) {
      const std::vector<double>& qj = item_vector(list[i]);
      double dot = 0;
      for (uint32_t k = 0; k < o.dim; ++k) dot += pu[k] * qj[k];
      affinity[i] = std::exp(2.0 * dot * std::sqrt(static_cast<double>(o.dim)));
    }
    MindRow row;
    row.impression_id = std::to_string(n + 1);
    row.user_id = UserId(user);
    row.ts_ms = ts;
    row.history = history[user];
    row.items.reserve(len);
    row.clicked.assign(len, 0);
    for (uint32_t i = 0; i < len; ++i) row.items.push_back(ItemId(list[i]));
    double total = std::accumulate(affinity.begin(), affinity.end(), 0.0);
    for (uint32_t c = 0; c < clicks; ++c) {
      double target = rng.Uniform() * total;
      uint32_t pick = len;
      for (uint32_t i = 0; i < len; ++i) {
        if (row.clicked[i]) continue;
        pick = i;
        if (target < affinity[i]) break;
        target -= affinity[i];
      }
      row.clicked[pick] = 1;
      total -= affinity[pick];
    }
    rows.push_back(std::move(row));
    ts += 1 + static_cast<int64_t>(-std::log(1.0 - rng.Uniform()) *
                                   static_cast<double>(o.mean_gap_ms));
  }
  return rows;
}

double NewsLifetime(const NewsItem& item, double rise_hours, int64_t now_ms) {
  if (now_ms < item.birth_ms) return 0.0;
  const double age = static_cast<double>(now_ms - item.birth_ms) / 3.6e6;
  const double rise = rise_hours > 0 ? 1.0 - std::exp(-age / rise_hours) : 1.0;
  return rise * std::exp2(-age / item.half_life_hours);
}

double NewsClickProbability(const NewsOptions& o, const NewsItem& item,
                            const NewsUser& user, int64_t now_ms) {
  const double life = NewsLifetime(item, o.rise_hours, now_ms);
  if (life <= 0) return 0.0;
  const bool on_topic =
      std::binary_search(user.topics.begin(), user.topics.end(), item.topic);
  const double z = o.base_logit + item.quality +
                   (item.trending ? o.trending_boost : 0.0) +
                   (on_topic ? o.topic_boost : 0.0) + std::log(life);
  return Sigmoid(z);
}

Result<NewsData> GenerateNews(const NewsOptions& o) {
  if (o.num_impressions == 0 || !(o.days > 0) || !(o.items_per_hour > 0) ||
      !(o.warmup_hours >= 0) || o.num_topics == 0 || o.max_user_topics == 0 ||
      !(o.trending_share >= 0 && o.trending_share <= 1) ||
      !(o.quality_std >= 0) || !(o.half_life_hours > 0) ||
      !(o.half_life_sigma >= 0) || !(o.rise_hours >= 0) ||
      !(o.shelf_hours > 0) || !(o.stale_share >= 0 && o.stale_share <= 1) ||
      !(o.return_share >= 0 && o.return_share <= 1) || !(o.return_tail > 0) ||
      o.max_user_impressions < 2 || !(o.median_list_length > 0) ||
      !(o.list_length_sigma >= 0) || o.min_list_length == 0 ||
      o.min_list_length > o.max_list_length || !(o.mean_history_length >= 0)) {
    return Status::InvalidArgument("news: invalid options");
  }
  constexpr double kHourMs = 3.6e6;
  const int64_t duration_ms = static_cast<int64_t>(o.days * 24 * kHourMs);
  const int64_t end_ms = o.start_ms + duration_ms;
  const int64_t first_birth_ms =
      o.start_ms - static_cast<int64_t>(o.warmup_hours * kHourMs);
  NewsData data;
  data.options = o;

  // Items: Poisson births until the end of the stream. The first
  // min_list_length items are born no later than the start, so every list
  // has enough items to choose from.
  const AliasTable topic_draw(ZipfWeights(o.num_topics, o.topic_zipf));
  {
    Rng rng(MixSeed(o.seed, 20));
    const double mean_gap_ms = kHourMs / o.items_per_hour;
    double t = static_cast<double>(first_birth_ms);
    while (true) {
      t += -std::log(1.0 - rng.Uniform()) * mean_gap_ms;
      // Whole seconds, as MIND's time stamps.
      int64_t birth = static_cast<int64_t>(t / 1000) * 1000;
      if (data.items.size() < o.min_list_length) {
        birth = std::min(birth, o.start_ms);
      } else if (birth >= end_ms) {
        break;
      }
      NewsItem item;
      item.birth_ms = birth;
      item.topic = topic_draw.Draw(rng);
      item.trending = rng.Uniform() < o.trending_share;
      item.half_life_hours =
          o.half_life_hours * std::exp(o.half_life_sigma * rng.Normal());
      item.quality = o.quality_std * rng.Normal();
      data.items.push_back(item);
    }
    // The clamp above can only move births earlier; keep birth order.
    std::stable_sort(data.items.begin(), data.items.end(),
                     [](const NewsItem& a, const NewsItem& b) {
                       return a.birth_ms < b.birth_ms;
                     });
  }
  const uint32_t n_items = static_cast<uint32_t>(data.items.size());
  std::vector<int64_t> births(n_items);
  for (uint32_t j = 0; j < n_items; ++j) births[j] = data.items[j].birth_ms;
  // Exposure weight 2^(-age / shelf) is 2^(-t / shelf) * 2^(birth / shelf):
  // among the items born by t, proportional to 2^((birth - end) / shelf), so
  // one prefix sum serves every moment.
  std::vector<double> exposure_cum(n_items);
  {
    double sum = 0;
    for (uint32_t j = 0; j < n_items; ++j) {
      sum += std::exp2(static_cast<double>(births[j] - end_ms) /
                       (o.shelf_hours * kHourMs));
      exposure_cum[j] = sum;
    }
  }
  // Items born before the stream, by topic: the histories' pool.
  std::vector<std::vector<uint32_t>> old_by_topic(o.num_topics);
  for (uint32_t j = 0; j < n_items && births[j] < o.start_ms; ++j) {
    old_by_topic[data.items[j].topic].push_back(j);
  }

  // Users and the moments of their lists.
  struct Visit {
    int64_t ts;
    uint32_t user;
  };
  std::vector<Visit> visits;
  visits.reserve(o.num_impressions);
  {
    Rng rng(MixSeed(o.seed, 21));
    const uint32_t user_topics = std::min(o.max_user_topics, o.num_topics);
    const double geometric_p = 1.0 / (1.0 + o.mean_history_length);
    std::vector<uint32_t> pool;
    while (visits.size() < o.num_impressions) {
      const uint32_t index = static_cast<uint32_t>(data.users.size());
      NewsUser user;
      const uint32_t k = 1 + static_cast<uint32_t>(rng.Below(user_topics));
      while (user.topics.size() < k) {
        const uint32_t topic = topic_draw.Draw(rng);
        if (std::find(user.topics.begin(), user.topics.end(), topic) ==
            user.topics.end()) {
          user.topics.push_back(topic);
        }
      }
      std::sort(user.topics.begin(), user.topics.end());
      uint64_t lists = 1;
      if (rng.Uniform() < o.return_share) {
        user.returning = true;
        const double pareto =
            std::pow(1.0 - rng.Uniform(), -1.0 / o.return_tail);
        lists = 1 + static_cast<uint64_t>(std::min(
                        pareto, static_cast<double>(o.max_user_impressions)));
        lists = std::min<uint64_t>(lists, o.max_user_impressions);
        // History: geometric length (mean mean_history_length), distinct
        // items of the user's topics born before the stream.
        const double u = 1.0 - rng.Uniform();
        const uint64_t len =
            o.mean_history_length > 0
                ? static_cast<uint64_t>(std::log(u) / std::log1p(-geometric_p))
                : 0;
        pool.clear();
        for (uint32_t topic : user.topics) {
          pool.insert(pool.end(), old_by_topic[topic].begin(),
                      old_by_topic[topic].end());
        }
        const uint64_t take = std::min<uint64_t>(len, pool.size());
        for (uint64_t h = 0; h < take; ++h) {
          std::swap(pool[h], pool[h + rng.Below(pool.size() - h)]);
        }
        user.history.assign(pool.begin(), pool.begin() + take);
        std::sort(user.history.begin(), user.history.end());
      }
      lists = std::min<uint64_t>(lists, o.num_impressions - visits.size());
      user.impressions = static_cast<uint32_t>(lists);
      for (uint64_t s = 0; s < lists; ++s) {
        const int64_t offset_s = static_cast<int64_t>(
            rng.Uniform() * static_cast<double>(duration_ms / 1000));
        visits.push_back({o.start_ms + offset_s * 1000, index});
      }
      data.users.push_back(std::move(user));
    }
    std::sort(visits.begin(), visits.end(), [](const Visit& a, const Visit& b) {
      return a.ts != b.ts ? a.ts < b.ts : a.user < b.user;
    });
  }

  // The lists, in time order.
  Rng rng(MixSeed(o.seed, 22));
  const uint32_t max_len = std::min(o.max_list_length, n_items);
  std::vector<uint8_t> in_list(n_items, 0);
  std::vector<uint32_t> list;
  std::vector<uint8_t> clicked;
  std::vector<double> prob;
  data.rows.reserve(visits.size());
  for (size_t n = 0; n < visits.size(); ++n) {
    const Visit& visit = visits[n];
    const NewsUser& user = data.users[visit.user];
    const uint32_t born = static_cast<uint32_t>(
        std::upper_bound(births.begin(), births.end(), visit.ts) -
        births.begin());
    const double raw =
        o.median_list_length * std::exp(o.list_length_sigma * rng.Normal());
    const uint32_t len = std::min(
        born, std::clamp<uint32_t>(static_cast<uint32_t>(std::lround(raw)),
                                   o.min_list_length, max_len));
    constexpr int kMaxDraws = 100;
    for (int attempt = 0; attempt < kMaxDraws; ++attempt) {
      list.clear();
      if (len == born) {
        for (uint32_t j = 0; j < born; ++j) list.push_back(j);
        for (uint32_t i = born; i > 1; --i) {
          std::swap(list[i - 1], list[rng.Below(i)]);
        }
      } else {
        while (list.size() < len) {
          uint32_t pick = born;
          if (rng.Uniform() >= o.stale_share) {
            // Fresh: a few tries by exposure weight, then any unused item.
            for (int tries = 0; tries < 32 && pick == born; ++tries) {
              const double target = rng.Uniform() * exposure_cum[born - 1];
              const uint32_t j = static_cast<uint32_t>(
                  std::upper_bound(exposure_cum.begin(),
                                   exposure_cum.begin() + born, target) -
                  exposure_cum.begin());
              if (j < born && !in_list[j]) pick = j;
            }
          }
          while (pick == born) {
            const uint32_t j = static_cast<uint32_t>(rng.Below(born));
            if (!in_list[j]) pick = j;
          }
          in_list[pick] = 1;
          list.push_back(pick);
        }
        for (uint32_t j : list) in_list[j] = 0;
      }
      clicked.assign(len, 0);
      prob.resize(len);
      bool any = false;
      for (uint32_t i = 0; i < len; ++i) {
        prob[i] = NewsClickProbability(o, data.items[list[i]], user, visit.ts);
        clicked[i] = rng.Uniform() < prob[i] ? 1 : 0;
        any = any || clicked[i];
      }
      if (any) break;
      if (attempt + 1 == kMaxDraws) {
        // Practically never: click the likeliest item of the last draw.
        clicked[std::max_element(prob.begin(), prob.end()) - prob.begin()] = 1;
      }
    }
    MindRow row;
    row.impression_id = std::to_string(n + 1);
    row.user_id = UserId(visit.user);
    row.ts_ms = visit.ts;
    for (uint32_t j : user.history) row.history.push_back(ItemId(j));
    row.items.reserve(len);
    for (uint32_t j : list) row.items.push_back(ItemId(j));
    row.clicked = clicked;
    data.rows.push_back(std::move(row));
  }
  return data;
}

Status WriteNews(const NewsData& data, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::IOError("cannot create '" + dir + "': " + ec.message());
  }
  CFREC_RETURN_IF_ERROR(WriteMindFile(data.rows, dir + "/behaviors.tsv"));
  const NewsOptions& o = data.options;
  nlohmann::json j;
  j["generator"] = "news";
  j["options"] = {{"num_impressions", o.num_impressions},
                  {"days", o.days},
                  {"items_per_hour", o.items_per_hour},
                  {"warmup_hours", o.warmup_hours},
                  {"num_topics", o.num_topics},
                  {"topic_zipf", o.topic_zipf},
                  {"max_user_topics", o.max_user_topics},
                  {"topic_boost", o.topic_boost},
                  {"trending_share", o.trending_share},
                  {"trending_boost", o.trending_boost},
                  {"quality_std", o.quality_std},
                  {"base_logit", o.base_logit},
                  {"half_life_hours", o.half_life_hours},
                  {"half_life_sigma", o.half_life_sigma},
                  {"rise_hours", o.rise_hours},
                  {"shelf_hours", o.shelf_hours},
                  {"stale_share", o.stale_share},
                  {"return_share", o.return_share},
                  {"return_tail", o.return_tail},
                  {"max_user_impressions", o.max_user_impressions},
                  {"median_list_length", o.median_list_length},
                  {"list_length_sigma", o.list_length_sigma},
                  {"min_list_length", o.min_list_length},
                  {"max_list_length", o.max_list_length},
                  {"mean_history_length", o.mean_history_length},
                  {"seed", o.seed},
                  {"start_ms", o.start_ms}};
  j["click_model"] =
      "sigmoid(base_logit + quality + trending_boost [trending] + "
      "topic_boost [topic in user topics] + log life(age)), life(a) = (1 - "
      "exp(-a / rise_hours)) 2^(-a / half_life_hours); lists without a click "
      "are drawn again";
  j["user_ids_are"] = "U<index+1>";
  j["item_ids_are"] = "N<index+1>";
  nlohmann::json items = nlohmann::json::array();
  for (size_t i = 0; i < data.items.size(); ++i) {
    const NewsItem& item = data.items[i];
    items.push_back({{"id", ItemId(static_cast<uint32_t>(i))},
                     {"birth_ms", item.birth_ms},
                     {"topic", item.topic},
                     {"trending", item.trending},
                     {"half_life_hours", item.half_life_hours},
                     {"quality", item.quality}});
  }
  j["items"] = std::move(items);
  nlohmann::json users = nlohmann::json::array();
  for (size_t i = 0; i < data.users.size(); ++i) {
    const NewsUser& user = data.users[i];
    users.push_back({{"id", UserId(static_cast<uint32_t>(i))},
                     {"topics", user.topics},
                     {"impressions", user.impressions},
                     {"returning", user.returning}});
  }
  j["users"] = std::move(users);
  std::ofstream out(dir + "/ground_truth.json", std::ios::trunc);
  if (!out) return Status::IOError("cannot create ground_truth.json");
  out << j.dump() << '\n';
  if (!out) return Status::IOError("error writing ground_truth.json");
  return Status::Ok();
}

}  // namespace cfrec::eval
