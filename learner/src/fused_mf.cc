#include "fused_mf.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace cfrec::learner {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Hot loops get AVX-512 and AVX2 clones, chosen at load time by the CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define CFREC_VECTOR_CLONES \
  __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CFREC_VECTOR_CLONES
#endif

// log(1 + exp(x)) without overflow, in float as LibTorch's log_sigmoid
// (the double version's libm calls cost 3% of a BPR step); summed in
// double.
inline float Softplus(float x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

inline void Prefetch(const float* row, int64_t dim) {
  for (int64_t d = 0; d < dim; d += 16) __builtin_prefetch(row + d);
}

// What one thread's gradient pass needs.
struct GradientJob {
  const float* user;  // tables
  const float* item;
  // Adam moments: a row's first touch hints them into the cache for the
  // update pass that follows.
  const float *user_m, *user_v, *item_m, *item_v;
  const float* h;  // GMF only
  float bias;
  bool gmf, pairwise;
  int64_t dim, n, begin, end;
  const int64_t *u, *i, *j;
  const int32_t *su, *si, *sj;
  const float* weight;  // per triple; null: all 1
  float* user_grad;     // this thread's part
  float* item_grad;
  uint8_t* user_touched;
  uint8_t* item_touched;
  float* h_grad;  // GMF only
  double* bias_grad;
  double* loss;
};

// w . qi and w . qj with 8 partial sums each (the lanes of one vector, GCC
// vector extension), so the sums vectorise without reassociating float adds
// behind the compiler's back; the lanes are then added in order.
typedef float Lanes8 __attribute__((vector_size(32)));

inline void DotPair(const float* __restrict w, const float* __restrict qi,
                    const float* __restrict qj, int64_t dim, float* fi,
                    float* fj) {
  Lanes8 ai = {}, aj = {};
  int64_t d = 0;
  for (; d + 8 <= dim; d += 8) {
    Lanes8 x, yi, yj;
    std::memcpy(&x, w + d, sizeof(x));
    std::memcpy(&yi, qi + d, sizeof(yi));
    std::memcpy(&yj, qj + d, sizeof(yj));
    ai += x * yi;
    aj += x * yj;
  }
  float si = 0, sj = 0;
  for (int l = 0; l < 8; ++l) {
    si += ai[l];
    sj += aj[l];
  }
  for (; d < dim; ++d) {
    si += w[d] * qi[d];
    sj += w[d] * qj[d];
  }
  *fi = si;
  *fj = sj;
}

// g (+)= a * x (first touch writes, later touches add).
inline void Axpy(bool first, float a, const float* __restrict x,
                 float* __restrict g, int64_t dim) {
  if (first) {
    for (int64_t d = 0; d < dim; ++d) g[d] = a * x[d];
  } else {
    for (int64_t d = 0; d < dim; ++d) g[d] += a * x[d];
  }
}

CFREC_VECTOR_CLONES
void GradientRange(const GradientJob& job) {
  const int64_t dim = job.dim;
  constexpr int64_t kAhead = 6;
  // Scratch for GMF's h * p_u (one row, reused).
  std::vector<float> hp(job.gmf ? dim : 0);
  double loss = 0, bias_grad = 0;
  const float inv_n = 1.0f / static_cast<float>(job.n);
  for (int64_t k = job.begin; k < job.end; ++k) {
    if (k + kAhead < job.end) {
      Prefetch(job.user + job.u[k + kAhead] * dim, dim);
      Prefetch(job.item + job.i[k + kAhead] * dim, dim);
      Prefetch(job.item + job.j[k + kAhead] * dim, dim);
    }
    const float* __restrict pu = job.user + job.u[k] * dim;
    const float* __restrict qi = job.item + job.i[k] * dim;
    const float* __restrict qj = job.item + job.j[k] * dim;
    const float* __restrict w = pu;  // what multiplies the item rows
    if (job.gmf) {
      for (int64_t d = 0; d < dim; ++d) hp[d] = job.h[d] * pu[d];
      w = hp.data();
    }
    float fi, fj;
    DotPair(w, qi, qj, dim, &fi, &fj);
    if (job.gmf) {
      fi += job.bias;
      fj += job.bias;
    }
    // a = dL/df_i, b = dL/df_j.
    float a, b;
    if (job.pairwise) {
      const float x = fi - fj;
      a = -Sigmoid(-x) * inv_n;
      b = -a;
      if (job.weight != nullptr) {
        a *= job.weight[k];
        b *= job.weight[k];
        loss += static_cast<double>(job.weight[k]) * Softplus(-x);
      } else {
        loss += Softplus(-x);
      }
    } else {
      a = (Sigmoid(fi) - 1.0f) * 0.5f * inv_n;
      b = Sigmoid(fj) * 0.5f * inv_n;
      double l = 0.5 * (static_cast<double>(Softplus(-fi)) + Softplus(fj));
      if (job.weight != nullptr) {
        a *= job.weight[k];
        b *= job.weight[k];
        l *= job.weight[k];
      }
      loss += l;
    }
    // User row: a q_i + b q_j (times h for GMF).
    const int32_t su = job.su[k];
    float* __restrict gu = job.user_grad + su * dim;
    const bool first_u = !job.user_touched[su];
    job.user_touched[su] = 1;
    if (first_u) {
      Prefetch(job.user_m + job.u[k] * dim, dim);
      Prefetch(job.user_v + job.u[k] * dim, dim);
    }
    if (job.gmf) {
      const float* h = job.h;
      if (first_u) {
        for (int64_t d = 0; d < dim; ++d)
          gu[d] = h[d] * (a * qi[d] + b * qj[d]);
      } else {
        for (int64_t d = 0; d < dim; ++d)
          gu[d] += h[d] * (a * qi[d] + b * qj[d]);
      }
      float* __restrict hg = job.h_grad;
      for (int64_t d = 0; d < dim; ++d)
        hg[d] += pu[d] * (a * qi[d] + b * qj[d]);
      bias_grad += static_cast<double>(a) + static_cast<double>(b);
    } else {
      if (first_u) {
        for (int64_t d = 0; d < dim; ++d) gu[d] = a * qi[d] + b * qj[d];
      } else {
        for (int64_t d = 0; d < dim; ++d) gu[d] += a * qi[d] + b * qj[d];
      }
    }
    // Item rows: a w and b w.
    const int32_t si = job.si[k], sj = job.sj[k];
    if (!job.item_touched[si]) {
      Prefetch(job.item_m + job.i[k] * dim, dim);
      Prefetch(job.item_v + job.i[k] * dim, dim);
    }
    Axpy(!job.item_touched[si], a, w, job.item_grad + si * dim, dim);
    job.item_touched[si] = 1;
    if (!job.item_touched[sj]) {
      Prefetch(job.item_m + job.j[k] * dim, dim);
      Prefetch(job.item_v + job.j[k] * dim, dim);
    }
    Axpy(!job.item_touched[sj], b, w, job.item_grad + sj * dim, dim);
    job.item_touched[sj] = 1;
  }
  *job.loss = loss;
  *job.bias_grad = bias_grad;
}

// What one thread's update pass needs: slots [begin, end) of one table.
struct UpdateJob {
  const AdamScalars* adam;
  RawParam table;
  const int64_t* rows;  // slot -> row
  int64_t begin, end;
  const float* const* grads;  // per part: slot x dim
  const uint8_t* const* touched;
  int parts;
  float* scratch;  // dim floats
};

CFREC_VECTOR_CLONES
void UpdateRange(const UpdateJob& job) {
  const int64_t dim = job.table.cols;
  constexpr int64_t kAhead = 8;
  for (int64_t s = job.begin; s < job.end; ++s) {
    if (s + kAhead < job.end) {
      const int64_t ahead = job.rows[s + kAhead] * dim;
      Prefetch(job.table.value + ahead, dim);
      Prefetch(job.table.m + ahead, dim);
      Prefetch(job.table.v + ahead, dim);
    }
    const int64_t off = job.rows[s] * dim;
    const float* g0 = nullptr;
    const float* g1 = nullptr;
    int found = 0;
    for (int p = 0; p < job.parts; ++p) {
      if (!job.touched[p][s]) continue;
      const float* g = job.grads[p] + s * dim;
      if (found == 0) {
        g0 = g;
      } else if (found == 1) {
        g1 = g;
      } else {
        // Three or more threads: sum into the scratch row in thread order.
        if (found == 2) {
          for (int64_t d = 0; d < dim; ++d) job.scratch[d] = g0[d] + g1[d];
          g0 = job.scratch;
          g1 = nullptr;
        }
        for (int64_t d = 0; d < dim; ++d) job.scratch[d] += g[d];
      }
      ++found;
    }
    AdamRow2(*job.adam, g0, g1, job.table.value + off, job.table.m + off,
             job.table.v + off, dim);
  }
}

}  // namespace

