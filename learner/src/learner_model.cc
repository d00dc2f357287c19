#include "learner_model.h"

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using Clock = std::chrono::steady_clock;

constexpr int kCheckpointFormat = 1;
constexpr double kEmaWeight = 0.05;  // of the newest value in loss averages

at::Tensor LongTensor(const std::vector<int64_t>& v) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::kLong);
}

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double Ema(double old_value, double value, uint64_t count) {
  return count <= 1 ? value : (1 - kEmaWeight) * old_value + kEmaWeight * value;
}

}  // namespace

LearnerModel::LearnerModel(const LearnerOptions& o)
    : options_(o),
      rng_(o.seed),
      ranker_(MakeRanker(o, rng_)),
      sems_(o, rng_),
      sampler_(o) {
  stats_.ranker = o.ranker;
  stats_.loss = o.loss;
  // The losses are batch means: the regulariser is divided by the batch
  // size too (see LearnerOptions::weight_decay).
  const double decay = o.weight_decay / o.batch_size;
  ranker_adam_ = {o.lr, 0.9, 0.999, 1e-8, decay};
  stats_.trainer = o.trainer;
  if (o.trainer != "default") {
    acl_ = std::make_unique<ExposureObjective>(o, rng_);
  }
  MfParams probe;
  if (o.kernel == "fused" && !acl_ && ranker_->FusedParams(&probe)) {
    fused_mf_ = std::make_unique<FusedMfStep>(o.train_threads);
  }
  GrowTo(0, 0);
}

Status LearnerModel::Train(std::span<const AppliedEvent> events, bool observe) {
  return Guarded([&] {
    if (observe) Observe(events);
    // The sampler records the observed events' clicks (per user, before
    // it samples that user's negatives).
    PrepareRound(events, /*record_clicks=*/observe, /*pooled=*/true, triples_);
    TrainBatches(triples_, events);
    return Status::Ok();
  });
}

Status LearnerModel::EnsureIds(size_t users, size_t items) {
  try {
    GrowTo(static_cast<int64_t>(users), static_cast<int64_t>(items));
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("growing the tables: ") + e.what());
  }
}

void LearnerModel::Score(uint32_t user, std::span<const uint32_t> items,
                         std::span<float> scores) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> us, is;
  std::vector<size_t> where;
  for (size_t k = 0; k < items.size(); ++k) {
    if (user < num_users_ && items[k] < num_items_) {
      us.push_back(user);
      is.push_back(items[k]);
      where.push_back(k);
    } else {
      scores[k] = -std::numeric_limits<float>::infinity();
    }
  }
  if (us.empty()) return;
  at::Tensor s =
      ranker_->Forward(LongTensor(us), LongTensor(is), false).contiguous();
  const float* data = s.data_ptr<float>();
  for (size_t n = 0; n < where.size(); ++n) scores[where[n]] = data[n];
}

Triples LearnerModel::KnownTriples(
    std::span<const CounterfactualSample> samples, std::vector<size_t>* where,
    std::vector<float>* weights) const {
  Triples t;
  for (size_t n = 0; n < samples.size(); ++n) {
    const CounterfactualSample& c = samples[n];
    if (c.user >= num_users_ || c.pos >= num_items_ || c.neg >= num_items_) {
      continue;
    }
    t.u.push_back(c.user);
    t.pos.push_back(c.pos);
    t.neg.push_back(c.neg);
    if (where != nullptr) where->push_back(n);
    if (weights != nullptr) weights->push_back(c.weight);
  }
  return t;
}

Status LearnerModel::TrainCounterfactual(
    std::span<const CounterfactualSample> samples) {
  return Guarded([&] {
    std::vector<float> weights;
    Triples t = KnownTriples(samples, nullptr, &weights);
    for (float w : weights) {
      if (!std::isfinite(w) || w < 0) {
        return Status::InvalidArgument(
            "counterfactual sample weight must be finite and >= 0");
      }
    }
    if (acl_ && std::any_of(weights.begin(), weights.end(),
                            [](float w) { return w != 1.0f; })) {
      return Status::InvalidArgument(
          "counterfactual sample weights other than 1 need a trainer other "
          "than acl");
    }
    size_t batch = static_cast<size_t>(options_.batch_size);
    for (size_t begin = 0; begin < t.size(); begin += batch) {
      size_t end = std::min(t.size(), begin + batch);
      RankerStep(t, begin, end,
                 std::span<const float>(weights).subspan(begin, end - begin));
      ++stats_.steps;
      stats_.counterfactual_samples += end - begin;
    }
    return Status::Ok();
  });
}

