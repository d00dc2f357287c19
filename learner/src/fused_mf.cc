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

// The loss's sigmoid and softplus, in float as LibTorch's log_sigmoid (the
// double version's libm calls cost 3% of a BPR step; the losses are summed
// in double): sigma(-z) and softplus(-z) = log(1 + exp(-z)) from one
// exponential e = exp(-|z|), without overflow: sigma(-z) = e / (1 + e) for
// z >= 0, 1 / (1 + e) below; softplus(-z) = max(-z, 0) + log(1 + e), where
// 1 + e lies in [1, 2], so its rounding moves the log by less than 1e-7.
inline void SigmoidSoftplusNeg(float z, float* sigma_neg, float* softplus_neg) {
  const float e = std::exp(-std::fabs(z));
  const float r = 1.0f / (1.0f + e);
  *sigma_neg = z >= 0 ? e * r : r;
  *softplus_neg = (z >= 0 ? 0.0f : -z) + std::log(1.0f + e);
}

inline void Prefetch(const float* row, int64_t dim) {
  for (int64_t d = 0; d < dim; d += 16) __builtin_prefetch(row + d);
}

// A row's Adam moments at its first touch in the gradient pass, for the
// update pass after it: into the outer caches (locality 1, prefetcht1), so
// they do not take the level-1 cache and its miss buffers from the rows
// the gradient pass reads next.
inline void PrefetchMoments(const float* row, int64_t dim) {
  for (int64_t d = 0; d < dim; d += 16) __builtin_prefetch(row + d, 0, 1);
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
  int64_t user_stride, item_stride;  // floats from a table row to the next
  const int64_t *u, *i, *j;
  const float* weight;  // per triple; null: all 1
  // This thread's part: its rows and slots (empty at the start), and its
  // gradient sums per slot (room for every triple's rows).
  RowIndex* users;
  RowIndex* items;
  float* user_grad;
  float* item_grad;
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
  const int64_t us = job.user_stride, is = job.item_stride;
  constexpr int64_t kAhead = 6;
  // Scratch for GMF's h * p_u (one row, reused).
  std::vector<float> hp(job.gmf ? dim : 0);
  double loss = 0, bias_grad = 0;
  const float inv_n = 1.0f / static_cast<float>(job.n);
  RowIndex& users = *job.users;
  RowIndex& items = *job.items;
  for (int64_t k = job.begin; k < job.end; ++k) {
    if (k + kAhead < job.end) {
      const int64_t u = job.u[k + kAhead], i = job.i[k + kAhead],
                    j = job.j[k + kAhead];
      Prefetch(job.user + u * us, dim);
      Prefetch(job.item + i * is, dim);
      Prefetch(job.item + j * is, dim);
      __builtin_prefetch(&users.slot_of_row[u]);
      __builtin_prefetch(&items.slot_of_row[i]);
      __builtin_prefetch(&items.slot_of_row[j]);
    }
    const float* __restrict pu = job.user + job.u[k] * us;
    const float* __restrict qi = job.item + job.i[k] * is;
    const float* __restrict qj = job.item + job.j[k] * is;
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
      float sn, spn;
      SigmoidSoftplusNeg(x, &sn, &spn);
      a = -sn * inv_n;
      b = -a;
      if (job.weight != nullptr) {
        a *= job.weight[k];
        b *= job.weight[k];
        loss += static_cast<double>(job.weight[k]) * spn;
      } else {
        loss += spn;
      }
    } else {
      // sigma(f_i) - 1 = -sigma(-f_i); sigma(f_j) = sigma(-(-f_j)).
      float sni, spni, snj, spnj;
      SigmoidSoftplusNeg(fi, &sni, &spni);
      SigmoidSoftplusNeg(-fj, &snj, &spnj);
      a = -sni * 0.5f * inv_n;
      b = snj * 0.5f * inv_n;
      double l = 0.5 * (static_cast<double>(spni) + spnj);
      if (job.weight != nullptr) {
        a *= job.weight[k];
        b *= job.weight[k];
        l *= job.weight[k];
      }
      loss += l;
    }
    // User row: a q_i + b q_j (times h for GMF).
    const int64_t nu = users.size();
    const int32_t su = users.Slot(job.u[k]);
    float* __restrict gu = job.user_grad + su * dim;
    const bool first_u = su == nu;
    if (first_u) {
      PrefetchMoments(job.user_m + job.u[k] * us, dim);
      PrefetchMoments(job.user_v + job.u[k] * us, dim);
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
    // Item rows: a w and b w. A row met for the first time gets a new slot
    // (Slot returns the old size) and its moments are hinted for the update.
    const auto add_item = [&](int64_t item, float coef) {
      const int64_t fresh = items.size();
      const int32_t slot = items.Slot(item);
      if (slot == fresh) {
        PrefetchMoments(job.item_m + item * is, dim);
        PrefetchMoments(job.item_v + item * is, dim);
      }
      Axpy(slot == fresh, coef, w, job.item_grad + slot * dim, dim);
    };
    add_item(job.i[k], a);
    add_item(job.j[k], b);
  }
  *job.loss = loss;
  *job.bias_grad = bias_grad;
}