FusedMfStep::FusedMfStep(int threads) : pool_(threads) {
  parts_.resize(pool_.threads());
}

double FusedMfStep::Step(const MfParams& p, bool pairwise,
                         std::span<const int64_t> user,
                         std::span<const int64_t> pos,
                         std::span<const int64_t> neg, const AdamOptions& adam,
                         std::span<const float> weights) {
  const int64_t n = static_cast<int64_t>(user.size());
  if (n == 0) return 0;
  if (pos.size() != user.size() || neg.size() != user.size()) {
    throw std::invalid_argument("fused MF step: triples differ in length");
  }
  if (!weights.empty() && weights.size() != user.size()) {
    throw std::invalid_argument(
        "fused MF step: weights and triples differ in length");
  }
  const int64_t dim = p.user.cols;
  auto t0 = Clock::now();
  users_.Reset(p.user.rows);
  items_.Reset(p.item.rows);
  su_.resize(n);
  si_.resize(n);
  sj_.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    if (user[k] < 0 || user[k] >= p.user.rows || pos[k] < 0 ||
        pos[k] >= p.item.rows || neg[k] < 0 || neg[k] >= p.item.rows) {
      users_.Clear();
      items_.Clear();
      throw std::out_of_range("fused MF step: row out of range in triple " +
                              std::to_string(k));
    }
    su_[k] = users_.Slot(user[k]);
    si_[k] = items_.Slot(pos[k]);
    sj_[k] = items_.Slot(neg[k]);
  }
  const int64_t nu = static_cast<int64_t>(users_.rows.size());
  const int64_t ni = static_cast<int64_t>(items_.rows.size());
  for (Part& part : parts_) {
    if (static_cast<int64_t>(part.user_grad.size()) < nu * dim) {
      part.user_grad.resize(nu * dim);
    }
    if (static_cast<int64_t>(part.item_grad.size()) < ni * dim) {
      part.item_grad.resize(ni * dim);
    }
    part.user_touched.assign(nu, 0);
    part.item_touched.assign(ni, 0);
    part.h_grad.assign(p.gmf ? dim : 0, 0.0f);
  }
  user_ = user.data();
  pos_ = pos.data();
  neg_ = neg.data();
  weights_ = weights.empty() ? nullptr : weights.data();
  times_.index += Since(t0);

  auto t1 = Clock::now();
  pool_.Run(pool_.threads(), [&](int t) { Gradients(t, p, pairwise, n); });
  times_.gradient += Since(t1);

  auto t2 = Clock::now();
  ++*p.user.step;
  ++*p.item.step;
  user_adam_ = AdamScalars(adam, *p.user.step);
  item_adam_ = AdamScalars(adam, *p.item.step);
  pool_.Run(pool_.threads(), [&](int t) { Update(t, p, adam); });
  double loss = 0;
  for (const Part& part : parts_) loss += part.loss;
  if (p.gmf) {
    std::vector<float> h_grad(dim, 0.0f);
    double bias_grad = 0;
    for (const Part& part : parts_) {
      for (int64_t d = 0; d < dim; ++d) h_grad[d] += part.h_grad[d];
      bias_grad += part.bias_grad;
    }
    AdamDense(adam, h_grad.data(), p.h);
    std::vector<float> b(p.bias.rows * p.bias.cols,
                         static_cast<float>(bias_grad));
    AdamDense(adam, b.data(), p.bias);
  }
  users_.Clear();
  items_.Clear();
  times_.update += Since(t2);
  return loss / static_cast<double>(n);
}

