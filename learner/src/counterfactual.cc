#include "cfrec/learner/counterfactual.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <span>
#include <sstream>

#include "cf_policy.h"

namespace cfrec::learner {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kCheckpointFormat = 1;

float Dot(const float* a, const float* b, int n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

bool Complete(const SemView& v) {
  return v.p && v.q && v.w_r && v.mu_alpha && v.log_sigma_alpha && v.x && v.y &&
         v.w_s && v.mu_beta && v.log_sigma_beta && v.dim > 0 &&
         v.max_positions > 0;
}

// The K best (score, item) pairs seen so far, highest first; ties keep the
// earlier item.
class TopKeeper {
 public:
  explicit TopKeeper(int k)
      : k_(k),
        score_(k, -std::numeric_limits<float>::infinity()),
        item_(k, 0) {}
  float threshold() const { return score_[k_ - 1]; }
  void Offer(float s, uint32_t item) {
    if (!(s > score_[k_ - 1])) return;
    int p = k_ - 1;
    while (p > 0 && s > score_[p - 1]) {
      score_[p] = score_[p - 1];
      item_[p] = item_[p - 1];
      --p;
    }
    score_[p] = s;
    item_[p] = item;
  }
  const std::vector<uint32_t>& items() const { return item_; }

 private:
  int k_;
  std::vector<float> score_;
  std::vector<uint32_t> item_;
};

}  // namespace

class CounterfactualEngine::Impl {
 public:
  explicit Impl(const CounterfactualOptions& o) : options_(o), rng_(o.seed) {}

  Status Pretrain(Learner& learner, const SemView& simulator,
                  std::span<const uint32_t> users) {
    if (options_.intervention != "learned" || users.empty()) {
      return Status::Ok();
    }
    auto start = Clock::now();
    std::vector<uint32_t> batch(options_.pretrain_users);
    std::vector<CounterfactualSample> samples;
    for (int round = 0; round < options_.pretrain_rounds; ++round) {
      std::uniform_int_distribution<size_t> pick(0, users.size() - 1);
      for (uint32_t& u : batch) u = users[pick(rng_)];
      samples.clear();
      CFREC_RETURN_IF_ERROR(Round(learner, simulator, batch, /*explore=*/true,
                                  /*pretrain=*/true, nullptr, samples));
    }
    stats_.seconds +=
        std::chrono::duration<double>(Clock::now() - start).count();
    return Status::Ok();
  }

  Result<std::vector<CounterfactualSample>> Generate(
      Learner& learner, const SemView& simulator,
      std::span<const uint32_t> users, Trace* trace) {
    std::vector<CounterfactualSample> samples;
    if (trace != nullptr) *trace = Trace{};
    if (options_.intervention == "none" || users.empty()) return samples;
    auto start = Clock::now();
    CFREC_RETURN_IF_ERROR(Round(learner, simulator, users, /*explore=*/false,
                                /*pretrain=*/false, trace, samples));
    stats_.seconds +=
        std::chrono::duration<double>(Clock::now() - start).count();
    return samples;
  }

  Result<std::vector<uint32_t>> TopK(const Learner& learner,
                                     std::span<const float> tau,
                                     std::span<const float> alpha) const {
    SemView v = learner.sem_view();
    if (!Complete(v)) return Status::Internal("SEM tables unavailable");
    if (tau.size() != size_t(v.dim)) {
      return Status::InvalidArgument("tau must have sem_dim entries");
    }
    if (!alpha.empty() && alpha.size() != v.num_items) {
      return Status::InvalidArgument("alpha must have one value per item");
    }
    if (v.num_items < size_t(options_.list_size)) {
      return Status::FailedPrecondition("catalog smaller than the list size");
    }
    TopKeeper top(options_.list_size);
    for (size_t k = 0; k < v.num_items; ++k) {
      float a = alpha.empty() ? v.mu_alpha[k] : alpha[k];
      top.Offer(Dot(tau.data(), v.q + k * v.dim, v.dim) + v.w_r[k] * a,
                static_cast<uint32_t>(k));
    }
    return top.items();
  }

  std::vector<float> PolicyMean(const Learner& learner, uint32_t user) const {
    SemView v = learner.sem_view();
    if (!policy_ || !Complete(v) || user >= v.num_users ||
        policy_->dim() != v.dim) {
      return {};
    }
    std::vector<float> mu(v.dim), h(policy_->hidden());
    policy_->Mean(v.p + size_t(user) * v.dim, mu.data(), h.data());
    return mu;
  }

