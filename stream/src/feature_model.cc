#include "cfrec/stream/feature_model.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "coding.h"

namespace cfrec::stream {

float FeatureModel::Score(const FeatureRow& row) const {
  float s = 0;
  for (int f = 0; f < kNumFeatures; ++f) s += weights_[f] * row[f];
  return s;
}

double FeatureModel::AddClickGradient(
    std::span<const FeatureRow> rows, std::span<const uint8_t> clicked,
    size_t pos, std::array<double, kNumFeatures>& grad) const {
  // Softmax over {pos} and the unclicked items.
  std::vector<double> logits;
  std::vector<size_t> members;
  logits.reserve(rows.size());
  members.reserve(rows.size());
  for (size_t k = 0; k < rows.size(); ++k) {
    if (k != pos && clicked[k]) continue;
    members.push_back(k);
    logits.push_back(Score(rows[k]));
  }
  const double mx = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (double& l : logits) {
    l = std::exp(l - mx);
    z += l;
  }
  double p_pos = 0;
  for (size_t m = 0; m < members.size(); ++m) {
    const double p = logits[m] / z;
    const double g = members[m] == pos ? p - 1 : p;
    if (members[m] == pos) p_pos = p;
    for (int f = 0; f < kNumFeatures; ++f) grad[f] += g * rows[members[m]][f];
  }
  return -std::log(std::max(p_pos, 1e-12));
}

void FeatureModel::Step(const std::array<double, kNumFeatures>& grad,
                        int clicks, double loss) {
  for (int f = 0; f < kNumFeatures; ++f) {
    const double g = grad[f] / clicks + options_.l2 * weights_[f];
    grad_sq_[f] += g * g;
    weights_[f] -=
        static_cast<float>(options_.learning_rate * g / std::sqrt(grad_sq_[f]));
  }
  ++steps_;
  const double l = loss / clicks;
  loss_ema_ = steps_ == 1 ? l : 0.99 * loss_ema_ + 0.01 * l;
}

bool FeatureModel::TrainList(std::span<const FeatureRow> rows,
                             std::span<const uint8_t> clicked) {
  const size_t n = std::min(rows.size(), clicked.size());
  int clicks = 0;
  for (size_t k = 0; k < n; ++k) clicks += clicked[k] != 0;
  if (clicks == 0 || clicks == static_cast<int>(n)) return false;
  std::array<double, kNumFeatures> grad{};
  double loss = 0;
  for (size_t k = 0; k < n; ++k) {
    if (clicked[k]) {
      loss += AddClickGradient(rows.first(n), clicked.first(n), k, grad);
    }
  }
  Step(grad, clicks, loss);
  return true;
}

bool FeatureModel::TrainClick(std::span<const FeatureRow> rows,
                              std::span<const uint8_t> clicked, size_t pos) {
  const size_t n = std::min(rows.size(), clicked.size());
  if (pos >= n) return false;
  size_t others = 0;
  for (size_t k = 0; k < n; ++k) others += k != pos && !clicked[k];
  if (others == 0) return false;
  std::array<double, kNumFeatures> grad{};
  const double loss =
      AddClickGradient(rows.first(n), clicked.first(n), pos, grad);
  Step(grad, 1, loss);
  return true;
}

void FeatureModel::AppendTo(std::string* out) const {
  coding::Put(out, static_cast<uint32_t>(kNumFeatures));
  for (float w : weights_) coding::Put(out, w);
  for (double g : grad_sq_) coding::Put(out, g);
  coding::Put(out, steps_);
  coding::Put(out, loss_ema_);
}

Status FeatureModel::ReadFrom(std::string_view* in) {
  uint32_t n = 0;
  if (!coding::Get(in, &n)) {
    return Status::Corruption("stream feature model: truncated");
  }
  if (n != kNumFeatures) {
    return Status::Corruption("stream feature model: " + std::to_string(n) +
                              " features, this build has " +
                              std::to_string(kNumFeatures));
  }
  Weights w;
  std::array<double, kNumFeatures> g;
  uint64_t steps = 0;
  double loss = 0;
  bool ok = true;
  for (float& x : w) ok = ok && coding::Get(in, &x);
  for (double& x : g) ok = ok && coding::Get(in, &x);
  ok = ok && coding::Get(in, &steps) && coding::Get(in, &loss);
  if (!ok) return Status::Corruption("stream feature model: truncated");
  weights_ = w;
  grad_sq_ = g;
  steps_ = steps;
  loss_ema_ = loss;
  return Status::Ok();
}

}  // namespace cfrec::stream