void LearnerModel::SampleLosses(std::span<const CounterfactualSample> samples,
                                std::span<float> losses) {
  at::NoGradGuard no_grad;
  std::fill(losses.begin(), losses.end(), 0.0f);
  std::vector<size_t> where;
  Triples t = KnownTriples(samples, &where);
  if (t.size() == 0) return;
  at::Tensor u = LongTensor(t.u);
  at::Tensor scores = ranker_->Forward(
      at::cat({u, u}), at::cat({LongTensor(t.pos), LongTensor(t.neg)}), false);
  int64_t n = static_cast<int64_t>(t.size());
  at::Tensor si = scores.narrow(0, 0, n), sj = scores.narrow(0, n, n);
  at::Tensor loss = options_.loss == "pairwise"
                        ? -at::log_sigmoid(si - sj)
                        : 0.5 * (at::softplus(-si) + at::softplus(sj));
  loss = loss.contiguous();
  const float* data = loss.data_ptr<float>();
  for (size_t k = 0; k < where.size(); ++k) losses[where[k]] = data[k];
}

TrainTimes LearnerModel::train_times() const {
  TrainTimes t = times_;
  if (fused_mf_) {
    t.ranker_index = fused_mf_->times().index;
    t.ranker_gradient = fused_mf_->times().gradient;
    t.ranker_update = fused_mf_->times().update;
  }
  return t;
}

Result<std::string> LearnerModel::SaveCheckpoint() const {
  try {
    torch::serialize::OutputArchive archive;
    nlohmann::json meta = {
        {"format", kCheckpointFormat},
        {"ranker", options_.ranker},
        {"dim", options_.dim},
        {"sem_dim", options_.sem_dim},
        {"max_positions", options_.max_positions},
        {"mlp_hidden", options_.mlp_hidden},
        {"num_users", num_users_},
        {"num_items", num_items_},
        {"ranker_steps", ranker_steps_},
        {"graph_built_step", graph_built_step_},
        {"graph_dirty", graph_dirty_},
        {"stats",
         {{"applied_seq", stats_.applied_seq},
          {"events_consumed", stats_.events_consumed},
          {"observed_samples", stats_.observed_samples},
          {"steps", stats_.steps},
          {"ranker_loss", stats_.ranker_loss},
          {"sem_r_loss", stats_.sem_r_loss},
          {"sem_s_loss", stats_.sem_s_loss},
          {"elbo", stats_.elbo}}},
    };
    sems_.SaveMeta(meta);
    std::ostringstream rng_text;
    rng_text << rng_;
    meta["rng"] = rng_text.str();
    // Trainers "ps" and "acl" add meta["acl"] and "acl.*" tensors; a
    // "default" blob is unchanged (format 1 either way).
    if (acl_) acl_->Save(archive, meta);
    archive.write("meta", c10::IValue(meta.dump()));
    ranker_->params().Save(archive, "ranker.");
    sems_.SaveParams(archive);
    // Clicks as CSR, and which event first carried each user's history.
    std::vector<int64_t> offsets, items, owners;
    clicks_.ToCsr(&offsets, &items, &owners);
    archive.write("clicked.offsets", LongTensor(offsets));
    archive.write("clicked.items", LongTensor(items));
    archive.write("history_owner", LongTensor(owners));
    if (auto* gcn = dynamic_cast<LightGcn*>(ranker_.get())) {
      const ClickGraph& g = gcn->graph();
      archive.write("graph.size",
                    at::tensor({g.num_users, g.num_items}, at::kLong));
      if (g.rows.defined()) {
        archive.write("graph.rows", g.rows);
        archive.write("graph.cols", g.cols);
        archive.write("graph.vals", g.vals);
      }
    }
    std::ostringstream out;
    archive.save_to(out);
    return out.str();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("checkpoint save failed: ") + e.what());
  }
}