  const CounterfactualOptions& options() const { return options_; }
  const CounterfactualStats& stats() const { return stats_; }

  Result<std::string> SaveCheckpoint() const {
    try {
      nlohmann::json j = {
          {"format", kCheckpointFormat},
          {"intervention", options_.intervention},
          {"list_size", options_.list_size},
          {"policy_hidden", options_.policy_hidden},
          {"baseline", baseline_},
          {"baseline_set", baseline_set_},
          {"stats",
           {{"rounds", stats_.rounds},
            {"lists_generated", stats_.lists_generated},
            {"samples_generated", stats_.samples_generated},
            {"pretrain_lists", stats_.pretrain_lists},
            {"policy_updates", stats_.policy_updates},
            {"users_skipped", stats_.users_skipped},
            {"mean_reward", stats_.mean_reward},
            {"seconds", stats_.seconds}}},
      };
      std::ostringstream rng_text;
      rng_text << rng_;
      j["rng"] = rng_text.str();
      if (policy_) {
        j["policy"] = {{"dim", policy_->dim()},
                       {"theta", policy_->Parameters()},
                       {"m", policy_->MomentsM()},
                       {"v", policy_->MomentsV()},
                       {"step", policy_->steps()}};
      }
      return j.dump();
    } catch (const std::exception& e) {
      return Status::Internal(std::string("engine checkpoint failed: ") +
                              e.what());
    }
  }

  Status RestoreCheckpoint(std::string_view blob) {
    try {
      nlohmann::json j = nlohmann::json::parse(blob);
      if (j.at("format") != kCheckpointFormat ||
          j.at("intervention") != options_.intervention ||
          j.at("list_size") != options_.list_size ||
          j.at("policy_hidden") != options_.policy_hidden) {
        return Status::InvalidArgument(
            "engine checkpoint was written with another intervention, list "
            "size or policy shape");
      }
      std::unique_ptr<cf::GaussianPolicy> policy;
      if (j.contains("policy")) {
        const auto& p = j.at("policy");
        std::mt19937_64 unused(0);
        policy = std::make_unique<cf::GaussianPolicy>(
            p.at("dim").get<int>(), options_.policy_hidden, options_.policy_std,
            options_.learn_std, options_.policy_lr, unused);
        CFREC_RETURN_IF_ERROR(policy->Restore(
            p.at("theta").get<std::vector<float>>(),
            p.at("m").get<std::vector<float>>(),
            p.at("v").get<std::vector<float>>(), p.at("step").get<uint64_t>()));
      }
      std::istringstream rng_text(j.at("rng").get<std::string>());
      std::mt19937_64 rng;
      rng_text >> rng;
      if (rng_text.fail()) {
        return Status::Corruption("engine checkpoint: bad generator state");
      }
      const auto& s = j.at("stats");
      CounterfactualStats stats;
      stats.rounds = s.at("rounds");
      stats.lists_generated = s.at("lists_generated");
      stats.samples_generated = s.at("samples_generated");
      stats.pretrain_lists = s.at("pretrain_lists");
      stats.policy_updates = s.at("policy_updates");
      stats.users_skipped = s.at("users_skipped");
      stats.mean_reward = s.at("mean_reward");
      stats.seconds = s.at("seconds");
      baseline_ = j.at("baseline");
      baseline_set_ = j.at("baseline_set");
      stats.baseline = baseline_;
      stats_ = stats;
      rng_ = rng;
      policy_ = std::move(policy);
      return Status::Ok();
    } catch (const std::exception& e) {
      return Status::Corruption(std::string("engine checkpoint unreadable: ") +
                                e.what());
    }
  }

 private:
  // Per-round copies of item terms that every list reuses.
  struct ItemTerms {
    std::vector<float> w_mu;     // w^R_k mu_alpha_k
    std::vector<float> w_sigma;  // w^R_k sigma_alpha_k
  };

  void PrepareItems(const SemView& v, ItemTerms& t) const {
    t.w_mu.resize(v.num_items);
    t.w_sigma.resize(v.num_items);
    for (size_t k = 0; k < v.num_items; ++k) {
      t.w_mu[k] = v.w_r[k] * v.mu_alpha[k];
      t.w_sigma[k] = v.w_r[k] * std::exp(v.log_sigma_alpha[k]);
    }
  }

