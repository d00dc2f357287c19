#include "acl.h"

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <random>

namespace cfrec::learner {
namespace {

using state::AppliedEvent;

constexpr double kEmaWeight = 0.05;  // of the newest value, as the learner

double Ema(double old_value, double value, uint64_t count) {
  return count <= 1 ? value : (1 - kEmaWeight) * old_value + kEmaWeight * value;
}

at::Tensor LongTensor(const std::vector<int64_t>& v) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::kLong);
}

}  // namespace

ExposureTerms BuildExposureTerms(std::span<const AppliedEvent> events,
                                 int64_t num_users, int64_t num_items,
                                 int positives_per_list,
                                 int negatives_per_positive, Rng& rng) {
  ExposureTerms t;
  if (num_items <= 0) return t;
  std::vector<uint32_t> shown, sorted;
  for (const AppliedEvent& e : events) {
    // Click events repeat their impression's list: the list counts once.
    if (e.kind != AppliedEvent::Kind::kImpression || e.items.empty() ||
        e.user >= num_users) {
      continue;
    }
    shown = e.items;
    size_t keep = std::min<size_t>(shown.size(), positives_per_list);
    for (size_t k = 0; k < keep; ++k) {  // partial Fisher-Yates
      size_t r =
          std::uniform_int_distribution<size_t>(k, shown.size() - 1)(rng);
      std::swap(shown[k], shown[r]);
    }
    sorted = e.items;
    std::sort(sorted.begin(), sorted.end());
    std::uniform_int_distribution<int64_t> any(0, num_items - 1);
    for (size_t k = 0; k < keep; ++k) {
      t.user.push_back(e.user);
      t.item.push_back(shown[k]);
      t.shown.push_back(1);
      for (int n = 0; n < negatives_per_positive; ++n) {
        int64_t j = any(rng);
        for (int tries = 0;
             tries < 8 &&
             std::binary_search(sorted.begin(), sorted.end(), uint32_t(j));
             ++tries) {
          j = any(rng);
        }
        t.user.push_back(e.user);
        t.item.push_back(j);
        t.shown.push_back(0);
      }
    }
  }
  return t;
}

ExposureObjective::ExposureObjective(const LearnerOptions& options, Rng& rng)
    : options_(options), adversarial_(options.trainer == "acl") {
  LearnerOptions g = options;
  g.ranker = options.exposure_model;
  g.dim = options.exposure_dim;
  g_ = MakeRanker(g, rng);
  beta_ = beta_params_.AddDense("beta", at::zeros({1}, at::kFloat));
  psi_adam_ = {options.acl_r_psi, 0.9, 0.999, 1e-8,
               options.weight_decay / options.batch_size};
  // beta descends with the ranker, at r_theta (A.6.4: "minimize over
  // f_theta, beta").
  beta_adam_ = {options.lr, 0.9, 0.999, 1e-8, 0};
}

void ExposureObjective::EnsureRows(int64_t num_users, int64_t num_items,
                                   Rng& rng) {
  g_->EnsureRows(num_users, num_items, rng);
  num_items_ = std::max(num_items_, num_items);
}

double ExposureObjective::Offset() const {
  if (lists_seen_ <= 0 || num_items_ <= 0) return 0;
  double k = options_.sem_negatives_per_positive;
  return std::log(k * (entries_seen_ / lists_seen_) /
                  static_cast<double>(num_items_));
}

void ExposureObjective::CountLists(std::span<const AppliedEvent> events) {
  for (const AppliedEvent& e : events) {
    if (e.kind != AppliedEvent::Kind::kImpression || e.items.empty()) continue;
    lists_seen_ += 1;
    entries_seen_ += static_cast<double>(e.items.size());
  }
}

at::Tensor ExposureObjective::Propensity(const at::Tensor& g,
                                         const at::Tensor& outcomes,
                                         bool beta_grad) {
  // beta learns only from batches with both outcomes (see the header).
  bool both = outcomes.numel() > 0 && outcomes.min().item<float>() == 0 &&
              outcomes.max().item<float>() == 1;
  at::Tensor beta = beta_grad && both ? beta_params_.Dense(beta_)
                                      : beta_params_.Value(beta_).detach();
  // A.17: G_beta(Y, g_psi(X, Z)), log-linear in beta; the clip keeps 1/G
  // finite.
  return (at::log_sigmoid(g + Offset()) + beta[0] * outcomes)
      .exp()
      .clamp(options_.propensity_clip_min, options_.propensity_clip_max);
}