Status LearnerModel::RestoreCheckpoint(std::string_view blob) {
  try {
    torch::serialize::InputArchive archive;
    std::istringstream in{std::string(blob)};
    archive.load_from(in);
    c10::IValue meta_value;
    if (!archive.try_read("meta", meta_value) || !meta_value.isString()) {
      return Status::Corruption("checkpoint has no metadata");
    }
    nlohmann::json meta = nlohmann::json::parse(meta_value.toStringRef());
    if (meta.at("format") != kCheckpointFormat ||
        meta.at("ranker") != options_.ranker ||
        meta.at("dim") != options_.dim ||
        meta.at("sem_dim") != options_.sem_dim ||
        meta.at("max_positions") != options_.max_positions ||
        meta.at("mlp_hidden") != options_.mlp_hidden) {
      return Status::InvalidArgument(
          "checkpoint was written by a learner with other model options "
          "(ranker, dim, sem_dim, max_positions or mlp_hidden)");
    }
    CFREC_RETURN_IF_ERROR(ranker_->params().Load(archive, "ranker."));
    CFREC_RETURN_IF_ERROR(sems_.LoadParams(archive));
    if (acl_) {
      CFREC_RETURN_IF_ERROR(acl_->Load(archive, meta));
    } else if (meta.contains("acl")) {
      return Status::InvalidArgument(
          "checkpoint was written by trainer '" +
          meta.at("acl").at("trainer").get<std::string>() +
          "'; this learner runs trainer 'default'");
    }
    num_users_ = 0;
    num_items_ = 0;
    GrowTo(meta.at("num_users").get<int64_t>(),
           meta.at("num_items").get<int64_t>());
    ranker_steps_ = meta.at("ranker_steps");
    graph_built_step_ = meta.at("graph_built_step");
    graph_dirty_ = meta.at("graph_dirty");
    sems_.LoadMeta(meta);
    const auto& s = meta.at("stats");
    stats_.applied_seq = s.at("applied_seq");
    stats_.events_consumed = s.at("events_consumed");
    stats_.observed_samples = s.at("observed_samples");
    stats_.steps = s.at("steps");
    stats_.ranker_loss = s.at("ranker_loss");
    stats_.sem_r_loss = s.at("sem_r_loss");
    stats_.sem_s_loss = s.at("sem_s_loss");
    stats_.elbo = s.at("elbo");
    if (acl_) acl_->FillStats(stats_);
    std::istringstream rng_text(meta.at("rng").get<std::string>());
    rng_text >> rng_;
    at::Tensor offsets, items, owners;
    if (!archive.try_read("clicked.offsets", offsets) ||
        !archive.try_read("clicked.items", items) ||
        !archive.try_read("history_owner", owners)) {
      return Status::Corruption("checkpoint lacks click lists");
    }
    auto longs = [](const at::Tensor& t) {
      const at::Tensor c = t.to(at::kLong).contiguous();
      return std::vector<int64_t>(c.data_ptr<int64_t>(),
                                  c.data_ptr<int64_t>() + c.numel());
    };
    clicks_.FromCsr(static_cast<size_t>(num_users_), longs(offsets),
                    longs(items), longs(owners));
    if (auto* gcn = dynamic_cast<LightGcn*>(ranker_.get())) {
      ClickGraph g;
      at::Tensor size;
      if (archive.try_read("graph.size", size)) {
        g.num_users = size[0].item<int64_t>();
        g.num_items = size[1].item<int64_t>();
        archive.try_read("graph.rows", g.rows);
        archive.try_read("graph.cols", g.cols);
        archive.try_read("graph.vals", g.vals);
      }
      gcn->SetGraph(std::move(g));
    }
    return Status::Ok();
  } catch (const c10::Error& e) {
    return Status::Corruption(std::string("checkpoint unreadable: ") +
                              e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("checkpoint unreadable: ") +
                              e.what());
  }
}

std::shared_ptr<const ModelSnapshot> LearnerModel::MakeSnapshot(
    SnapshotInputs in) {
  at::NoGradGuard no_grad;
  SnapshotData d;
  d.version = in.version;
  d.created_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  d.stats = in.stats;
  d.ids = in.ids;
  d.num_users = num_users_;
  d.num_items = num_items_;
  d.candidates = std::move(in.candidates);
  d.popular = std::move(in.popular);
  d.stream = std::move(in.stream);
  d.ranker = ranker_->Export(num_users_, num_items_);
  if (ranker_->IsDotProduct()) {
    // Retrieval reads the ranker's own vectors (no second copy).
    d.dim = d.ranker.dot_dim;
  } else {
    // No dot-product form: retrieve with p_R's P and Q (CPR eq. 4).
    d.dim = options_.sem_dim;
    ScoringModel pr = sems_.ExportImpressionModel(num_users_, num_items_);
    d.user_vectors = std::move(pr.user);
    d.item_vectors = std::move(pr.item);
  }
  clicks_.AppendCsr(&d.clicked_offsets, &d.clicked_items);
  return std::make_shared<const ModelSnapshotImpl>(std::move(d));
}

