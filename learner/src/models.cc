#include "models.h"

#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "dense_kernels.h"

namespace cfrec::learner {
namespace {

constexpr double kEmbeddingStd = 0.1;

at::Tensor ToLong(const at::Tensor& t) { return t.to(at::kLong); }

std::vector<float> CopyRows(const at::Tensor& table, int64_t rows) {
  at::Tensor t = table.detach().narrow(0, 0, rows);
  if (t.is_contiguous()) {
    const float* data = t.data_ptr<float>();
    return std::vector<float>(data, data + t.numel());
  }
  // An interleaved table (a strided view): copied once, row by row.
  std::vector<float> out(static_cast<size_t>(t.numel()));
  at::from_blob(out.data(), t.sizes(), at::kFloat).copy_(t);
  return out;
}

std::vector<float> CopyAll(const at::Tensor& t) {
  at::Tensor c = t.detach().contiguous();
  const float* data = c.data_ptr<float>();
  return std::vector<float>(data, data + c.numel());
}

// x W^T + b with the kernels of dense_kernels.h and their gradients.
class FastLinear : public torch::autograd::Function<FastLinear> {
 public:
  static torch::autograd::variable_list forward(
      torch::autograd::AutogradContext* ctx, const at::Tensor& x_in,
      const at::Tensor& w_in, const at::Tensor& b_in) {
    at::Tensor x = x_in.contiguous();
    at::Tensor w = w_in.contiguous();
    at::Tensor wt = w.t().contiguous();
    at::Tensor b = b_in.contiguous();
    int64_t n = x.size(0), in = x.size(1), out = w.size(0);
    at::Tensor y = at::empty({n, out}, at::kFloat);
    LinearForward(x.data_ptr<float>(), wt.data_ptr<float>(),
                  b.data_ptr<float>(), n, in, out, y.data_ptr<float>());
    ctx->save_for_backward({x, w});
    return {y};
  }

  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w = saved[1];
    at::Tensor dy = grads[0].contiguous();
    int64_t n = x.size(0), in = x.size(1), out = w.size(0);
    at::Tensor dx = at::empty({n, in}, at::kFloat);
    at::Tensor dw = at::empty({out, in}, at::kFloat);
    at::Tensor db = at::empty({out}, at::kFloat);
    LinearBackwardInput(dy.data_ptr<float>(), w.data_ptr<float>(), n, in, out,
                        dx.data_ptr<float>());
    LinearBackwardWeight(dy.data_ptr<float>(), x.data_ptr<float>(), n, in, out,
                         dw.data_ptr<float>(), db.data_ptr<float>());
    return {dx, dw, db};
  }
};

// out[to[e]] += w[e] * src[from[e]] over the edges e in order, as one loop:
// LightGCN's propagation step on one side of the bipartite graph. It does
// what zeros.index_add(0, to, src.index_select(0, from) * w.unsqueeze(1))
// does, with the same float operations in the same order (a product, then a
// sum per edge; the gradient likewise), so results are bit-identical; but it
// materialises no edges x d tensors. Those temporaries (three per step and
// direction, forward and backward) were most of a LightGCN run.
class SpreadEdgesFn : public torch::autograd::Function<SpreadEdgesFn> {
 public:
  static torch::autograd::variable_list forward(
      torch::autograd::AutogradContext* ctx, const at::Tensor& src_in,
      const at::Tensor& from, const at::Tensor& to, const at::Tensor& w,
      int64_t out_rows) {
    at::Tensor src = src_in.contiguous();
    at::Tensor out = at::zeros({out_rows, src.size(1)}, at::kFloat);
    Spread(src, from, to, w, &out);
    ctx->save_for_backward({from, to, w});
    ctx->saved_data["src_rows"] = src.size(0);
    return {out};
  }

  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor grad_out = grads[0].contiguous();
    at::Tensor grad_src = at::zeros(
        {ctx->saved_data["src_rows"].toInt(), grad_out.size(1)}, at::kFloat);
    // d out[to[e]] / d src[from[e]] = w[e]: spread back along reversed edges.
    Spread(grad_out, saved[1], saved[0], saved[2], &grad_src);
    return {grad_src, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }

