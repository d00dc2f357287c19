// The optimizer arithmetic shared by ParamSet (the LibTorch path) and the
// fused kernels (fused_mf.h, fused_sem.h): Adam with L2 weight decay on one
// row of a table, and on a dense vector, over raw float storage.
//
// Both paths apply the same formulas to the same float storage, so a fused
// step and a LibTorch step of the same batch differ only in the order of
// the gradient sums (the equivalence test holds them to 1e-5).
#ifndef CFREC_LEARNER_SRC_SPARSE_ADAM_H_
#define CFREC_LEARNER_SRC_SPARSE_ADAM_H_

#include <cmath>
#include <cstdint>

namespace cfrec::learner {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
};

// A parameter's float storage and Adam state, as the fused kernels see it:
// `rows` x `cols` (a dense vector is one row), row r of the value at
// value + r * stride, of the moments at m + r * stride and v + r * stride
// (stride == cols: three separate row-major tables; 3 * cols: one block
// per row, value, m and v adjacent), and the step counter used for bias
// correction.
struct RawParam {
  float* value = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;
  int64_t* step = nullptr;
};

// The per-step scalars of Adam at step count `step` (after incrementing).
struct AdamScalars {
  float b1, b2, eps, wd, step_size, inv_sqrt_bc2;
  AdamScalars(const AdamOptions& o, int64_t step) {
    b1 = static_cast<float>(o.beta1);
    b2 = static_cast<float>(o.beta2);
    eps = static_cast<float>(o.eps);
    wd = static_cast<float>(o.weight_decay);
    const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(step));
    const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(step));
    step_size = static_cast<float>(o.lr / bc1);
    inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  }
};

// Row-wise ("lazy") Adam on one row: w, m, v and the row's gradient g.
inline void AdamRow(const AdamScalars& s, const float* __restrict g,
                    float* __restrict w, float* __restrict m,
                    float* __restrict v, int64_t dim) {
  for (int64_t d = 0; d < dim; ++d) {
    float gd = g[d] + s.wd * w[d];
    m[d] = s.b1 * m[d] + (1 - s.b1) * gd;
    v[d] = s.b2 * v[d] + (1 - s.b2) * gd * gd;
    w[d] -= s.step_size * m[d] / (std::sqrt(v[d]) * s.inv_sqrt_bc2 + s.eps);
  }
}

// The same with the gradient given as the sum of two parts (the per-thread
// halves of a batch; `g1` may be null).
inline void AdamRow2(const AdamScalars& s, const float* __restrict g0,
                     const float* __restrict g1, float* __restrict w,
                     float* __restrict m, float* __restrict v, int64_t dim) {
  if (g1 == nullptr) return AdamRow(s, g0, w, m, v, dim);
  for (int64_t d = 0; d < dim; ++d) {
    float gd = (g0[d] + g1[d]) + s.wd * w[d];
    m[d] = s.b1 * m[d] + (1 - s.b1) * gd;
    v[d] = s.b2 * v[d] + (1 - s.b2) * gd * gd;
    w[d] -= s.step_size * m[d] / (std::sqrt(v[d]) * s.inv_sqrt_bc2 + s.eps);
  }
}

// Plain Adam on a dense parameter with gradient g (every entry updated, as
// ParamSet's dense step does). Increments the step counter.
inline void AdamDense(const AdamOptions& o, const float* g, RawParam p) {
  ++*p.step;
  const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(*p.step));
  const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(*p.step));
  const float b1 = static_cast<float>(o.beta1);
  const float b2 = static_cast<float>(o.beta2);
  const float wd = static_cast<float>(o.weight_decay);
  const float inv_bc2 = static_cast<float>(1.0 / bc2);
  const float eps = static_cast<float>(o.eps);
  const float step_size = static_cast<float>(o.lr / bc1);
  const int64_t n = p.rows * p.cols;
  for (int64_t k = 0; k < n; ++k) {
    float gd = o.weight_decay > 0 ? g[k] + p.value[k] * wd : g[k];
    p.m[k] = p.m[k] * b1 + gd * (1 - b1);
    p.v[k] = p.v[k] * b2 + gd * gd * (1 - b2);
    p.value[k] -= step_size * (p.m[k] / (std::sqrt(p.v[k] * inv_bc2) + eps));
  }
}

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_SPARSE_ADAM_H_