bool LearnerModel::Known(uint32_t user, std::span<const uint32_t> items) const {
  if (items.empty() || user >= num_users_) return false;
  return std::all_of(items.begin(), items.end(),
                     [&](uint32_t i) { return i < num_items_; });
}

void LearnerModel::ClearAllGrads() {
  ranker_->params().ClearGrads();
  sems_.ClearGrads();
  if (acl_) acl_->ClearGrads();
}

void LearnerModel::GrowTo(int64_t users, int64_t items) {
  users = std::max<int64_t>(users, num_users_);
  items = std::max<int64_t>(items, num_items_);
  ranker_->EnsureRows(users, items, rng_);
  sems_.EnsureRows(users, items, rng_);
  if (acl_) acl_->EnsureRows(users, items, rng_);
  num_users_ = users;
  num_items_ = items;
  clicks_.Grow(static_cast<size_t>(users));
}

void LearnerModel::Observe(std::span<const AppliedEvent> events,
                           const std::function<void()>& before_growing) {
  const auto t0 = Clock::now();
  int64_t users = num_users_, items = num_items_;
  for (const AppliedEvent& e : events) {
    users = std::max<int64_t>(users, int64_t{e.user} + 1);
    for (uint32_t i : e.items) items = std::max<int64_t>(items, int64_t{i} + 1);
    for (uint32_t i : e.history) {
      items = std::max<int64_t>(items, int64_t{i} + 1);
    }
    stats_.applied_seq = std::max(stats_.applied_seq, e.seq);
    ++stats_.events_consumed;
  }
  if ((users > num_users_ || items > num_items_) && before_growing) {
    before_growing();
  }
  GrowTo(users, items);
  times_.prepare += SecondsSince(t0);
}

double LearnerModel::RankerStep(const Triples& t, size_t begin, size_t end,
                                std::span<const float> weights) {
  const bool weighted = std::any_of(weights.begin(), weights.end(),
                                    [](float w) { return w != 1.0f; });
  if (fused_mf_) {
    MfParams params;
    ranker_->FusedParams(&params);
    auto part = [&](const std::vector<int64_t>& v) {
      return std::span<const int64_t>(v).subspan(begin, end - begin);
    };
    double loss =
        fused_mf_->Step(params, options_.loss == "pairwise", part(t.u),
                        part(t.pos), part(t.neg), ranker_adam_,
                        weighted ? weights : std::span<const float>{});
    ranker_->AfterStep();
    ++ranker_steps_;
    return loss;
  }
  auto t0 = Clock::now();
  double loss = TorchRankerStep(t, begin, end,
                                weighted ? weights : std::span<const float>{});
  times_.ranker_torch += SecondsSince(t0);
  return loss;
}

double LearnerModel::TorchRankerStep(const Triples& t, size_t begin, size_t end,
                                     std::span<const float> weights) {
  if (auto* gcn = dynamic_cast<LightGcn*>(ranker_.get())) {
    // Periodic rebuild: every new click changes the normalisation of its
    // user's and item's edges, so patching is no cheaper than rebuilding
    // from the click lists; rebuilding at most every
    // lightgcn_rebuild_steps steps bounds the cost.
    bool never = !gcn->graph().rows.defined();
    if (graph_dirty_ &&
        (never || ranker_steps_ - graph_built_step_ >=
                      uint64_t(options_.lightgcn_rebuild_steps))) {
      gcn->SetGraph(BuildClickGraph(num_users_, num_items_, clicks_.lists()));
      graph_built_step_ = ranker_steps_;
      graph_dirty_ = false;
    }
  }
  auto slice = [&](const std::vector<int64_t>& v) {
    return LongTensor(std::vector<int64_t>(v.begin() + begin, v.begin() + end));
  };
  at::Tensor u = slice(t.u), i = slice(t.pos), j = slice(t.neg);
  int64_t n = u.size(0);
  at::Tensor scores = ranker_->Forward(at::cat({u, u}), at::cat({i, j}), true);
  at::Tensor loss;
  if (!weights.empty()) {
    // The mean over triples of weight x loss (eq. (2): the mean of the
    // positive's and the negative's cross-entropy, as unweighted).
    at::Tensor w =
        at::from_blob(const_cast<float*>(weights.data()), {n}, at::kFloat)
            .clone();
    at::Tensor per =
        options_.loss == "pairwise"
            ? -at::log_sigmoid(scores.narrow(0, 0, n) - scores.narrow(0, n, n))
            : 0.5 * (at::softplus(-scores.narrow(0, 0, n)) +
                     at::softplus(scores.narrow(0, n, n)));
    loss = (per * w).mean();
  } else if (options_.loss == "pairwise") {
    // CPR eq. (1): -log sigma(f(u,i) - f(u,j)).
    loss = -at::log_sigmoid(scores.narrow(0, 0, n) - scores.narrow(0, n, n))
                .mean();
  } else {
    // CPR eq. (2) with f = sigma(logit): binary cross-entropy (the paper's
    // "(1 - log f)" for negatives is read as log(1 - f)).
    at::Tensor labels = at::cat({at::ones({n}), at::zeros({n})});
    loss = at::binary_cross_entropy_with_logits(scores, labels);
  }
  if (acl_) {
    // ACL objective (8), the f side: per-sample losses weighted by
    // 1/G_beta(Y, g_psi); pairwise samples carry the click (Y = 1).
    bool pairwise = options_.loss == "pairwise";
    at::Tensor labels = at::cat({at::ones({n}), at::zeros({n})});
    at::Tensor delta =
        pairwise
            ? -at::log_sigmoid(scores.narrow(0, 0, n) - scores.narrow(0, n, n))
            : at::binary_cross_entropy_with_logits(scores, labels, {}, {},
                                                   at::Reduction::None);
    loss = pairwise ? acl_->RankerObjective(u, i, at::ones({n}), delta)
                    : acl_->RankerObjective(at::cat({u, u}), at::cat({i, j}),
                                            labels, delta);
  }
  loss.backward();
  ranker_->params().Step(ranker_adam_);
  if (acl_) {
    acl_->StepMinimiser();
    acl_->FillStats(stats_);
  }
  ranker_->AfterStep();
  ++ranker_steps_;
  return loss.item<double>();
}