 private:
  static void Spread(const at::Tensor& src, const at::Tensor& from,
                     const at::Tensor& to, const at::Tensor& w,
                     at::Tensor* out) {
    const int64_t d = src.size(1);
    const int64_t edges = from.numel();
    const float* s = src.data_ptr<float>();
    const int64_t* f = from.data_ptr<int64_t>();
    const int64_t* t = to.data_ptr<int64_t>();
    const float* wv = w.data_ptr<float>();
    float* o = out->data_ptr<float>();
    for (int64_t e = 0; e < edges; ++e) {
      const float* in = s + f[e] * d;
      float* acc = o + t[e] * d;
      const float we = wv[e];
      for (int64_t k = 0; k < d; ++k) acc[k] += in[k] * we;
    }
  }
};

// Xavier-uniform init drawn from the seeded generator.
at::Tensor Xavier(Rng& rng, int64_t out, int64_t in) {
  return RandUniform(rng, {out, in}, std::sqrt(6.0 / double(in + out)));
}

class EmbeddingRanker : public Ranker {
 public:
  EmbeddingRanker(const LearnerOptions& o, Rng& rng)
      : dim_(o.dim),
        gmf_(o.ranker == "gmf" || o.ranker == "neumf"),
        mlp_(o.ranker == "mlp" || o.ranker == "neumf"),
        blas_(o.mlp_matmul == "blas") {
    int64_t rows = o.initial_rows;
    // BPR-MF and GMF train through the fused kernel, whose Adam pass reads
    // and writes a row's value and moments together: one block per row
    // (NeuMF's GMF tables, trained by LibTorch, stay separate).
    const ParamSet::Layout mf_layout =
        mlp_ ? ParamSet::Layout::kSeparate : ParamSet::Layout::kInterleaved;
    if (!gmf_ && !mlp_) {  // BPR-MF: f = U_u . I_i
      user_ =
          params_.AddTable("user", rows, dim_, kEmbeddingStd, rng, mf_layout);
      item_ =
          params_.AddTable("item", rows, dim_, kEmbeddingStd, rng, mf_layout);
      return;
    }
    if (gmf_) {
      gmf_user_ = params_.AddTable("gmf_user", rows, dim_, kEmbeddingStd, rng,
                                   mf_layout);
      gmf_item_ = params_.AddTable("gmf_item", rows, dim_, kEmbeddingStd, rng,
                                   mf_layout);
      h_gmf_ = params_.AddDense("h_gmf", Xavier(rng, 1, dim_).reshape({-1}));
    }
    if (mlp_) {
      mlp_user_ = params_.AddTable("mlp_user", rows, dim_, kEmbeddingStd, rng);
      mlp_item_ = params_.AddTable("mlp_item", rows, dim_, kEmbeddingStd, rng);
      int64_t in = 2 * dim_;
      for (size_t k = 0; k < o.mlp_hidden.size(); ++k) {
        int64_t out = o.mlp_hidden[k];
        layers_.push_back({params_.AddDense("mlp_w" + std::to_string(k),
                                            Xavier(rng, out, in)),
                           params_.AddDense("mlp_b" + std::to_string(k),
                                            at::zeros({out}, at::kFloat))});
        in = out;
      }
      h_mlp_ = params_.AddDense("h_mlp", Xavier(rng, 1, in).reshape({-1}));
    }
    bias_ = params_.AddDense("bias", at::zeros({1}, at::kFloat));
  }

  void EnsureRows(int64_t num_users, int64_t num_items, Rng& rng) override {
    for (int t : {user_, gmf_user_, mlp_user_}) {
      if (t >= 0) params_.EnsureRows(t, num_users, rng);
    }
    for (int t : {item_, gmf_item_, mlp_item_}) {
      if (t >= 0) params_.EnsureRows(t, num_items, rng);
    }
  }

  at::Tensor Forward(const at::Tensor& users, const at::Tensor& items,
                     bool train) override {
    auto rows = [&](int table, const at::Tensor& index) {
      return train ? params_.Lookup(table, index)
                   : params_.Value(table).index_select(0, ToLong(index));
    };
    auto dense = [&](int id) {
      return train ? params_.Dense(id) : params_.Value(id).detach();
    };
    if (!gmf_ && !mlp_)
      return (rows(user_, users) * rows(item_, items)).sum(-1);
    at::Tensor s = dense(bias_).expand({users.size(0)});
    if (gmf_) {
      // GMF: h^T (p_u * q_i).
      s = s + at::matmul(rows(gmf_user_, users) * rows(gmf_item_, items),
                         dense(h_gmf_));
    }
    if (mlp_) {
      at::Tensor z =
          at::cat({rows(mlp_user_, users), rows(mlp_item_, items)}, -1);
      for (const auto& [w, b] : layers_) {
        z = at::relu(blas_ ? at::linear(z, dense(w), dense(b))
                           : FastLinear::apply(z, dense(w), dense(b))[0]);
      }
      s = s + at::matmul(z, dense(h_mlp_));
    }
    return s;
  }

