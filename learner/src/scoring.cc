#include "scoring.h"

#include <algorithm>
#include <limits>

namespace cfrec::learner {
namespace {

// Serving scores every retrieved candidate with this: `omp simd` lets the
// reduction vectorise without -ffast-math (compiled with -fopenmp-simd; no
// OpenMP runtime).
float Dot(const float* a, const float* b, int n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

}  // namespace

void ScoringModel::Score(uint32_t u, std::span<const uint32_t> items,
                         std::span<float> scores) const {
  constexpr float kUnknown = -std::numeric_limits<float>::infinity();
  if (static_cast<int64_t>(u) >= num_users) {
    std::fill(scores.begin(), scores.end(), kUnknown);
    return;
  }
  std::vector<float> a, b;
  for (size_t k = 0; k < items.size(); ++k) {
    uint32_t i = items[k];
    if (static_cast<int64_t>(i) >= num_items) {
      scores[k] = kUnknown;
      continue;
    }
    if (kind == Kind::kDot) {
      scores[k] =
          Dot(&user[size_t{u} * dot_dim], &item[size_t{i} * dot_dim], dot_dim);
      continue;
    }
    float s = bias;
    if (gmf_dim > 0) {
      const float* pu = &gmf_user[size_t{u} * gmf_dim];
      const float* qi = &gmf_item[size_t{i} * gmf_dim];
      for (int d = 0; d < gmf_dim; ++d) s += h_gmf[d] * pu[d] * qi[d];
    }
    if (mlp_dim > 0) {
      a.assign(&mlp_user[size_t{u} * mlp_dim],
               &mlp_user[size_t{u} * mlp_dim] + mlp_dim);
      a.insert(a.end(), &mlp_item[size_t{i} * mlp_dim],
               &mlp_item[size_t{i} * mlp_dim] + mlp_dim);
      for (const DenseLayer& layer : mlp) {
        b.assign(layer.out, 0.0f);
        for (int o = 0; o < layer.out; ++o) {
          float z = layer.b[o] +
                    Dot(&layer.w[size_t(o) * layer.in], a.data(), layer.in);
          b[o] = z > 0 ? z : 0;  // ReLU
        }
        a.swap(b);
      }
      s += Dot(h_mlp.data(), a.data(), static_cast<int>(a.size()));
    }
    scores[k] = s;
  }
}

}  // namespace cfrec::learner
