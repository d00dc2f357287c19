#include "sem_models.h"

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <chrono>
#include <limits>

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kEvalSeedOffset = 0x9e3779b97f4a7c15ULL;

at::Tensor LongTensor(const std::vector<int64_t>& v) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::kLong);
}

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

// Flat p_S data of eq. (7): every entry of every clicked list, the list
// (segment) it belongs to, and the flat indices of the clicked entries.
struct SemModels::SelectionLists {
  std::vector<int64_t> user, item, position, segment;
  std::vector<int64_t> click_entry, click_segment;
  int64_t segments = 0;
};

namespace {

// log softmax of `logits` ([S, T]) within segments, at the clicked entries.
template <typename Lists>
at::Tensor ClickedLogProb(const at::Tensor& logits, const Lists& l) {
  int64_t samples = logits.size(0);
  at::Tensor segment = LongTensor(l.segment);
  // Per-list maximum for a stable log-sum-exp (no gradient needed).
  at::Tensor detached = logits.detach().contiguous();
  at::Tensor max =
      at::full({samples, l.segments}, -std::numeric_limits<float>::infinity(),
               at::kFloat);
  const float* in = detached.data_ptr<float>();
  float* out = max.data_ptr<float>();
  const int64_t entries = detached.size(1);
  for (int64_t s = 0; s < samples; ++s) {
    for (int64_t t = 0; t < entries; ++t) {
      float& m = out[s * l.segments + l.segment[t]];
      m = std::max(m, in[s * entries + t]);
    }
  }
  at::Tensor shifted = (logits - max.index_select(1, segment)).exp();
  at::Tensor lse = at::zeros({samples, l.segments}, at::kFloat)
                       .index_add(1, segment, shifted)
                       .log() +
                   max;
  return logits.index_select(1, LongTensor(l.click_entry)) -
         lse.index_select(1, LongTensor(l.click_segment));
}

}  // namespace

SemModels::SemModels(const LearnerOptions& o, Rng& rng)
    : options_(o), p_r_(o, rng), p_s_(o, rng), posteriors_(o, rng) {
  // The losses are batch means: the regulariser is divided by the batch
  // size too (see LearnerOptions::weight_decay).
  const double decay = o.weight_decay / o.batch_size;
  sem_adam_ = {o.sem_lr, 0.9, 0.999, 1e-8, decay};
  posterior_adam_ = {o.posterior_lr, 0.9, 0.999, 1e-8, 0};
}

void SemModels::EnsureRows(int64_t num_users, int64_t num_items, Rng& rng) {
  p_r_.EnsureRows(num_users, num_items, rng);
  p_s_.EnsureRows(num_users, num_items, rng);
  posteriors_.EnsureRows(num_items, rng);
}

SemStepResult SemModels::Step(std::span<const AppliedEvent> events,
                              int64_t num_users, int64_t num_items, Rng& rng,
                              TrainTimes& times) {
  SemStepResult r;
  ImpressionTerms terms =
      BuildImpressionTerms(events, num_users, num_items, rng);
  SelectionLists lists = BuildSelectionLists(events, num_users);
  if (!terms.user.empty()) {
    auto t0 = Clock::now();
    r.impression = true;
    r.impression_loss = ImpressionStep(terms, rng);
    times.sem_impression += SecondsSince(t0);
  }
  if (!lists.click_entry.empty()) {
    auto t0 = Clock::now();
    r.selection = true;
    r.selection_loss = SelectionStep(lists, rng);
    times.sem_selection += SecondsSince(t0);
  }
  if (!terms.user.empty() || !lists.click_entry.empty()) {
    auto t0 = Clock::now();
    r.posterior = true;
    r.elbo = PosteriorStep(terms, lists, num_items, rng);
    times.sem_posterior += SecondsSince(t0);
  }
  return r;
}

std::vector<float> SemModels::SampleBeta(size_t k, Rng& rng) {
  at::NoGradGuard no_grad;
  at::Tensor eps = RandNormal(rng, {1, options_.max_positions});
  at::Tensor beta = posteriors_.Beta(eps, false).reshape({-1});
  std::vector<float> out(k);
  for (size_t j = 0; j < k; ++j) out[j] = beta[Position(j)].item<float>();
  return out;
}