  ScoringModel Export(int64_t num_users, int64_t num_items) override {
    ScoringModel m;
    m.num_users = num_users;
    m.num_items = num_items;
    if (!gmf_ && !mlp_) {
      m.kind = ScoringModel::Kind::kDot;
      m.dot_dim = dim_;
      m.user = CopyRows(params_.Value(user_), num_users);
      m.item = CopyRows(params_.Value(item_), num_items);
      return m;
    }
    m.kind = ScoringModel::Kind::kNeural;
    m.bias = params_.Value(bias_).item<float>();
    if (gmf_) {
      m.gmf_dim = dim_;
      m.gmf_user = CopyRows(params_.Value(gmf_user_), num_users);
      m.gmf_item = CopyRows(params_.Value(gmf_item_), num_items);
      m.h_gmf = CopyAll(params_.Value(h_gmf_));
    }
    if (mlp_) {
      m.mlp_dim = dim_;
      m.mlp_user = CopyRows(params_.Value(mlp_user_), num_users);
      m.mlp_item = CopyRows(params_.Value(mlp_item_), num_items);
      for (const auto& [w, b] : layers_) {
        DenseLayer layer;
        layer.out = static_cast<int>(params_.Value(w).size(0));
        layer.in = static_cast<int>(params_.Value(w).size(1));
        layer.w = CopyAll(params_.Value(w));
        layer.b = CopyAll(params_.Value(b));
        m.mlp.push_back(std::move(layer));
      }
      m.h_mlp = CopyAll(params_.Value(h_mlp_));
    }
    if (!mlp_ && gmf_) {
      // GMF is a dot product of (p_u * h) and q_i, plus a constant bias.
      m.kind = ScoringModel::Kind::kNeural;
    }
    return m;
  }

  bool IsDotProduct() const override { return !gmf_ && !mlp_; }

  bool FusedParams(MfParams* out) override {
    if (mlp_) return false;
    out->gmf = gmf_;
    out->user = params_.Raw(gmf_ ? gmf_user_ : user_);
    out->item = params_.Raw(gmf_ ? gmf_item_ : item_);
    if (gmf_) {
      out->h = params_.Raw(h_gmf_);
      out->bias = params_.Raw(bias_);
    }
    return true;
  }

 private:
  int dim_;
  bool gmf_, mlp_;
  bool blas_;  // MLP products through LibTorch's addmm (the system BLAS)
  int user_ = -1, item_ = -1;
  int gmf_user_ = -1, gmf_item_ = -1, h_gmf_ = -1;
  int mlp_user_ = -1, mlp_item_ = -1, h_mlp_ = -1;
  std::vector<std::pair<int, int>> layers_;
  int bias_ = -1;
};

}  // namespace

at::Tensor SpreadEdges(const at::Tensor& src, const at::Tensor& from,
                       const at::Tensor& to, const at::Tensor& w,
                       int64_t out_rows) {
  return SpreadEdgesFn::apply(src, from, to, w, out_rows)[0];
}

std::unique_ptr<Ranker> MakeEmbeddingRanker(const LearnerOptions& options,
                                            Rng& rng) {
  return std::make_unique<EmbeddingRanker>(options, rng);
}

ClickGraph BuildClickGraph(int64_t num_users, int64_t num_items,
                           const std::vector<std::vector<uint32_t>>& clicked) {
  ClickGraph g;
  g.num_users = num_users;
  g.num_items = num_items;
  std::vector<int64_t> item_degree(num_items, 0);
  int64_t edges = 0;
  for (int64_t u = 0; u < num_users && u < int64_t(clicked.size()); ++u) {
    for (uint32_t i : clicked[u]) {
      if (i < num_items) {
        ++item_degree[i];
        ++edges;
      }
    }
  }
  at::Tensor us = at::empty({edges}, at::kLong);
  at::Tensor is = at::empty({edges}, at::kLong);
  at::Tensor vs = at::empty({edges}, at::kFloat);
  int64_t* up = us.data_ptr<int64_t>();
  int64_t* ip = is.data_ptr<int64_t>();
  float* vp = vs.data_ptr<float>();
  int64_t e = 0;
  for (int64_t u = 0; u < num_users && u < int64_t(clicked.size()); ++u) {
    int64_t du = 0;
    for (uint32_t i : clicked[u]) du += i < num_items;
    for (uint32_t i : clicked[u]) {
      if (i >= num_items) continue;
      up[e] = u;
      ip[e] = i;
      // Symmetric normalisation 1 / sqrt(d_u d_i) (LightGCN eq. 3).
      vp[e] = static_cast<float>(1.0 / std::sqrt(double(du * item_degree[i])));
      ++e;
    }
  }
  g.rows = us;
  g.cols = is;
  g.vals = vs;
  return g;
}

