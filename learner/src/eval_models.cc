#include "cfrec/learner/eval_models.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cf_click_model.h"
#include "cf_fidelity.h"
#include "cf_oracle.h"
#include "cf_sem_simulator.h"
#include "cfrec/learner/counterfactual.h"
#include "cfrec/learner/learner.h"
#include "cfrec/learner/options.h"
#include "cfrec/state/applied_event.h"
#include "eval_model_settings.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;

// SplitMix64: independent streams from one seed.
uint64_t MixSeed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A Learner (plus a CounterfactualEngine with an intervention) behind
// eval::Model.
class LearnerModel final : public eval::Model {
 public:
  LearnerModel(eval::ModelSpec spec, EvalSettings settings)
      : spec_(std::move(spec)), settings_(std::move(settings)) {}

  std::string name() const override {
    std::string n = spec_.ranker;
    if (spec_.intervention == "random") n += "+cpr-r";
    if (spec_.intervention == "learned") n += "+cpr";
    if (spec_.intervention == "oracle") n += "+cpr-oracle";
    if (spec_.trainer != "default") n += "+" + spec_.trainer;
    return n;
  }

  Status Fit(const eval::TrainData& data,
             const eval::FitContext& context) override {
    LearnerOptions options = settings_.trainer.learner;
    options.seed = context.seed;
    Result<std::unique_ptr<Learner>> learner = Learner::Create(options);
    if (!learner.ok()) return learner.status();
    learner_ = std::move(learner).value();
    CFREC_RETURN_IF_ERROR(learner_->EnsureIds(data.num_users, data.num_items));
    engine_.reset();
    oracle_.reset();
    tracker_.reset();
    simulator_.reset();
    click_model_.reset();
    sem_fidelity_ = nlohmann::json();
    if (settings_.oracle) {
      if (spec_.truth == nullptr) {
        return Status::FailedPrecondition(
            "intervention oracle needs the generator's true models");
      }
      const CounterfactualOptions& cf = settings_.trainer.counterfactual;
      oracle_ = std::make_unique<cf::OracleSimulator>(
          spec_.truth, cf.list_size, cf.noise_k, settings_.cf_oracle == "click",
          MixSeed(context.seed, 1));
    } else if (settings_.trainer.counterfactual.intervention != "none") {
      CounterfactualOptions cf = settings_.trainer.counterfactual;
      cf.seed = MixSeed(context.seed, 1);
      Result<std::unique_ptr<CounterfactualEngine>> engine =
          CounterfactualEngine::Create(cf);
      if (!engine.ok()) return engine.status();
      engine_ = std::move(engine).value();
    }
    if (simulating()) {
      tracker_ = std::make_unique<cf::FidelityTracker>(spec_.truth);
    }
    next_seq_ = 1;
    users_with_history_.assign(data.num_users, false);
    std::vector<AppliedEvent> events = ToEvents(data);
    active_users_ = ActiveUsers(events);
    if (simulating() && settings_.cf_max_user_clicks > 0) {
      active_users_ = FewClickUsers(events, active_users_);
    }
    if (engine_ != nullptr && settings_.cf_simulator == "converged") {
      LearnerOptions options = settings_.trainer.learner;
      options.seed = MixSeed(context.seed, 5);
      auto fitted =
          cf::SemSimulator::Fit(options, data, events, settings_.cf_sim_epochs,
                                settings_.cf_sim_patience,
                                {.heldout = MixSeed(context.seed, 6),
                                 .shuffle = MixSeed(context.seed, 9),
                                 .refresh = MixSeed(context.seed, 7)});
      if (!fitted.ok()) return fitted.status();
      simulator_ = std::move(fitted).value();
    }
    if (engine_ != nullptr && settings_.cf_simulator == "logistic") {
      FitClickModel(data, context.seed);
      // The lists seen so far, for refits as Update brings more.
      seen_ =
          eval::TrainData{data.num_users, data.num_items, {}, data.impressions};
      seen_at_fit_ = seen_.impressions.size();
      click_model_seed_ = context.seed;
      click_model_refits_ = 0;
    }
    std::mt19937_64 rng(MixSeed(context.seed, 2));
    std::optional<std::string> best;
    for (int epoch = 1; epoch <= settings_.epochs; ++epoch) {
      const uint64_t observed_before = learner_->stats().observed_samples;
      if (epoch == 1) {
        CFREC_RETURN_IF_ERROR(learner_->Train(events));
      } else {
        std::shuffle(events.begin(), events.end(), rng);
        CFREC_RETURN_IF_ERROR(learner_->Replay(events));
      }
      if (simulating() && epoch >= settings_.cf_start_epoch) {
        tracker_->BeginEpoch(epoch);
        if (simulator_ != nullptr && settings_.cf_sim_refresh &&
            epoch > settings_.cf_start_epoch) {
          CFREC_RETURN_IF_ERROR(simulator_->Refresh());
        }
        if (engine_ != nullptr && epoch == settings_.cf_start_epoch) {
          // Algorithm 2 needs trained SEMs and a ranker to reward against.
          CFREC_RETURN_IF_ERROR(
              engine_->Pretrain(*learner_, SimulatorView(), active_users_));
        }
        mix_scale_ = std::pow(settings_.cf_mix_decay,
                              double(epoch - settings_.cf_start_epoch));
        Status st = Counterfactual(
            learner_->stats().observed_samples - observed_before, rng);
        mix_scale_ = 1;
        CFREC_RETURN_IF_ERROR(st);
      }
      if (!context.on_epoch) continue;
      const eval::EpochVerdict verdict =
          context.on_epoch({epoch, learner_->stats().ranker_loss});
      if (verdict == eval::EpochVerdict::kBest) {
        Result<std::string> blob = learner_->SaveCheckpoint();
        if (!blob.ok()) return blob.status();
        best = std::move(blob).value();
      } else if (verdict == eval::EpochVerdict::kStop) {
        break;
      }
    }
    // Model selection: the epoch validation liked best, not the last one.
    if (best.has_value()) {
      CFREC_RETURN_IF_ERROR(learner_->RestoreCheckpoint(*best));
    }
    if (simulating()) {
      Learner* ranker = learner_.get();
      sem_fidelity_ = cf::SemFidelity(
          SimulatorView(), data, spec_.truth.get(), MixSeed(context.seed, 4),
          [ranker](uint32_t user, std::span<const uint32_t> items,
                   std::span<float> out) { ranker->Score(user, items, out); });
    }
    return Status::Ok();
  }