void LearnerModel::PrepareRound(std::span<const AppliedEvent> events,
                                bool record_clicks, bool pooled,
                                Triples& triples) {
  // ACL/PS: g_psi's stage-1 fit on the first events it sees.
  if (acl_) acl_->Pretrain(events, num_users_, num_items_, rng_);
  auto prepare_start = Clock::now();
  // One draw of the learner's generator seeds the round's sampling
  // (triple_sampler.h), which the fused kernel's threads share; sampled
  // on this thread alone, the triples are the same.
  const uint64_t sample_seed = rng_();
  WorkPool* pool = fused_mf_ && pooled ? &fused_mf_->pool() : nullptr;
  if (sampler_.Build(events, record_clicks, &clicks_, num_users_, num_items_,
                     sample_seed, pool, &triples)) {
    graph_dirty_ = true;
  }
  times_.prepare += SecondsSince(prepare_start);
}

void LearnerModel::TrainBatches(const Triples& triples,
                                std::span<const AppliedEvent> events) {
  size_t batch = static_cast<size_t>(options_.batch_size);
  size_t steps = std::max<size_t>(1, (triples.size() + batch - 1) / batch);
  auto start = Clock::now();
  for (size_t s = 0; s < steps; ++s) {
    size_t begin = s * batch, end = std::min(triples.size(), begin + batch);
    if (begin < end) {
      double loss = RankerStep(triples, begin, end);
      ++stats_.steps;
      stats_.observed_samples += end - begin;
      stats_.ranker_loss = Ema(stats_.ranker_loss, loss, stats_.steps);
    }
    // The SEMs, posteriors and g_psi see the same events, split over the
    // steps.
    size_t e0 = events.size() * s / steps, e1 = events.size() * (s + 1) / steps;
    auto chunk = events.subspan(e0, e1 - e0);
    if (acl_) {
      acl_->AdversaryStep(chunk, num_users_, num_items_, rng_);
      acl_->FillStats(stats_);
    }
    if (!options_.train_sems) continue;
    auto sem_start = Clock::now();
    SemStepResult r = sems_.Step(chunk, num_users_, num_items_, rng_, times_);
    if (r.impression) {
      ++sem_r_steps_;
      stats_.sem_r_loss =
          Ema(stats_.sem_r_loss, r.impression_loss, sem_r_steps_);
    }
    if (r.selection) {
      ++sem_s_steps_;
      stats_.sem_s_loss =
          Ema(stats_.sem_s_loss, r.selection_loss, sem_s_steps_);
    }
    if (r.posterior) {
      ++posterior_steps_;
      stats_.elbo = Ema(stats_.elbo, r.elbo, posterior_steps_);
    }
    times_.sems += SecondsSince(sem_start);
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (seconds > 0 && triples.size() > 0) {
    stats_.samples_per_sec = static_cast<double>(triples.size()) / seconds;
  }
}

}  // namespace cfrec::learner