LightGcn::LightGcn(const LearnerOptions& o, Rng& rng)
    : layers_(o.lightgcn_layers) {
  params_.AddTable("user", o.initial_rows, o.dim, kEmbeddingStd, rng);
  params_.AddTable("item", o.initial_rows, o.dim, kEmbeddingStd, rng);
}

void LightGcn::EnsureRows(int64_t num_users, int64_t num_items, Rng& rng) {
  params_.EnsureRows(0, num_users, rng);
  params_.EnsureRows(1, num_items, rng);
  if (num_users != users_ || num_items != items_) propagated_ = at::Tensor();
  users_ = static_cast<int>(num_users);
  items_ = static_cast<int>(num_items);
}

at::Tensor LightGcn::Propagate(const at::Tensor& e0) const {
  at::Tensor eu = e0.narrow(0, 0, users_);
  at::Tensor ei = e0.narrow(0, users_, items_);
  if (!graph_.rows.defined() || graph_.rows.numel() == 0 || layers_ == 0) {
    return e0;
  }
  at::Tensor sum_u = eu, sum_i = ei;
  for (int k = 0; k < layers_; ++k) {
    // E_k = A_hat E_{k-1} on the bipartite graph, one side at a time.
    at::Tensor nu =
        SpreadEdges(ei, graph_.cols, graph_.rows, graph_.vals, eu.size(0));
    at::Tensor ni =
        SpreadEdges(eu, graph_.rows, graph_.cols, graph_.vals, ei.size(0));
    eu = nu;
    ei = ni;
    sum_u = sum_u + eu;
    sum_i = sum_i + ei;
  }
  return at::cat({sum_u, sum_i}, 0) / static_cast<double>(layers_ + 1);
}

at::Tensor LightGcn::Forward(const at::Tensor& users, const at::Tensor& items,
                             bool train) {
  at::Tensor final_emb;
  if (train) {
    // Every row takes part in propagation, so every row is gathered.
    at::Tensor e0 = at::cat({params_.Lookup(0, at::arange(users_, at::kLong)),
                             params_.Lookup(1, at::arange(items_, at::kLong))},
                            0);
    final_emb = Propagate(e0);
  } else {
    if (!propagated_.defined()) {
      at::NoGradGuard no_grad;
      propagated_ = Propagate(at::cat({params_.Value(0).narrow(0, 0, users_),
                                       params_.Value(1).narrow(0, 0, items_)},
                                      0));
    }
    final_emb = propagated_;
  }
  at::Tensor u = final_emb.index_select(0, ToLong(users));
  at::Tensor i = final_emb.index_select(0, ToLong(items) + users_);
  return (u * i).sum(-1);
}

ScoringModel LightGcn::Export(int64_t num_users, int64_t num_items) {
  if (!propagated_.defined()) {
    at::NoGradGuard no_grad;
    propagated_ = Propagate(at::cat({params_.Value(0).narrow(0, 0, users_),
                                     params_.Value(1).narrow(0, 0, items_)},
                                    0));
  }
  ScoringModel m;
  m.kind = ScoringModel::Kind::kDot;
  m.num_users = num_users;
  m.num_items = num_items;
  m.dot_dim = static_cast<int>(propagated_.size(1));
  m.user = CopyRows(propagated_.narrow(0, 0, users_), num_users);
  m.item = CopyRows(propagated_.narrow(0, users_, items_), num_items);
  return m;
}

std::unique_ptr<Ranker> MakeRanker(const LearnerOptions& options, Rng& rng) {
  if (options.ranker == "lightgcn")
    return std::make_unique<LightGcn>(options, rng);
  return MakeEmbeddingRanker(options, rng);
}

ImpressionModel::ImpressionModel(const LearnerOptions& o, Rng& rng) {
  p_ = params_.AddTable("P", o.initial_rows, o.sem_dim, kEmbeddingStd, rng);
  q_ = params_.AddTable("Q", o.initial_rows, o.sem_dim, kEmbeddingStd, rng);
  w_ = params_.AddTable("w_R", o.initial_rows, 1, kEmbeddingStd, rng);
}

void ImpressionModel::EnsureRows(int64_t num_users, int64_t num_items,
                                 Rng& rng) {
  params_.EnsureRows(p_, num_users, rng);
  params_.EnsureRows(q_, num_items, rng);
  params_.EnsureRows(w_, num_items, rng);
}