std::vector<float> SemModels::SampleAlpha(std::span<const uint32_t> items,
                                          int64_t num_items, Rng& rng) {
  at::NoGradGuard no_grad;
  std::vector<float> out(items.size(), 0);
  for (size_t k = 0; k < items.size(); ++k) {
    // Items without a row are unseen: their posterior is the prior.
    std::normal_distribution<float> normal(0, 1);
    float eps = normal(rng);
    if (items[k] >= num_items) {
      out[k] = eps;
      continue;
    }
    at::Tensor a = posteriors_.Alpha(at::tensor({int64_t{items[k]}}),
                                     at::full({1}, eps), false);
    out[k] = a.item<float>();
  }
  return out;
}

std::vector<float> SemModels::SelectionProbabilities(
    uint32_t user, std::span<const uint32_t> list,
    std::span<const float> beta) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> us(list.size(), user), is(list.begin(), list.end());
  std::vector<int64_t> ps;
  for (size_t j = 0; j < list.size(); ++j) ps.push_back(Position(j));
  at::Tensor b;
  if (beta.empty()) {
    b = posteriors_.Beta(at::zeros({options_.max_positions}), false)
            .index_select(0, LongTensor(ps));
  } else {
    std::vector<float> bv(beta.begin(), beta.end());
    bv.resize(list.size(), 0);
    b = at::tensor(at::ArrayRef<float>(bv));
  }
  at::Tensor logits =
      p_s_.Logits(LongTensor(us), LongTensor(is), LongTensor(ps), b, false);
  // CPR eq. (10): softmax over the shown list.
  at::Tensor p = at::softmax(logits, 0).contiguous();
  return std::vector<float>(p.data_ptr<float>(),
                            p.data_ptr<float>() + p.numel());
}

std::vector<float> SemModels::ImpressionLogits(uint32_t user,
                                               std::span<const uint32_t> items,
                                               std::span<const float> alpha) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> us(items.size(), user), is(items.begin(), items.end());
  at::Tensor a;
  if (alpha.empty()) {
    a = posteriors_.Alpha(LongTensor(is), at::zeros({int64_t(is.size())}),
                          false);
  } else {
    std::vector<float> av(alpha.begin(), alpha.end());
    av.resize(items.size(), 0);
    a = at::tensor(at::ArrayRef<float>(av));
  }
  at::Tensor l =
      p_r_.Logits(LongTensor(us), LongTensor(is), a, false).contiguous();
  return std::vector<float>(l.data_ptr<float>(),
                            l.data_ptr<float>() + l.numel());
}

double SemModels::EvaluateElbo(std::span<const AppliedEvent> events,
                               int64_t num_users, int64_t num_items) {
  at::NoGradGuard no_grad;
  Rng rng(options_.seed ^ kEvalSeedOffset);
  double elbo = 0;
  SelectionLists lists = BuildSelectionLists(events, num_users);
  if (!lists.click_entry.empty()) {
    double n = static_cast<double>(lists.click_entry.size());
    elbo += BetaElboPerObservation(lists, n, rng, false).item<double>();
  }
  ImpressionTerms terms =
      BuildImpressionTerms(events, num_users, num_items, rng);
  if (!terms.user.empty()) {
    double n = static_cast<double>(terms.user.size());
    elbo += AlphaElboPerObservation(terms, n, num_items, rng, false,
                                    /*all_items=*/true)
                .item<double>();
  }
  return elbo;
}

double SemModels::SelectionLogLikelihood(std::span<const AppliedEvent> events,
                                         int64_t num_users) {
  at::NoGradGuard no_grad;
  SelectionLists lists = BuildSelectionLists(events, num_users);
  if (lists.click_entry.empty()) return 0;
  at::Tensor beta = posteriors_.Beta(at::zeros({options_.max_positions}), false)
                        .index_select(0, LongTensor(lists.position));
  at::Tensor logits =
      p_s_.Logits(LongTensor(lists.user), LongTensor(lists.item),
                  LongTensor(lists.position), beta.unsqueeze(0), false);
  return ClickedLogProb(logits, lists).mean().item<double>();
}

SemView SemModels::View(int64_t num_users, int64_t num_items) const {
  auto ptr = [](const at::Tensor& t) -> const float* {
    return t.is_contiguous() ? t.data_ptr<float>() : nullptr;
  };
  SemView v;
  v.dim = options_.sem_dim;
  v.num_users = static_cast<size_t>(num_users);
  v.num_items = static_cast<size_t>(num_items);
  v.max_positions = options_.max_positions;
  // Parameter ids in declaration order of models.cc: p_R {P, Q, w_R},
  // p_S {X, Y, w_S}, posteriors {mu_a, log_sigma_a, mu_b, log_sigma_b}.
  v.p = ptr(p_r_.params().Value(0));
  v.q = ptr(p_r_.params().Value(1));
  v.w_r = ptr(p_r_.params().Value(2));
  v.x = ptr(p_s_.params().Value(0));
  v.y = ptr(p_s_.params().Value(1));
  v.w_s = ptr(p_s_.params().Value(2));
  v.mu_alpha = ptr(posteriors_.params().Value(0));
  v.log_sigma_alpha = ptr(posteriors_.params().Value(1));
  v.mu_beta = ptr(posteriors_.params().Value(2));
  v.log_sigma_beta = ptr(posteriors_.params().Value(3));
  return v;
}