at::Tensor ExposureObjective::ExposureLoss(const ExposureTerms& terms) {
  at::Tensor logits =
      g_->Forward(LongTensor(terms.user), LongTensor(terms.item), true);
  at::Tensor labels = at::tensor(at::ArrayRef<float>(terms.shown));
  return at::binary_cross_entropy_with_logits(logits, labels);
}

void ExposureObjective::Pretrain(std::span<const AppliedEvent> events,
                                 int64_t num_users, int64_t num_items,
                                 Rng& rng) {
  // A batch left by ranker steps outside TrainRound (counterfactual
  // samples) is not the maximiser's to use in a later round.
  last_delta_ = at::Tensor();
  if (pretrain_done_ >= options_.exposure_pretrain_steps) return;
  CountLists(events);
  ExposureTerms all = BuildExposureTerms(
      events, num_users, num_items, options_.sem_positives_per_list,
      options_.sem_negatives_per_positive, rng);
  if (all.size() == 0) return;
  size_t batch = std::min<size_t>(all.size(), options_.batch_size);
  std::uniform_int_distribution<size_t> pick(0, all.size() - 1);
  ExposureTerms b;
  while (pretrain_done_ < options_.exposure_pretrain_steps) {
    b.user.clear();
    b.item.clear();
    b.shown.clear();
    for (size_t k = 0; k < batch; ++k) {
      size_t r = batch == all.size() ? k : pick(rng);
      b.user.push_back(all.user[r]);
      b.item.push_back(all.item[r]);
      b.shown.push_back(all.shown[r]);
    }
    at::Tensor loss = ExposureLoss(b);
    loss.backward();
    g_->params().Step(psi_adam_);
    g_->AfterStep();
    ++pretrain_done_;
    ++exposure_updates_;
    double l = loss.item<double>();
    exposure_loss_ = Ema(exposure_loss_, l, exposure_updates_);
    exposure_objective_ = Ema(exposure_objective_, -l, exposure_updates_);
  }
}

at::Tensor ExposureObjective::RankerObjective(const at::Tensor& users,
                                              const at::Tensor& items,
                                              const at::Tensor& outcomes,
                                              const at::Tensor& delta) {
  at::Tensor g;
  {
    at::NoGradGuard no_grad;
    g = g_->Forward(users, items, false);
  }
  at::Tensor propensity = Propensity(g, outcomes, /*beta_grad=*/true);
  at::Tensor w = propensity.reciprocal();
  // (8), the f side, self-normalised (see the header).
  at::Tensor objective = (w * delta).sum() / w.sum();
  at::Tensor p = propensity.detach();
  propensity_min_ = p.min().item<double>();
  propensity_mean_ = p.mean().item<double>();
  propensity_max_ = p.max().item<double>();
  ++ranker_updates_;
  ranker_objective_ =
      Ema(ranker_objective_, objective.item<double>(), ranker_updates_);
  last_users_ = users;
  last_items_ = items;
  last_outcomes_ = outcomes.detach();
  last_delta_ = delta.detach();
  return objective;
}

void ExposureObjective::StepMinimiser() { beta_params_.Step(beta_adam_); }

void ExposureObjective::AdversaryStep(std::span<const AppliedEvent> events,
                                      int64_t num_users, int64_t num_items,
                                      Rng& rng) {
  ExposureTerms terms = BuildExposureTerms(
      events, num_users, num_items, options_.sem_positives_per_list,
      options_.sem_negatives_per_positive, rng);
  CountLists(events);
  at::Tensor loss = at::zeros({});
  double exposure = 0, weighted = 0;
  bool has_exposure = terms.size() > 0;
  bool has_weighted = adversarial_ && last_delta_.defined();
  if (has_exposure) {
    at::Tensor e = ExposureLoss(terms);
    exposure = e.item<double>();
    loss = loss + (adversarial_ ? options_.acl_alpha : 1.0) * e;
  }
  if (has_weighted) {
    // (8), the g side: ascend the weighted ranker loss (delta fixed).
    at::Tensor g = g_->Forward(last_users_, last_items_, true);
    at::Tensor w =
        Propensity(g, last_outcomes_, /*beta_grad=*/false).reciprocal();
    at::Tensor l = (w * last_delta_).sum() / w.sum();
    weighted = l.item<double>();
    loss = loss - l;
  }
  last_delta_ = at::Tensor();
  if (!loss.requires_grad()) return;
  loss.backward();
  g_->params().Step(psi_adam_);
  g_->AfterStep();
  ++exposure_updates_;
  if (has_exposure) {
    exposure_loss_ = Ema(exposure_loss_, exposure, exposure_updates_);
  }
  double objective =
      adversarial_ ? weighted - options_.acl_alpha * exposure : -exposure;
  exposure_objective_ = Ema(exposure_objective_, objective, exposure_updates_);
}