  // A fresh pool of `size` distinct items (stamp-marking rejection; size is
  // at most half the catalog, so a draw is accepted with p >= 1/2).
  void DrawPool(size_t num_items, size_t size, std::vector<uint32_t>& pool) {
    if (stamp_.size() < num_items) stamp_.resize(num_items, 0);
    if (++epoch_ == 0) {  // wrapped: clear the marks
      std::fill(stamp_.begin(), stamp_.end(), 0);
      epoch_ = 1;
    }
    pool.clear();
    std::uniform_int_distribution<uint32_t> any(
        0, static_cast<uint32_t>(num_items - 1));
    while (pool.size() < size) {
      uint32_t i = any(rng_);
      if (stamp_[i] == epoch_) continue;
      stamp_[i] = epoch_;
      pool.push_back(i);
    }
  }

  // Abduction of alpha and the action step for one list: the K items of
  // the pool (or catalog) with the largest tau^T Q_k + w^R_k alpha_k; with
  // an exploration share, only the top K - E of them, and E more drawn
  // uniformly from the rest of the pool (or catalog) at uniform positions.
  void Action(const SemView& v, const ItemTerms& t, const float* tau,
              std::vector<uint32_t>& pool, std::vector<float>& eps,
              std::vector<uint32_t>& list) {
    const int dim = v.dim;
    const int explored = ExploredSlots();
    TopKeeper top(options_.list_size - explored);
    size_t pool_size = size_t(options_.candidate_pool);
    const bool pooled = pool_size > 0 && 2 * pool_size <= v.num_items;
    if (pooled) {
      DrawPool(v.num_items, pool_size, pool);
      eps.resize(pool.size());
      cf::FillNormal(rng_, eps.data(), eps.size());
      for (size_t n = 0; n < pool.size(); ++n) {
        uint32_t k = pool[n];
        top.Offer(Dot(tau, v.q + size_t(k) * dim, dim) + t.w_mu[k] +
                      t.w_sigma[k] * eps[n],
                  k);
      }
    } else {
      eps.resize(v.num_items);
      cf::FillNormal(rng_, eps.data(), eps.size());
      const float* q = v.q;
      for (size_t k = 0; k < v.num_items; ++k, q += dim) {
        top.Offer(Dot(tau, q, dim) + t.w_mu[k] + t.w_sigma[k] * eps[k],
                  static_cast<uint32_t>(k));
      }
    }
    list = top.items();
    if (explored > 0) {
      Explore(pooled ? std::span<const uint32_t>(pool)
                     : std::span<const uint32_t>(),
              v.num_items, explored, list);
    }
  }

  // E of CounterfactualOptions::explore_share: lround(share * K) slots
  // (halves away from zero), at most K - 1 (the policy keeps one). Used by
  // pretraining and generation alike; TopK ignores it.
  int ExploredSlots() const {
    const int k = options_.list_size;
    return std::min(k - 1,
                    static_cast<int>(std::lround(options_.explore_share * k)));
  }

  // Adds `count` items not in `list`, uniformly from `pool` (or from the
  // catalog of `num_items` when the pool is empty), each at a uniform
  // position of the list. The pool (at least K distinct items) or the
  // catalog (at least K items) always has enough.
  void Explore(std::span<const uint32_t> pool, size_t num_items, int count,
               std::vector<uint32_t>& list) {
    const size_t from = pool.empty() ? num_items : pool.size();
    std::uniform_int_distribution<size_t> any(0, from - 1);
    for (int e = 0; e < count; ++e) {
      uint32_t item;
      do {
        size_t n = any(rng_);
        item = pool.empty() ? static_cast<uint32_t>(n) : pool[n];
      } while (std::find(list.begin(), list.end(), item) != list.end());
      std::uniform_int_distribution<size_t> at(0, list.size());
      list.insert(list.begin() + static_cast<std::ptrdiff_t>(at(rng_)), item);
    }
  }

  // CPR-r: K distinct items uniformly from the catalog.
  void RandomList(size_t num_items, std::vector<uint32_t>& list) {
    list.clear();
    std::uniform_int_distribution<uint32_t> any(
        0, static_cast<uint32_t>(num_items - 1));
    while (list.size() < size_t(options_.list_size)) {
      uint32_t i = any(rng_);
      if (std::find(list.begin(), list.end(), i) == list.end()) {
        list.push_back(i);
      }
    }
  }