at::Tensor ImpressionModel::Logits(const at::Tensor& users,
                                   const at::Tensor& items,
                                   const at::Tensor& alpha, bool train) {
  auto rows = [&](int table, const at::Tensor& index) {
    return train ? params_.Lookup(table, index)
                 : params_.Value(table).index_select(0, ToLong(index));
  };
  // CPR eq. (4): P_u^T Q_k + w^R_k alpha_k.
  return (rows(p_, users) * rows(q_, items)).sum(-1) +
         rows(w_, items).squeeze(-1) * alpha;
}

SelectionModel::SelectionModel(const LearnerOptions& o, Rng& rng) {
  x_ = params_.AddTable("X", o.initial_rows, o.sem_dim, kEmbeddingStd, rng);
  y_ = params_.AddTable("Y", o.initial_rows, o.sem_dim, kEmbeddingStd, rng);
  w_ = params_.AddDense("w_S",
                        RandNormal(rng, {o.max_positions}, kEmbeddingStd));
}

void SelectionModel::EnsureRows(int64_t num_users, int64_t num_items,
                                Rng& rng) {
  params_.EnsureRows(x_, num_users, rng);
  params_.EnsureRows(y_, num_items, rng);
}

at::Tensor SelectionModel::Logits(const at::Tensor& users,
                                  const at::Tensor& items,
                                  const at::Tensor& positions,
                                  const at::Tensor& beta, bool train) {
  auto rows = [&](int table, const at::Tensor& index) {
    return train ? params_.Lookup(table, index)
                 : params_.Value(table).index_select(0, ToLong(index));
  };
  at::Tensor w = train ? params_.Dense(w_) : params_.Value(w_).detach();
  // CPR eq. (5): X_u^T Y_{r_j} + w^S_j beta_j.
  return (rows(x_, users) * rows(y_, items)).sum(-1) +
         w.index_select(0, ToLong(positions)) * beta;
}

Posteriors::Posteriors(const LearnerOptions& o, Rng& rng)
    : max_positions_(o.max_positions) {
  mu_a_ = params_.AddTable("mu_alpha", o.initial_rows, 1, 0, rng);
  log_sigma_a_ = params_.AddTable("log_sigma_alpha", o.initial_rows, 1, 0, rng);
  mu_b_ = params_.AddDense("mu_beta", at::zeros({o.max_positions}, at::kFloat));
  log_sigma_b_ = params_.AddDense("log_sigma_beta",
                                  at::zeros({o.max_positions}, at::kFloat));
}

void Posteriors::EnsureRows(int64_t num_items, Rng& rng) {
  params_.EnsureRows(mu_a_, num_items, rng);
  params_.EnsureRows(log_sigma_a_, num_items, rng);
}

at::Tensor Posteriors::Alpha(const at::Tensor& items, const at::Tensor& eps,
                             bool train) {
  auto rows = [&](int table) {
    return (train ? params_.Lookup(table, items)
                  : params_.Value(table).index_select(0, ToLong(items)))
        .squeeze(-1);
  };
  return rows(mu_a_) + rows(log_sigma_a_).exp() * eps;
}

at::Tensor Posteriors::Beta(const at::Tensor& eps, bool train) {
  at::Tensor mu = train ? params_.Dense(mu_b_) : params_.Value(mu_b_).detach();
  at::Tensor ls = train ? params_.Dense(log_sigma_b_)
                        : params_.Value(log_sigma_b_).detach();
  return mu + ls.exp() * eps;
}

namespace {
// KL(N(mu, sigma^2) || N(0, 1)), summed.
at::Tensor GaussianKl(const at::Tensor& mu, const at::Tensor& log_sigma) {
  return (0.5 * ((2 * log_sigma).exp() + mu * mu - 1) - log_sigma).sum();
}
}  // namespace

at::Tensor Posteriors::AlphaKl(const at::Tensor& items, bool train) {
  auto rows = [&](int table) {
    return train ? params_.Lookup(table, items)
                 : params_.Value(table).index_select(0, ToLong(items));
  };
  return GaussianKl(rows(mu_a_), rows(log_sigma_a_));
}

at::Tensor Posteriors::BetaKl(bool train) {
  at::Tensor mu = train ? params_.Dense(mu_b_) : params_.Value(mu_b_).detach();
  at::Tensor ls = train ? params_.Dense(log_sigma_b_)
                        : params_.Value(log_sigma_b_).detach();
  return GaussianKl(mu, ls);
}

}  // namespace cfrec::learner