  // The prequential "then train" step: one pass over the new events (and
  // their counterfactual samples), as the online trainer would.
  Status Update(const eval::TrainData& increment) override {
    if (learner_ == nullptr) return Status::FailedPrecondition("not fitted");
    CFREC_RETURN_IF_ERROR(
        learner_->EnsureIds(increment.num_users, increment.num_items));
    if (users_with_history_.size() < increment.num_users) {
      users_with_history_.resize(increment.num_users, false);
    }
    std::vector<AppliedEvent> events = ToEvents(increment);
    const uint64_t observed_before = learner_->stats().observed_samples;
    CFREC_RETURN_IF_ERROR(learner_->Train(events));
    if (click_model_ != nullptr) RefitClickModel(increment);
    if (simulating()) {
      tracker_->BeginEpoch(0);
      std::vector<uint32_t> recent = ActiveUsers(events);
      active_users_.swap(recent);
      std::mt19937_64 rng(MixSeed(next_seq_, 3));
      Status st = Counterfactual(
          learner_->stats().observed_samples - observed_before, rng);
      active_users_.swap(recent);
      CFREC_RETURN_IF_ERROR(st);
    }
    return Status::Ok();
  }

  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> out) const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (learner_ == nullptr) {
      std::fill(out.begin(), out.end(), 0.0f);
      return;
    }
    learner_->Score(user, items, out);
    // Ids beyond the tables (a user first seen in a later window): a finite
    // score below every real one, as eval::Model requires.
    for (float& s : out) {
      if (!std::isfinite(s)) s = -1e30f;
    }
  }

 private:
  // eval's dense log as applied events: one impression event per shown
  // list (clicked positions from the labels), the user's history positives
  // attached to their first event (or to an empty event when the user has
  // no list in `data`).
  std::vector<AppliedEvent> ToEvents(const eval::TrainData& data) {
    std::vector<std::vector<uint32_t>> history(data.num_users);
    for (const eval::Interaction& x : data.positives) {
      if (x.ts_ms == eval::kHistoryTimestamp && x.user < data.num_users &&
          !users_with_history_[x.user]) {
        history[x.user].push_back(x.item);
      }
    }
    std::vector<AppliedEvent> events;
    events.reserve(data.impressions.size());
    auto take_history = [&](uint32_t user, AppliedEvent& e) {
      if (!history[user].empty()) {
        e.history = std::move(history[user]);
        history[user].clear();
        users_with_history_[user] = true;
      }
    };
    std::vector<bool> has_list(data.num_users, false);
    for (const eval::Impression& imp : data.impressions) {
      if (imp.user < data.num_users) has_list[imp.user] = true;
    }
    for (uint32_t u = 0; u < data.num_users; ++u) {
      // Users with a history but no list in `data` get an event of their
      // own, ordered first like MIND's history column.
      if (history[u].empty() || has_list[u]) continue;
      AppliedEvent e;
      e.seq = next_seq_++;
      e.user = u;
      e.ts_ms = 0;
      take_history(u, e);
      events.push_back(std::move(e));
    }
    for (const eval::Impression& imp : data.impressions) {
      AppliedEvent e;
      e.seq = next_seq_++;
      e.user = imp.user;
      e.ts_ms = imp.ts_ms;
      e.items = imp.items;
      for (size_t k = 0; k < imp.clicked.size() && k < imp.items.size(); ++k) {
        if (imp.clicked[k]) e.clicked.push_back(static_cast<uint16_t>(k));
      }
      if (imp.user < data.num_users) take_history(imp.user, e);
      events.push_back(std::move(e));
    }
    return events;
  }

  static std::vector<uint32_t> ActiveUsers(
      const std::vector<AppliedEvent>& events) {
    std::vector<uint32_t> users;
    users.reserve(events.size());
    for (const AppliedEvent& e : events) users.push_back(e.user);
    std::sort(users.begin(), users.end());
    users.erase(std::unique(users.begin(), users.end()), users.end());
    return users;
  }

  bool simulating() const { return engine_ != nullptr || oracle_ != nullptr; }

  // CPR Algorithm 1, lines 5-8: simulate lists for users in a fresh order
  // until the counterfactual samples number mix_ratio times the observed
  // ones of this pass, and train the ranker on them (cf_batch).
  Status Counterfactual(uint64_t observed, std::mt19937_64& rng) {
    const CounterfactualOptions& cf = settings_.trainer.counterfactual;
    const auto target =
        static_cast<uint64_t>(double(observed) * cf.mix_ratio * mix_scale_);
    if (target == 0 || active_users_.empty()) return Status::Ok();
    const bool per_round = settings_.cf_batch == "round";
    std::vector<uint32_t> order = active_users_;
    std::shuffle(order.begin(), order.end(), rng);
    const size_t users_per_round =
        std::max<size_t>(1, static_cast<size_t>(cf.users_per_round));
    std::vector<CounterfactualSample> pending;
    uint64_t produced = 0;
    size_t at = 0;
    int empty_rounds = 0;
    CounterfactualEngine::Trace trace;
    std::vector<float> margins;
    while (produced < target) {
      if (at >= order.size()) {
        std::shuffle(order.begin(), order.end(), rng);
        at = 0;
      }
      const size_t n = std::min(users_per_round, order.size() - at);
      std::span<const uint32_t> users =
          std::span<const uint32_t>(order).subspan(at, n);
      at += n;
      std::vector<CounterfactualSample> samples;
      trace = CounterfactualEngine::Trace{};
      double reward = 0;
      if (oracle_ != nullptr) {
        oracle_->Generate(users, samples, &trace);
      } else {
        Result<std::vector<CounterfactualSample>> made =
            engine_->Generate(*learner_, SimulatorView(), users, &trace);
        if (!made.ok()) return made.status();
        samples = std::move(made).value();
        reward = engine_->stats().mean_reward;
        if (settings_.cf_min_top_prob > 0) {
          KeepConfident(trace, size_t(cf.list_size),
                        size_t(cf.noise_k) * cf.noise_k, samples);
        }
        if (settings_.cf_sim_clicks && click_model_ != nullptr) {
          std::erase_if(samples, [&](const CounterfactualSample& c) {
            return !(click_model_->Logit(c.user, c.pos) > 0 &&
                     click_model_->Logit(c.user, c.neg) <= 0);
          });
        }
        if (settings_.cf_min_margin > 0 && click_model_ != nullptr) {
          const auto margin = static_cast<float>(settings_.cf_min_margin);
          std::erase_if(samples, [&](const CounterfactualSample& c) {
            return !(click_model_->Logit(c.user, c.pos) -
                         click_model_->Logit(c.user, c.neg) >=
                     margin);
          });
        }
      }
      if (samples.empty()) {
        // Users without rows or a catalog shorter than K: nothing to gain
        // from spinning (a confidence filter may empty many rounds).
        const bool filtered = settings_.cf_min_top_prob > 0 ||
                              settings_.cf_sim_clicks ||
                              settings_.cf_min_margin > 0;
        if (++empty_rounds >= (filtered ? 50 : 3)) {
          break;
        }
        continue;
      }
      empty_rounds = 0;
      if (spec_.truth != nullptr) RankerMargins(samples, margins);
      tracker_->AddRound(samples, trace, size_t(cf.list_size),
                         oracle_ != nullptr ? nullptr : &reward, margins);
      if (samples.size() > target - produced) {
        samples.resize(static_cast<size_t>(target - produced));
      }
      produced += samples.size();
      if (per_round) {
        Weigh(samples);
        CFREC_RETURN_IF_ERROR(Train(samples));
      } else {
        pending.insert(pending.end(), samples.begin(), samples.end());
      }
    }
    if (!pending.empty()) {
      std::shuffle(pending.begin(), pending.end(), rng);
      Weigh(pending);
      CFREC_RETURN_IF_ERROR(Train(pending));
    }
    return Status::Ok();
  }

  // cf_weight and cf_weight_by: the samples' loss weights, averaging
  // cf_weight over `samples` (the epoch's, or a round's with cf_batch
  // "round").
  void Weigh(std::span<CounterfactualSample> samples) const {
    const auto weight = static_cast<float>(settings_.cf_weight);
    if (settings_.cf_weight_by != "confidence" || click_model_ == nullptr) {
      for (CounterfactualSample& c : samples) c.weight = weight;
      return;
    }
    double sum = 0;
    for (CounterfactualSample& c : samples) {
      const float margin = click_model_->Logit(c.user, c.pos) -
                           click_model_->Logit(c.user, c.neg);
      c.weight = std::abs(2.0f / (1.0f + std::exp(-margin)) - 1.0f);
      sum += c.weight;
    }
    const double mean = sum / double(samples.size());
    for (CounterfactualSample& c : samples) {
      c.weight = mean > 0 ? float(c.weight / mean) * weight : weight;
    }
  }

  // The tables the engine simulates from (cf_simulator).
  SemView SimulatorView() {
    if (simulator_ != nullptr) return simulator_->view();
    SemView v = learner_->sem_view();
    SemView out;
    if (click_model_ != nullptr && click_model_->View(v, out)) return out;
    return v;
  }

  // cf_simulator "logistic".
  void FitClickModel(const eval::TrainData& data, uint64_t seed) {
    std::vector<bool> held;
    std::vector<eval::Impression> heldout =
        cf::HeldOutLists(data, MixSeed(seed, 6), held);
    std::vector<eval::Impression> train;
    for (size_t k = 0; k < data.impressions.size(); ++k) {
      if (!held[k]) train.push_back(data.impressions[k]);
    }
    cf::ClickModelOptions options;
    options.seed = MixSeed(seed, 8);
    std::erase_if(options.dims, [&](int d) {
      return d + 1 > settings_.trainer.learner.sem_dim;
    });
    options.folds = settings_.cf_sim_folds;
    if (!settings_.cf_sim_l2.empty()) options.l2 = settings_.cf_sim_l2;
    click_model_ = std::make_unique<cf::ClickModel>();
    click_model_->Fit(train, heldout, data.num_users, data.num_items, options);
  }

  // cf_simulator "logistic" under an incremental protocol: the click model
  // was fitted on the first window only; refit it on every list seen so far
  // each time their number has doubled since the last fit (a handful of
  // refits over a stream, so that later users and items are known).
  void RefitClickModel(const eval::TrainData& increment) {
    seen_.num_users = std::max(seen_.num_users, increment.num_users);
    seen_.num_items = std::max(seen_.num_items, increment.num_items);
    seen_.impressions.insert(seen_.impressions.end(),
                             increment.impressions.begin(),
                             increment.impressions.end());
    if (seen_.impressions.size() < 2 * std::max<size_t>(1, seen_at_fit_)) {
      return;
    }
    seen_at_fit_ = seen_.impressions.size();
    ++click_model_refits_;
    FitClickModel(seen_, MixSeed(click_model_seed_, 10 + click_model_refits_));
  }

  // cf_max_user_clicks: the users of `users` with at most that many clicks
  // (history included) in `events`.
  std::vector<uint32_t> FewClickUsers(const std::vector<AppliedEvent>& events,
                                      const std::vector<uint32_t>& users) {
    std::vector<size_t> clicks;
    for (const AppliedEvent& e : events) {
      if (clicks.size() <= e.user) clicks.resize(size_t(e.user) + 1, 0);
      clicks[e.user] += e.clicked.size() + e.history.size();
    }
    std::vector<uint32_t> few;
    for (uint32_t u : users) {
      if (u < clicks.size() &&
          clicks[u] <= size_t(settings_.cf_max_user_clicks)) {
        few.push_back(u);
      }
    }
    return few;
  }

  // The ranker's score of each pair's positive minus its negative.
  void RankerMargins(std::span<const CounterfactualSample> samples,
                     std::vector<float>& margins) const {
    margins.resize(samples.size());
    std::array<uint32_t, 2> items;
    std::array<float, 2> scores;
    for (size_t n = 0; n < samples.size(); ++n) {
      items = {samples[n].pos, samples[n].neg};
      learner_->Score(samples[n].user, items, scores);
      margins[n] = scores[0] - scores[1];
    }
  }

  // cf_min_top_prob: drops the pairs of lists (K entries, per_list pairs
  // each, in trace order) whose most likely item is below the threshold.
  void KeepConfident(const CounterfactualEngine::Trace& trace, size_t k_len,
                     size_t per_list,
                     std::vector<CounterfactualSample>& samples) const {
    if (trace.probabilities.size() != trace.users.size() * k_len ||
        samples.size() != trace.users.size() * per_list) {
      return;
    }
    size_t kept = 0;
    for (size_t t = 0; t < trace.users.size(); ++t) {
      const float* p = trace.probabilities.data() + t * k_len;
      if (*std::max_element(p, p + k_len) < settings_.cf_min_top_prob) {
        continue;
      }
      for (size_t s = 0; s < per_list; ++s) {
        samples[kept++] = samples[t * per_list + s];
      }
    }
    samples.resize(kept);
  }

  Status Train(std::span<const CounterfactualSample> samples) {
    const uint64_t steps = learner_->stats().steps;
    const uint64_t trained = learner_->stats().counterfactual_samples;
    CFREC_RETURN_IF_ERROR(learner_->TrainCounterfactual(samples));
    tracker_->AddTraining(learner_->stats().steps - steps,
                          learner_->stats().counterfactual_samples - trained);
    return Status::Ok();
  }

 public:
  std::string DiagnosticsJson() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (learner_ == nullptr || tracker_ == nullptr) return {};
    const CounterfactualOptions& cf = settings_.trainer.counterfactual;
    const TrainingStats& st = learner_->stats();
    nlohmann::json j = tracker_->Json(learner_->sem_view().num_items);
    j["simulator"] =
        settings_.oracle ? "oracle-" + settings_.cf_oracle : cf.intervention;
    j["cf_batch"] = settings_.cf_batch;
    j["mix_ratio"] = cf.mix_ratio;
    j["noise_k"] = cf.noise_k;
    j["list_size"] = cf.list_size;
    j["cf_candidate_pool"] = cf.candidate_pool;
    j["cf_explore_share"] = cf.explore_share;
    j["cf_start_epoch"] = settings_.cf_start_epoch;
    j["cf_mix_decay"] = settings_.cf_mix_decay;
    j["cf_max_user_clicks"] = settings_.cf_max_user_clicks;
    j["cf_users"] = active_users_.size();
    j["cf_simulator"] = settings_.cf_simulator;
    j["cf_sim_clicks"] = settings_.cf_sim_clicks;
    j["cf_weight"] = settings_.cf_weight;
    j["cf_weight_by"] = settings_.cf_weight_by;
    j["cf_min_margin"] = settings_.cf_min_margin;
    if (simulator_ != nullptr) j["simulator_fit"] = simulator_->report();
    if (click_model_ != nullptr) {
      j["simulator_fit"] = click_model_->report();
      j["simulator_refits"] = click_model_refits_;
    }
    // The learner's counters (as saved with the restored epoch): ranker
    // steps and samples, observed and counterfactual.
    j["ranker_steps_all"] = st.steps;
    j["samples_observed"] = st.observed_samples;
    j["samples_counterfactual"] = st.counterfactual_samples;
    j["sem"] = sem_fidelity_;
    if (engine_ != nullptr) {
      const CounterfactualStats& es = engine_->stats();
      j["policy"] = {{"pretrain_lists", es.pretrain_lists},
                     {"updates", es.policy_updates},
                     {"baseline", es.baseline}};
    }
    return j.dump();
  }

 private:
  const eval::ModelSpec spec_;
  const EvalSettings settings_;
  // Learner::Score is not thread-safe; eval::Model allows concurrent Score
  // calls (Fit and Update have exclusive access by contract).
  mutable std::mutex mu_;
  std::unique_ptr<Learner> learner_;
  std::unique_ptr<CounterfactualEngine> engine_;
  std::unique_ptr<cf::OracleSimulator> oracle_;
  std::unique_ptr<cf::FidelityTracker> tracker_;
  nlohmann::json sem_fidelity_;
  std::unique_ptr<cf::SemSimulator> simulator_;  // "converged"
  std::unique_ptr<cf::ClickModel> click_model_;  // "logistic"
  eval::TrainData seen_;    // "logistic": the lists seen so far
  size_t seen_at_fit_ = 0;  // their number at the last fit
  uint64_t click_model_seed_ = 0;
  int click_model_refits_ = 0;
  double mix_scale_ = 1;                // cf_mix_decay's factor this epoch
  std::vector<uint32_t> active_users_;  // users simulated from
  std::vector<bool> users_with_history_;
  uint64_t next_seq_ = 1;
};

}  // namespace

void RegisterEvalModels(eval::ModelRegistry& registry) {
  for (const char* ranker : {"bpr", "gmf", "mlp", "neumf", "lightgcn"}) {
    registry.Register(
        ranker,
        [](const eval::ModelSpec& spec)
            -> Result<std::unique_ptr<eval::Model>> {
          Result<EvalSettings> settings = ParseEvalSettings(spec);
          if (!settings.ok()) return settings.status();
          return std::unique_ptr<eval::Model>(std::make_unique<LearnerModel>(
              spec, std::move(settings).value()));
        });
  }
}

}  // namespace cfrec::learner