ScoringModel SemModels::ExportImpressionModel(int64_t num_users,
                                              int64_t num_items) const {
  ScoringModel m;
  m.kind = ScoringModel::Kind::kDot;
  m.num_users = num_users;
  m.num_items = num_items;
  m.dot_dim = options_.sem_dim;
  at::Tensor p = p_r_.params().Value(0).narrow(0, 0, num_users).contiguous();
  at::Tensor q = p_r_.params().Value(1).narrow(0, 0, num_items).contiguous();
  m.user.assign(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
  m.item.assign(q.data_ptr<float>(), q.data_ptr<float>() + q.numel());
  return m;
}

void SemModels::ClearGrads() {
  p_r_.params().ClearGrads();
  p_s_.params().ClearGrads();
  posteriors_.params().ClearGrads();
}

void SemModels::SaveMeta(nlohmann::json& meta) const {
  meta["pr_terms_seen"] = pr_terms_seen_;
  meta["ps_clicks_seen"] = ps_clicks_seen_;
}

void SemModels::SaveParams(torch::serialize::OutputArchive& archive) const {
  p_r_.params().Save(archive, "p_r.");
  p_s_.params().Save(archive, "p_s.");
  posteriors_.params().Save(archive, "q.");
}

Status SemModels::LoadParams(torch::serialize::InputArchive& archive) {
  CFREC_RETURN_IF_ERROR(p_r_.params().Load(archive, "p_r."));
  CFREC_RETURN_IF_ERROR(p_s_.params().Load(archive, "p_s."));
  return posteriors_.params().Load(archive, "q.");
}

void SemModels::LoadMeta(const nlohmann::json& meta) {
  pr_terms_seen_ = meta.at("pr_terms_seen");
  ps_clicks_seen_ = meta.at("ps_clicks_seen");
}

int64_t SemModels::Position(size_t j) const {
  return std::min<int64_t>(static_cast<int64_t>(j), options_.max_positions - 1);
}

SemModels::ImpressionTerms SemModels::BuildImpressionTerms(
    std::span<const AppliedEvent> events, int64_t num_users, int64_t num_items,
    Rng& rng) const {
  // Negatives of eq. (6) come from the non-recommended items.
  return BuildExposureTerms(events, num_users, num_items,
                            options_.sem_positives_per_list,
                            options_.sem_negatives_per_positive, rng);
}

SemModels::SelectionLists SemModels::BuildSelectionLists(
    std::span<const AppliedEvent> events, int64_t num_users) const {
  SelectionLists l;
  for (const AppliedEvent& e : events) {
    if (e.clicked.empty() || e.items.size() < 2 || e.user >= num_users) {
      continue;
    }
    int64_t base = static_cast<int64_t>(l.user.size());
    for (size_t j = 0; j < e.items.size(); ++j) {
      l.user.push_back(e.user);
      l.item.push_back(e.items[j]);
      l.position.push_back(Position(j));
      l.segment.push_back(l.segments);
    }
    for (uint16_t p : e.clicked) {
      if (p >= e.items.size()) continue;
      l.click_entry.push_back(base + p);
      l.click_segment.push_back(l.segments);
    }
    ++l.segments;
  }
  return l;
}

// The same draws as RandNormal(rng, {count}) as plain floats.
std::vector<float> SemModels::NoiseValues(int64_t count, Rng& rng) const {
  std::vector<float> out(count);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& x : out) x = dist(rng);
  return out;
}