  // Abduction of beta and prediction, eq. (10): p_S(r_j | u, r, beta).
  void Predict(const SemView& v, uint32_t user,
               const std::vector<uint32_t>& list, std::vector<float>& probs) {
    const size_t k_len = list.size();
    std::vector<float> eps(k_len);
    cf::FillNormal(rng_, eps.data(), k_len);
    probs.resize(k_len);
    const float* x = v.x + size_t(user) * v.dim;
    float max = -std::numeric_limits<float>::infinity();
    for (size_t j = 0; j < k_len; ++j) {
      size_t pos = std::min<size_t>(j, size_t(v.max_positions) - 1);
      float beta = v.mu_beta[pos] + std::exp(v.log_sigma_beta[pos]) * eps[j];
      probs[j] =
          Dot(x, v.y + size_t(list[j]) * v.dim, v.dim) + v.w_s[pos] * beta;
      max = std::max(max, probs[j]);
    }
    float sum = 0;
    for (float& p : probs) sum += (p = std::exp(p - max));
    for (float& p : probs) p /= sum;
  }

  // Noise control (section 3.3.3): the k most likely clicked items against
  // the k least likely, k*k pairs. Items of a list are distinct and 2k <= K,
  // so no item is paired with itself.
  void NoiseControl(uint32_t user, const std::vector<uint32_t>& list,
                    const std::vector<float>& probs,
                    std::vector<CounterfactualSample>& out) {
    std::vector<int> order(list.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return probs[a] > probs[b]; });
    const int k = options_.noise_k;
    const int n = static_cast<int>(list.size());
    for (int a = 0; a < k; ++a) {
      for (int b = n - k; b < n; ++b) {
        out.push_back({user, list[order[a]], list[order[b]]});
      }
    }
  }

  // The lists and their clicks come from the tables of `simulator`, the
  // reward from `learner`'s ranker (the learner's own SEMs unless the
  // caller brings a simulator of its own).
  Status Round(Learner& learner, const SemView& simulator,
               std::span<const uint32_t> users, bool explore, bool pretrain,
               Trace* trace, std::vector<CounterfactualSample>& samples) {
    const bool learned = options_.intervention == "learned";
    SemView v = simulator;
    if (!Complete(v)) return Status::Internal("SEM tables unavailable");
    if (v.num_items < size_t(options_.list_size)) return Status::Ok();
    const int dim = v.dim;
    if (learned && !policy_) {
      policy_ = std::make_unique<cf::GaussianPolicy>(
          dim, options_.policy_hidden, options_.policy_std, options_.learn_std,
          options_.policy_lr, rng_);
    }
    if (learned && policy_->dim() != dim) {
      return Status::FailedPrecondition("policy was built for another sem_dim");
    }
    ItemTerms terms;
    if (learned) PrepareItems(v, terms);
    std::vector<float> xs, taus, mu(dim), h(learned ? policy_->hidden() : 0),
        noise(dim), explore_noise(dim), eps, probs;
    std::vector<uint32_t> list, pool;
    std::vector<size_t> list_begin;  // first sample of each list
    const size_t first = samples.size();
    for (uint32_t user : users) {
      if (user >= v.num_users) {
        ++stats_.users_skipped;
        continue;
      }
      if (learned) {
        const float* x = v.p + size_t(user) * dim;
        policy_->Mean(x, mu.data(), h.data());
        cf::FillNormal(rng_, noise.data(), dim);
        if (explore) {
          cf::FillNormal(rng_, explore_noise.data(), dim);
        }
        size_t base = taus.size();
        taus.resize(base + dim);
        for (int d = 0; d < dim; ++d) {
          // tau ~ pi(.|u) (+ N_t while pretraining, Algorithm 2 line 5).
          taus[base + d] =
              mu[d] + policy_->Std(d) * noise[d] +
              (explore ? float(options_.exploration_std) * explore_noise[d]
                       : 0.0f);
        }
        xs.insert(xs.end(), x, x + dim);
        Action(v, terms, taus.data() + base, pool, eps, list);
      } else {
        RandomList(v.num_items, list);
      }
      Predict(v, user, list, probs);
      list_begin.push_back(samples.size());
      NoiseControl(user, list, probs, samples);
      if (trace != nullptr) {
        trace->users.push_back(user);
        trace->lists.insert(trace->lists.end(), list.begin(), list.end());
        trace->probabilities.insert(trace->probabilities.end(), probs.begin(),
                                    probs.end());
      }
    }
    const size_t lists = list_begin.size();
    if (lists == 0) return Status::Ok();
    if (pretrain) {
      stats_.pretrain_lists += lists;
    } else {
      ++stats_.rounds;
      stats_.lists_generated += lists;
      stats_.samples_generated += samples.size() - first;
    }
    // Reward of each list: the target ranker's loss on C(tau) (eq. 11).
    std::span<const CounterfactualSample> mine(samples.data() + first,
                                               samples.size() - first);
    std::vector<float> losses(mine.size());
    CFREC_RETURN_IF_ERROR(learner.RankerSampleLosses(mine, losses));
    std::vector<double> rewards(lists);
    double mean = 0;
    const size_t per_list = size_t(options_.noise_k) * options_.noise_k;
    for (size_t t = 0; t < lists; ++t) {
      size_t b = list_begin[t] - first;
      double r = 0;
      for (size_t s = 0; s < per_list; ++s) r += losses[b + s];
      rewards[t] = r / double(per_list);
      mean += rewards[t];
    }
    mean /= double(lists);
    stats_.mean_reward = mean;
    if (!baseline_set_) {
      baseline_ = mean;
      baseline_set_ = true;
    }
    if (learned) {
      // REINFORCE with the running baseline (Algorithm 2, line 9).
      std::vector<double> advantages(lists);
      for (size_t t = 0; t < lists; ++t) advantages[t] = rewards[t] - baseline_;
      policy_->Update(xs, taus, advantages);
      ++stats_.policy_updates;
    }
    baseline_ = options_.baseline_decay * baseline_ +
                (1 - options_.baseline_decay) * mean;
    stats_.baseline = baseline_;
    return Status::Ok();
  }