std::vector<float> ExposureObjective::Propensities(
    std::span<const int64_t> users, std::span<const int64_t> items,
    float outcome) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> u(users.begin(), users.end()),
      i(items.begin(), items.end());
  if (u.empty()) return {};
  at::Tensor g = g_->Forward(LongTensor(u), LongTensor(i), false);
  at::Tensor p = Propensity(g, at::full_like(g, outcome), false).contiguous();
  return std::vector<float>(p.data_ptr<float>(),
                            p.data_ptr<float>() + p.numel());
}

void ExposureObjective::FillStats(TrainingStats& s) const {
  s.acl_ranker_objective = ranker_objective_;
  s.acl_exposure_objective = exposure_objective_;
  s.exposure_loss = exposure_loss_;
  s.propensity_min = propensity_min_;
  s.propensity_mean = propensity_mean_;
  s.propensity_max = propensity_max_;
}

void ExposureObjective::ClearGrads() {
  g_->params().ClearGrads();
  beta_params_.ClearGrads();
  last_delta_ = at::Tensor();
}

void ExposureObjective::Save(torch::serialize::OutputArchive& archive,
                             nlohmann::json& meta) const {
  g_->params().Save(archive, "acl.g.");
  beta_params_.Save(archive, "acl.beta.");
  meta["acl"] = {
      {"trainer", options_.trainer},
      {"exposure_model", options_.exposure_model},
      {"exposure_dim", options_.exposure_dim},
      {"pretrain_done", pretrain_done_},
      {"lists_seen", lists_seen_},
      {"entries_seen", entries_seen_},
      {"num_items", num_items_},
      {"ranker_updates", ranker_updates_},
      {"exposure_updates", exposure_updates_},
      {"ranker_objective", ranker_objective_},
      {"exposure_objective", exposure_objective_},
      {"exposure_loss", exposure_loss_},
      {"propensity", {propensity_min_, propensity_mean_, propensity_max_}},
  };
}

Status ExposureObjective::Load(torch::serialize::InputArchive& archive,
                               const nlohmann::json& meta) {
  if (!meta.contains("acl")) {
    return Status::InvalidArgument(
        "checkpoint has no exposure model (written by trainer 'default'); "
        "this learner runs trainer '" +
        options_.trainer + "'");
  }
  const nlohmann::json& a = meta.at("acl");
  if (a.at("trainer") != options_.trainer ||
      a.at("exposure_model") != options_.exposure_model ||
      a.at("exposure_dim") != options_.exposure_dim) {
    return Status::InvalidArgument(
        "checkpoint was written with another trainer, exposure_model or "
        "exposure_dim");
  }
  CFREC_RETURN_IF_ERROR(g_->params().Load(archive, "acl.g."));
  CFREC_RETURN_IF_ERROR(beta_params_.Load(archive, "acl.beta."));
  pretrain_done_ = a.at("pretrain_done");
  lists_seen_ = a.at("lists_seen");
  entries_seen_ = a.at("entries_seen");
  num_items_ = a.at("num_items");
  ranker_updates_ = a.at("ranker_updates");
  exposure_updates_ = a.at("exposure_updates");
  ranker_objective_ = a.at("ranker_objective");
  exposure_objective_ = a.at("exposure_objective");
  exposure_loss_ = a.at("exposure_loss");
  const nlohmann::json& p = a.at("propensity");
  propensity_min_ = p.at(0);
  propensity_mean_ = p.at(1);
  propensity_max_ = p.at(2);
  last_delta_ = at::Tensor();
  return Status::Ok();
}

}  // namespace cfrec::learner