// p_R step, CPR eq. (6) with alpha ~ N(0, I) drawn alpha_samples times and
// the loss averaged (footnote 3).
double SemModels::ImpressionStep(const ImpressionTerms& t, Rng& rng) {
  int64_t n = static_cast<int64_t>(t.user.size());
  if (options_.kernel == "fused") {
    std::vector<float> alpha = NoiseValues(options_.alpha_samples * n, rng);
    return fused_sem_.Impression(p_r_.FusedParams(), t.user, t.item, t.shown,
                                 alpha, options_.alpha_samples, sem_adam_);
  }
  at::Tensor alpha = RandNormal(rng, {options_.alpha_samples, n});
  at::Tensor logits =
      p_r_.Logits(LongTensor(t.user), LongTensor(t.item), alpha, true);
  at::Tensor labels =
      at::tensor(at::ArrayRef<float>(t.shown)).unsqueeze(0).expand_as(logits);
  at::Tensor loss = at::binary_cross_entropy_with_logits(logits, labels);
  loss.backward();
  p_r_.params().Step(sem_adam_);
  return loss.item<double>();
}

// p_S step, CPR eq. (7): in-list softmax likelihood of the clicks.
double SemModels::SelectionStep(const SelectionLists& l, Rng& rng) {
  int64_t n = static_cast<int64_t>(l.user.size());
  if (options_.kernel == "fused") {
    std::vector<float> beta = NoiseValues(options_.alpha_samples * n, rng);
    SelectionBatch b{l.user,        l.item,          l.position, l.segment,
                     l.click_entry, l.click_segment, l.segments};
    return fused_sem_.Selection(p_s_.FusedParams(), b, beta,
                                options_.alpha_samples, sem_adam_);
  }
  at::Tensor beta = RandNormal(rng, {options_.alpha_samples, n});
  at::Tensor logits = p_s_.Logits(LongTensor(l.user), LongTensor(l.item),
                                  LongTensor(l.position), beta, true);
  at::Tensor loss = -ClickedLogProb(logits, l).mean();
  loss.backward();
  p_s_.params().Step(sem_adam_);
  return loss.item<double>();
}

// CPR eq. (9) for beta, divided by the number of observations n:
// E_q[log p(O|beta)]/n - KL(q || N(0, I))/n, reparameterised.
at::Tensor SemModels::BetaElboPerObservation(const SelectionLists& l, double n,
                                             Rng& rng, bool train) {
  at::Tensor eps =
      RandNormal(rng, {options_.posterior_samples, options_.max_positions});
  at::Tensor beta =
      posteriors_.Beta(eps, train).index_select(1, LongTensor(l.position));
  at::Tensor logits = p_s_.Logits(LongTensor(l.user), LongTensor(l.item),
                                  LongTensor(l.position), beta, false);
  return ClickedLogProb(logits, l).mean() - posteriors_.BetaKl(train) / n;
}

// The same for alpha with p_R's likelihood. During training only the items
// in the batch carry their KL term (a lazy, sparse estimate of the full KL;
// untouched items keep their posterior).
at::Tensor SemModels::AlphaElboPerObservation(const ImpressionTerms& t,
                                              double n, int64_t num_items,
                                              Rng& rng, bool train,
                                              bool all_items) {
  at::Tensor items = LongTensor(t.item);
  at::Tensor eps = RandNormal(
      rng, {options_.posterior_samples, static_cast<int64_t>(t.item.size())});
  at::Tensor alpha = posteriors_.Alpha(items, eps, train);
  at::Tensor logits = p_r_.Logits(LongTensor(t.user), items, alpha, false);
  at::Tensor labels =
      at::tensor(at::ArrayRef<float>(t.shown)).unsqueeze(0).expand_as(logits);
  at::Tensor loglik = -at::binary_cross_entropy_with_logits(logits, labels);
  at::Tensor kl_items =
      all_items ? at::arange(num_items, at::kLong)
                : std::get<0>(at::_unique2(items, true, false, false));
  return loglik - posteriors_.AlphaKl(kl_items, train) / n;
}

double SemModels::PosteriorStep(const ImpressionTerms& t,
                                const SelectionLists& l, int64_t num_items,
                                Rng& rng) {
  at::Tensor elbo = at::zeros({});
  if (!l.click_entry.empty()) {
    ps_clicks_seen_ += static_cast<double>(l.click_entry.size());
    elbo = elbo + BetaElboPerObservation(l, ps_clicks_seen_, rng, true);
  }
  if (!t.user.empty()) {
    pr_terms_seen_ += static_cast<double>(t.user.size());
    elbo = elbo + AlphaElboPerObservation(t, pr_terms_seen_, num_items, rng,
                                          true, false);
  }
  if (!elbo.requires_grad()) return 0;
  (-elbo).backward();
  posteriors_.params().Step(posterior_adam_);
  return elbo.item<double>();
}

}  // namespace cfrec::learner
