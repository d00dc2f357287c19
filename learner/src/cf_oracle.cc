#include "cf_oracle.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

namespace cfrec::learner::cf {

OracleSimulator::OracleSimulator(std::shared_ptr<const eval::TrueModel> truth,
                                 int list_size, int noise_k, bool clicks_only,
                                 uint64_t seed)
    : truth_(std::move(truth)),
      list_size_(list_size),
      noise_k_(noise_k),
      clicks_only_(clicks_only),
      rng_(seed) {}

const std::vector<float>& OracleSimulator::ExposureRow(uint32_t user) {
  if (exposure_.size() < truth_->num_users()) {
    exposure_.resize(truth_->num_users());
  }
  std::vector<float>& row = exposure_[user];
  if (row.empty()) {
    row.resize(truth_->num_items());
    for (uint32_t k = 0; k < truth_->num_items(); ++k) {
      row[k] = static_cast<float>(truth_->Exposure(user, k));
    }
  }
  return row;
}

void OracleSimulator::Generate(std::span<const uint32_t> users,
                               std::vector<CounterfactualSample>& out,
                               CounterfactualEngine::Trace* trace) {
  const size_t n_items = truth_->num_items();
  const size_t k_len = static_cast<size_t>(list_size_);
  if (n_items < k_len) return;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<std::pair<float, uint32_t>> keys(n_items);
  std::vector<uint32_t> list(k_len);
  std::vector<double> logit(k_len), prob(k_len);
  std::vector<int> order(k_len);
  for (uint32_t user : users) {
    if (user >= truth_->num_users()) continue;
    // Gumbel-top-K: the first K of Plackett-Luce with weights exp(r_ij).
    const std::vector<float>& r = ExposureRow(user);
    for (uint32_t k = 0; k < n_items; ++k) {
      double u = std::max(unit(rng_), 1e-300);
      keys[k] = {r[k] - static_cast<float>(std::log(-std::log(u))), k};
    }
    std::partial_sort(
        keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(k_len),
        keys.end(), [](const auto& a, const auto& b) { return a > b; });
    for (size_t j = 0; j < k_len; ++j) {
      list[j] = keys[j].second;
      logit[j] = truth_->ClickLogit(user, list[j]);
      prob[j] = truth_->ClickProbability(user, list[j]);
    }
    const std::vector<double>& key = clicks_only_ ? prob : logit;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return key[a] > key[b]; });
    const int n = static_cast<int>(k_len);
    for (int a = 0; a < noise_k_; ++a) {
      for (int b = n - noise_k_; b < n; ++b) {
        if (clicks_only_ && !(key[order[a]] > key[order[b]])) continue;
        out.push_back({user, list[order[a]], list[order[b]]});
      }
    }
    if (trace != nullptr) {
      trace->users.push_back(user);
      for (int j : order) {
        trace->lists.push_back(list[j]);
        trace->probabilities.push_back(static_cast<float>(prob[j]));
      }
    }
  }
}

}  // namespace cfrec::learner::cf
