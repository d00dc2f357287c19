#include "cf_policy.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace cfrec::learner::cf {
namespace {

constexpr double kAdamBeta1 = 0.9;
constexpr double kAdamBeta2 = 0.999;
constexpr double kAdamEps = 1e-8;
// W2 starts at this fraction of its Xavier range, so mu starts near x.
constexpr double kOutputInitScale = 0.1;

void FillUniform(std::mt19937_64& rng, float* out, size_t n, double bound) {
  std::uniform_real_distribution<double> u(-bound, bound);
  for (size_t k = 0; k < n; ++k) out[k] = static_cast<float>(u(rng));
}

}  // namespace

void FillNormal(std::mt19937_64& rng, float* out, size_t n) {
  constexpr float kTwoPi = 2.0f * std::numbers::pi_v<float>;
  constexpr float kInv32 = 1.0f / 4294967296.0f;
  for (size_t k = 0; k < n; k += 2) {
    uint64_t r = rng();
    // Uniforms in (0, 1]: log never sees 0.
    float u1 = (static_cast<float>(r >> 32) + 1.0f) * kInv32;
    float u2 = static_cast<float>(r & 0xffffffffu) * kInv32;
    float radius = std::sqrt(-2.0f * std::log(u1));
    float angle = kTwoPi * u2;
    out[k] = radius * std::cos(angle);
    if (k + 1 < n) out[k + 1] = radius * std::sin(angle);
  }
}

GaussianPolicy::GaussianPolicy(int dim, int hidden, double init_std,
                               bool learn_std, double lr, std::mt19937_64& rng)
    : dim_(dim), hidden_(hidden), learn_std_(learn_std), lr_(lr) {
  theta_.assign(size(), 0.0f);
  m_.assign(size(), 0.0f);
  v_.assign(size(), 0.0f);
  double xavier = std::sqrt(6.0 / double(dim + hidden));
  FillUniform(rng, theta_.data() + w1(), size_t(hidden_) * dim_, xavier);
  FillUniform(rng, theta_.data() + w2(), size_t(dim_) * hidden_,
              kOutputInitScale * xavier);
  std::fill(theta_.begin() + log_std(), theta_.end(),
            static_cast<float>(std::log(init_std)));
}

void GaussianPolicy::Mean(const float* x, float* mu, float* h) const {
  const float* w1p = theta_.data() + w1();
  const float* b1p = theta_.data() + b1();
  for (int j = 0; j < hidden_; ++j) {
    const float* row = w1p + size_t(j) * dim_;
    float a = b1p[j];
    for (int i = 0; i < dim_; ++i) a += row[i] * x[i];
    h[j] = std::max(a, 0.0f);
  }
  const float* w2p = theta_.data() + w2();
  const float* b2p = theta_.data() + b2();
  for (int d = 0; d < dim_; ++d) {
    const float* row = w2p + size_t(d) * hidden_;
    float o = x[d] + b2p[d];
    for (int j = 0; j < hidden_; ++j) o += row[j] * h[j];
    mu[d] = o;
  }
}

float GaussianPolicy::Std(int d) const {
  return std::exp(theta_[log_std() + d]);
}

void GaussianPolicy::Update(std::span<const float> xs,
                            std::span<const float> taus,
                            std::span<const double> advantages) {
  const size_t t_count = advantages.size();
  if (t_count == 0 || xs.size() != t_count * dim_ ||
      taus.size() != t_count * dim_) {
    return;
  }
  std::vector<float> grad(size(), 0.0f);
  std::vector<float> mu(dim_), h(hidden_), g_mu(dim_), dh(hidden_);
  const float* w2p = theta_.data() + w2();
  for (size_t t = 0; t < t_count; ++t) {
    const float* x = xs.data() + t * dim_;
    const float* tau = taus.data() + t * dim_;
    Mean(x, mu.data(), h.data());
    const float scale = static_cast<float>(advantages[t] / double(t_count));
    for (int d = 0; d < dim_; ++d) {
      float sigma = Std(d);
      float z = (tau[d] - mu[d]) / sigma;
      // d log N / d mu = (tau - mu) / sigma^2;
      // d log N / d log sigma = (tau - mu)^2 / sigma^2 - 1.
      g_mu[d] = scale * z / sigma;
      if (learn_std_) grad[log_std() + d] += scale * (z * z - 1.0f);
    }
    std::fill(dh.begin(), dh.end(), 0.0f);
    for (int d = 0; d < dim_; ++d) {
      float* gw2 = grad.data() + w2() + size_t(d) * hidden_;
      const float* row = w2p + size_t(d) * hidden_;
      for (int j = 0; j < hidden_; ++j) {
        gw2[j] += g_mu[d] * h[j];
        dh[j] += row[j] * g_mu[d];
      }
      grad[b2() + d] += g_mu[d];
    }
    for (int j = 0; j < hidden_; ++j) {
      if (h[j] <= 0) continue;  // ReLU gate
      float* gw1 = grad.data() + w1() + size_t(j) * dim_;
      for (int i = 0; i < dim_; ++i) gw1[i] += dh[j] * x[i];
      grad[b1() + j] += dh[j];
    }
  }
  // Adam, ascending.
  ++step_;
  const double bc1 = 1 - std::pow(kAdamBeta1, double(step_));
  const double bc2 = 1 - std::pow(kAdamBeta2, double(step_));
  for (size_t k = 0; k < size(); ++k) {
    double g = grad[k];
    m_[k] = static_cast<float>(kAdamBeta1 * m_[k] + (1 - kAdamBeta1) * g);
    v_[k] = static_cast<float>(kAdamBeta2 * v_[k] + (1 - kAdamBeta2) * g * g);
    double update = lr_ * (m_[k] / bc1) / (std::sqrt(v_[k] / bc2) + kAdamEps);
    theta_[k] = static_cast<float>(theta_[k] + update);
  }
}

std::vector<float> GaussianPolicy::Parameters() const { return theta_; }

Status GaussianPolicy::Restore(std::span<const float> theta,
                               std::span<const float> m,
                               std::span<const float> v, uint64_t step) {
  if (theta.size() != size() || m.size() != size() || v.size() != size()) {
    return Status::InvalidArgument(
        "policy checkpoint has other dimensions than the policy");
  }
  theta_.assign(theta.begin(), theta.end());
  m_.assign(m.begin(), m.end());
  v_.assign(v.begin(), v.end());
  step_ = step;
  return Status::Ok();
}

}  // namespace cfrec::learner::cf