// What one thread's update pass needs: positions [begin, end) of the
// parts' row lists of one table, concatenated (part 0's rows, then part
// 1's, ...). A row is updated where it first appears: in the list of the
// first part that touched it; the later parts' entries of it are skipped.
struct UpdateJob {
  const AdamScalars* adam;
  RawParam table;
  const RowIndex* const* index;  // per part
  const float* const* grads;     // per part: slot x dim
  int parts;
  int64_t begin, end;
  float* scratch;  // dim floats
};

CFREC_VECTOR_CLONES
void UpdateRange(const UpdateJob& job) {
  const int64_t dim = job.table.cols;
  const int64_t stride = job.table.stride;
  constexpr int64_t kAhead = 8;
  // Backwards, the parts last to first and each part's rows last to first:
  // the rows the gradient pass met last (and their moments, hinted at
  // their first touch) are the likeliest to be still in the cache, so they
  // go first, before this pass's own traffic evicts them. Each row's
  // update is independent of the others, so the order changes no result.
  int64_t base = 0;  // position of part p's first row
  for (int p = 0; p < job.parts; ++p) base += job.index[p]->size();
  for (int p = job.parts - 1; p >= 0; --p) {
    const RowIndex& index = *job.index[p];
    base -= index.size();
    const int64_t from = std::max<int64_t>(job.begin - base, 0);
    const int64_t to = std::min<int64_t>(job.end - base, index.size());
    for (int64_t s = to - 1; s >= from; --s) {
      // With several parts, whether another part holds a row is read from
      // its bits (RowIndex::Has: a few lines, soon in this core's cache),
      // and only a row held by several parts has its slot read from the
      // other part's index (lines the other thread's gradient pass just
      // wrote): 2 x kAhead rows ahead, so that kAhead rows ahead the row's
      // block and the other parts' gradients are fetched without waiting,
      // and only for a row this part updates.
      if (job.parts > 1 && s - 2 * kAhead >= from) {
        const int64_t far = index.rows[s - 2 * kAhead];
        for (int q = p + 1; q < job.parts; ++q) {
          if (job.index[q]->Has(far)) {
            __builtin_prefetch(&job.index[q]->slot_of_row[far]);
          }
        }
      }
      if (s - kAhead >= from) {
        const int64_t near = index.rows[s - kAhead];
        bool owned = true;
        for (int q = 0; q < p && owned; ++q) owned = !job.index[q]->Has(near);
        if (owned) {
          const int64_t ahead = near * stride;
          Prefetch(job.table.value + ahead, dim);
          Prefetch(job.table.m + ahead, dim);
          Prefetch(job.table.v + ahead, dim);
          for (int q = p + 1; q < job.parts; ++q) {
            if (!job.index[q]->Has(near)) continue;
            const int32_t slot = job.index[q]->slot_of_row[near];
            Prefetch(job.grads[q] + slot * dim, dim);
          }
        }
      }
      const int64_t row = index.rows[s];
      bool earlier = false;
      for (int q = 0; q < p && !earlier; ++q) earlier = job.index[q]->Has(row);
      if (earlier) continue;
      // The row's gradient: the parts that touched it, in part order.
      const float* g0 = job.grads[p] + s * dim;
      const float* g1 = nullptr;
      int found = 1;
      for (int q = p + 1; q < job.parts; ++q) {
        if (!job.index[q]->Has(row)) continue;
        const int32_t slot = job.index[q]->slot_of_row[row];
        const float* g = job.grads[q] + slot * dim;
        if (found == 1) {
          g1 = g;
        } else {
          // Three or more threads: sum into the scratch row in part order.
          if (found == 2) {
            for (int64_t d = 0; d < dim; ++d) job.scratch[d] = g0[d] + g1[d];
            g0 = job.scratch;
            g1 = nullptr;
          }
          for (int64_t d = 0; d < dim; ++d) job.scratch[d] += g[d];
        }
        ++found;
      }
      AdamRow2(*job.adam, g0, g1, job.table.value + row * stride,
               job.table.m + row * stride, job.table.v + row * stride, dim);
    }
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
  bool in_range = true;
  for (int64_t k = 0; k < n; ++k) {
    in_range &=
        static_cast<uint64_t>(user[k]) < static_cast<uint64_t>(p.user.rows) &&
        static_cast<uint64_t>(pos[k]) < static_cast<uint64_t>(p.item.rows) &&
        static_cast<uint64_t>(neg[k]) < static_cast<uint64_t>(p.item.rows);
  }
  if (!in_range) {
    for (int64_t k = 0; k < n; ++k) {
      if (user[k] < 0 || user[k] >= p.user.rows || pos[k] < 0 ||
          pos[k] >= p.item.rows || neg[k] < 0 || neg[k] >= p.item.rows) {
        throw std::out_of_range("fused MF step: row out of range in triple " +
                                std::to_string(k));
      }
    }
  }
  // Each part indexes its own triples' rows inside its gradient task; the
  // buffers have room for every row of its triples.
  const int threads = pool_.threads();
  for (int t = 0; t < threads; ++t) {
    Part& part = parts_[t];
    const int64_t size = n * (t + 1) / threads - n * t / threads;
    // With several parts the update pass asks the other parts' indexes
    // whether they hold a row (RowIndex::Has).
    part.users.Reset(p.user.rows, threads > 1);
    part.items.Reset(p.item.rows, threads > 1);
    part.users.rows.reserve(size);
    part.items.rows.reserve(2 * size);
    if (static_cast<int64_t>(part.user_grad.size()) < size * dim) {
      part.user_grad.resize(size * dim);
    }
    if (static_cast<int64_t>(part.item_grad.size()) < 2 * size * dim) {
      part.item_grad.resize(2 * size * dim);
    }
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
  times_.update += Since(t2);
  return loss / static_cast<double>(n);
}

void FusedMfStep::Gradients(int t, const MfParams& p, bool pairwise,
                            int64_t n) {
  const int threads = pool_.threads();
  Part& part = parts_[t];
  // The previous step's rows (kept until every update task had read them).
  part.users.Clear();
  part.items.Clear();
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
  job.user_stride = p.user.stride;
  job.item_stride = p.item.stride;
  job.n = n;
  job.begin = n * t / threads;
  job.end = n * (t + 1) / threads;
  job.u = user_;
  job.i = pos_;
  job.j = neg_;
  job.weight = weights_;
  job.users = &part.users;
  job.items = &part.items;
  job.user_grad = part.user_grad.data();
  job.item_grad = part.item_grad.data();
  job.h_grad = part.h_grad.data();
  job.bias_grad = &part.bias_grad;
  job.loss = &part.loss;
  GradientRange(job);
}

void FusedMfStep::Update(int t, const MfParams& p, const AdamOptions&) {
  const int threads = pool_.threads();
  const int64_t dim = p.user.cols;
  std::vector<const RowIndex*> user_index, item_index;
  std::vector<const float*> user_grads, item_grads;
  int64_t user_rows = 0, item_rows = 0;
  for (const Part& part : parts_) {
    user_index.push_back(&part.users);
    item_index.push_back(&part.items);
    user_grads.push_back(part.user_grad.data());
    item_grads.push_back(part.item_grad.data());
    user_rows += part.users.size();
    item_rows += part.items.size();
  }
  std::vector<float> scratch(dim);
  auto run = [&](const AdamScalars& adam, const RawParam& table,
                 const std::vector<const RowIndex*>& index,
                 const std::vector<const float*>& grads, int64_t rows) {
    UpdateJob job;
    job.adam = &adam;
    job.table = table;
    job.index = index.data();
    job.grads = grads.data();
    job.parts = static_cast<int>(grads.size());
    job.begin = rows * t / threads;
    job.end = rows * (t + 1) / threads;
    job.scratch = scratch.data();
    UpdateRange(job);
  };
  run(user_adam_, p.user, user_index, user_grads, user_rows);
  run(item_adam_, p.item, item_index, item_grads, item_rows);
}

}  // namespace cfrec::learner