void FusedMfStep::Gradients(int t, const MfParams& p, bool pairwise,
                            int64_t n) {
  const int threads = pool_.threads();
  Part& part = parts_[t];
  GradientJob job;
  job.user = p.user.value;
  job.item = p.item.value;
  job.user_m = p.user.m;
  job.user_v = p.user.v;
  job.item_m = p.item.m;
  job.item_v = p.item.v;
  job.h = p.gmf ? p.h.value : nullptr;
  job.bias = p.gmf ? p.bias.value[0] : 0.0f;
  job.gmf = p.gmf;
  job.pairwise = pairwise;
  job.dim = p.user.cols;
  job.n = n;
  job.begin = n * t / threads;
  job.end = n * (t + 1) / threads;
  job.u = user_;
  job.i = pos_;
  job.j = neg_;
  job.su = su_.data();
  job.si = si_.data();
  job.sj = sj_.data();
  job.weight = weights_;
  job.user_grad = part.user_grad.data();
  job.item_grad = part.item_grad.data();
  job.user_touched = part.user_touched.data();
  job.item_touched = part.item_touched.data();
  job.h_grad = part.h_grad.data();
  job.bias_grad = &part.bias_grad;
  job.loss = &part.loss;
  GradientRange(job);
}

void FusedMfStep::Update(int t, const MfParams& p, const AdamOptions&) {
  const int threads = pool_.threads();
  const int64_t dim = p.user.cols;
  std::vector<const float*> user_grads, item_grads;
  std::vector<const uint8_t*> user_touched, item_touched;
  for (const Part& part : parts_) {
    user_grads.push_back(part.user_grad.data());
    item_grads.push_back(part.item_grad.data());
    user_touched.push_back(part.user_touched.data());
    item_touched.push_back(part.item_touched.data());
  }
  std::vector<float> scratch(dim);
  auto run = [&](const AdamScalars& adam, const RawParam& table,
                 const RowIndex& index, const std::vector<const float*>& grads,
                 const std::vector<const uint8_t*>& touched) {
    const int64_t slots = static_cast<int64_t>(index.rows.size());
    UpdateJob job;
    job.adam = &adam;
    job.table = table;
    job.rows = index.rows.data();
    job.begin = slots * t / threads;
    job.end = slots * (t + 1) / threads;
    job.grads = grads.data();
    job.touched = touched.data();
    job.parts = static_cast<int>(grads.size());
    job.scratch = scratch.data();
    UpdateRange(job);
  };
  run(user_adam_, p.user, users_, user_grads, user_touched);
  run(item_adam_, p.item, items_, item_grads, item_touched);
}

}  // namespace cfrec::learner
