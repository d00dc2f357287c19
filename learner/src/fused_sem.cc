#include "fused_sem.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <stdexcept>

namespace cfrec::learner {
namespace {

inline double Softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

// 8 partial sums (lanes of one vector), added in order at the end.
inline float Dot(const float* __restrict a, const float* __restrict b,
                 int64_t dim) {
  constexpr int kLanes = 8;
  float acc[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[d + l] * b[d + l];
  }
  float s = 0;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  for (; d < dim; ++d) s += a[d] * b[d];
  return s;
}

inline void Axpy(float a, const float* __restrict x, float* __restrict y,
                 int64_t dim) {
  for (int64_t d = 0; d < dim; ++d) y[d] += a * x[d];
}

void CheckRows(std::span<const int64_t> index, int64_t rows, const char* what) {
  for (int64_t r : index) {
    if (r < 0 || r >= rows) {
      throw std::out_of_range(std::string("fused SEM step: ") + what +
                              " row out of range");
    }
  }
}

// The SEM kernels read tables as three separate row-major tables.
void CheckSeparate(std::initializer_list<const RawParam*> tables) {
  for (const RawParam* t : tables) {
    if (t->stride != t->cols) {
      throw std::invalid_argument(
          "fused SEM step: tables must be laid out separately");
    }
  }
}

}  // namespace

void FusedSemStep::Prepare(int64_t n, int64_t users, int64_t items,
                           int64_t dim) {
  users_.Reset(users);
  items_.Reset(items);
  su_.resize(n);
  si_.resize(n);
  (void)dim;
}

void FusedSemStep::UpdateRows(const RawParam& table, const RowIndex& index,
                              const float* grad, const AdamOptions& adam) {
  ++*table.step;
  const AdamScalars s(adam, *table.step);
  const int64_t cols = table.cols;
  for (int64_t k = 0; k < index.size(); ++k) {
    const int64_t off = index.rows[k] * cols;
    AdamRow(s, grad + k * cols, table.value + off, table.m + off, table.v + off,
            cols);
  }
}

double FusedSemStep::Impression(const ImpressionParams& p,
                                std::span<const int64_t> user,
                                std::span<const int64_t> item,
                                std::span<const float> shown,
                                std::span<const float> alpha, int draws,
                                const AdamOptions& adam) {
  const int64_t n = static_cast<int64_t>(user.size());
  if (n == 0) return 0;
  if (item.size() != user.size() || shown.size() != user.size() ||
      alpha.size() != static_cast<size_t>(draws) * user.size()) {
    throw std::invalid_argument("fused p_R step: inputs differ in length");
  }
  CheckSeparate({&p.p, &p.q, &p.w});
  CheckRows(user, p.p.rows, "user");
  CheckRows(item, std::min(p.q.rows, p.w.rows), "item");
  const int64_t dim = p.p.cols;
  Prepare(n, p.p.rows, std::max(p.q.rows, p.w.rows), dim);
  for (int64_t k = 0; k < n; ++k) {
    su_[k] = users_.Slot(user[k]);
    si_[k] = items_.Slot(item[k]);
  }
  user_grad_.assign(users_.size() * dim, 0.0f);
  item_grad_.assign(items_.size() * dim, 0.0f);
  w_grad_.assign(items_.size(), 0.0f);
  const float scale = 1.0f / static_cast<float>(draws * n);
  double loss = 0;
  for (int64_t k = 0; k < n; ++k) {
    const float* pu = p.p.value + user[k] * dim;
    const float* qi = p.q.value + item[k] * dim;
    const float wi = p.w.value[item[k]];
    const float y = shown[k];
    const float dot = Dot(pu, qi, dim);
    float g_dot = 0, g_w = 0;
    for (int s = 0; s < draws; ++s) {
      const float a = alpha[s * n + k];
      const float logit = dot + wi * a;
      const float g = (1.0f / (1.0f + std::exp(-logit)) - y) * scale;
      g_dot += g;
      g_w += g * a;
      loss += Softplus(logit) - static_cast<double>(y) * logit;
    }
    Axpy(g_dot, qi, user_grad_.data() + su_[k] * dim, dim);
    Axpy(g_dot, pu, item_grad_.data() + si_[k] * dim, dim);
    w_grad_[si_[k]] += g_w;
  }
  UpdateRows(p.p, users_, user_grad_.data(), adam);
  UpdateRows(p.q, items_, item_grad_.data(), adam);
  UpdateRows(p.w, items_, w_grad_.data(), adam);
  users_.Clear();
  items_.Clear();
  return loss / static_cast<double>(draws * n);
}

double FusedSemStep::Selection(const SelectionParams& p,
                               const SelectionBatch& b,
                               std::span<const float> beta, int draws,
                               const AdamOptions& adam) {
  const int64_t n = static_cast<int64_t>(b.user.size());
  const int64_t clicks = static_cast<int64_t>(b.click_entry.size());
  if (n == 0 || clicks == 0) return 0;
  if (b.item.size() != b.user.size() || b.position.size() != b.user.size() ||
      b.segment.size() != b.user.size() ||
      b.click_segment.size() != b.click_entry.size() ||
      beta.size() != static_cast<size_t>(draws) * b.user.size()) {
    throw std::invalid_argument("fused p_S step: inputs differ in length");
  }
  CheckSeparate({&p.x, &p.y});
  CheckRows(b.user, p.x.rows, "user");
  CheckRows(b.item, p.y.rows, "item");
  CheckRows(b.position, p.w.cols, "position");
  CheckRows(b.segment, b.segments, "list");
  CheckRows(b.click_entry, n, "clicked entry");
  const int64_t dim = p.x.cols;
  const int64_t segs = b.segments;
  Prepare(n, p.x.rows, p.y.rows, dim);
  for (int64_t t = 0; t < n; ++t) {
    su_[t] = users_.Slot(b.user[t]);
    si_[t] = items_.Slot(b.item[t]);
  }
  // Forward: logits [draws, n] and each list's log-sum-exp [draws, segs].
  logits_.resize(draws * n);
  lse_.assign(draws * segs, -std::numeric_limits<float>::infinity());
  const float* ws = p.w.value;
  for (int64_t t = 0; t < n; ++t) {
    const float dot =
        Dot(p.x.value + b.user[t] * dim, p.y.value + b.item[t] * dim, dim);
    for (int s = 0; s < draws; ++s) {
      const float l = dot + ws[b.position[t]] * beta[s * n + t];
      logits_[s * n + t] = l;
      float& m = lse_[s * segs + b.segment[t]];
      m = std::max(m, l);
    }
  }
  std::vector<float> sums(draws * segs, 0.0f);
  for (int s = 0; s < draws; ++s) {
    for (int64_t t = 0; t < n; ++t) {
      const int64_t g = s * segs + b.segment[t];
      sums[g] += std::exp(logits_[s * n + t] - lse_[g]);
    }
  }
  for (int64_t g = 0; g < draws * segs; ++g) lse_[g] += std::log(sums[g]);
  // Clicks per list and per entry.
  std::vector<float> per_list(segs, 0.0f), per_entry(n, 0.0f);
  double loss = 0;
  for (int64_t c = 0; c < clicks; ++c) {
    per_list[b.click_segment[c]] += 1;
    per_entry[b.click_entry[c]] += 1;
    for (int s = 0; s < draws; ++s) {
      loss -= logits_[s * n + b.click_entry[c]] -
              lse_[s * segs + b.click_segment[c]];
    }
  }
  // Backward: dL/dlogit = (clicks of the list * softmax - clicks of the
  // entry) / (draws * clicks).
  user_grad_.assign(users_.size() * dim, 0.0f);
  item_grad_.assign(items_.size() * dim, 0.0f);
  w_grad_.assign(p.w.cols, 0.0f);
  const float scale = 1.0f / static_cast<float>(draws * clicks);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t seg = b.segment[t];
    float g_dot = 0, g_w = 0;
    for (int s = 0; s < draws; ++s) {
      const float soft = std::exp(logits_[s * n + t] - lse_[s * segs + seg]);
      const float g = (per_list[seg] * soft - per_entry[t]) * scale;
      g_dot += g;
      g_w += g * beta[s * n + t];
    }
    const float* xu = p.x.value + b.user[t] * dim;
    const float* yi = p.y.value + b.item[t] * dim;
    Axpy(g_dot, yi, user_grad_.data() + su_[t] * dim, dim);
    Axpy(g_dot, xu, item_grad_.data() + si_[t] * dim, dim);
    w_grad_[b.position[t]] += g_w;
  }
  UpdateRows(p.x, users_, user_grad_.data(), adam);
  UpdateRows(p.y, items_, item_grad_.data(), adam);
  AdamDense(adam, w_grad_.data(), p.w);
  users_.Clear();
  items_.Clear();
  return loss / static_cast<double>(draws * clicks);
}

}  // namespace cfrec::learner