  CounterfactualOptions options_;
  std::mt19937_64 rng_;
  std::unique_ptr<cf::GaussianPolicy> policy_;
  double baseline_ = 0;
  bool baseline_set_ = false;
  CounterfactualStats stats_;
  // Pool marks: item -> epoch of the pool that holds it (scratch, not
  // state: the epoch only has to differ from older pools').
  std::vector<uint32_t> stamp_;
  uint32_t epoch_ = 0;
};

Result<std::unique_ptr<CounterfactualEngine>> CounterfactualEngine::Create(
    const CounterfactualOptions& options) {
  CFREC_RETURN_IF_ERROR(ValidateCounterfactualOptions(options));
  return std::unique_ptr<CounterfactualEngine>(
      new CounterfactualEngine(std::make_unique<Impl>(options)));
}

CounterfactualEngine::CounterfactualEngine(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
CounterfactualEngine::~CounterfactualEngine() = default;

Status CounterfactualEngine::Pretrain(Learner& learner,
                                      std::span<const uint32_t> users) {
  return Pretrain(learner, learner.sem_view(), users);
}

Status CounterfactualEngine::Pretrain(Learner& learner,
                                      const SemView& simulator,
                                      std::span<const uint32_t> users) {
  try {
    return impl_->Pretrain(learner, simulator, users);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("pretraining failed: ") + e.what());
  }
}

Result<std::vector<CounterfactualSample>> CounterfactualEngine::Generate(
    Learner& learner, std::span<const uint32_t> users) {
  return Generate(learner, users, nullptr);
}

Result<std::vector<CounterfactualSample>> CounterfactualEngine::Generate(
    Learner& learner, std::span<const uint32_t> users, Trace* trace) {
  return Generate(learner, learner.sem_view(), users, trace);
}

Result<std::vector<CounterfactualSample>> CounterfactualEngine::Generate(
    Learner& learner, const SemView& simulator, std::span<const uint32_t> users,
    Trace* trace) {
  try {
    return impl_->Generate(learner, simulator, users, trace);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("counterfactual round failed: ") +
                            e.what());
  }
}

Result<std::vector<uint32_t>> CounterfactualEngine::TopK(
    const Learner& learner, std::span<const float> tau,
    std::span<const float> alpha) const {
  return impl_->TopK(learner, tau, alpha);
}

std::vector<float> CounterfactualEngine::PolicyMean(const Learner& learner,
                                                    uint32_t user) const {
  return impl_->PolicyMean(learner, user);
}

const CounterfactualOptions& CounterfactualEngine::options() const {
  return impl_->options();
}
const CounterfactualStats& CounterfactualEngine::stats() const {
  return impl_->stats();
}
Result<std::string> CounterfactualEngine::SaveCheckpoint() const {
  return impl_->SaveCheckpoint();
}
Status CounterfactualEngine::RestoreCheckpoint(std::string_view blob) {
  return impl_->RestoreCheckpoint(blob);
}

}  // namespace cfrec::learner
