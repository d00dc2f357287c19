#include "cf_sem_simulator.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "cf_fidelity.h"

namespace cfrec::learner::cf {

std::vector<eval::Impression> HeldOutLists(const eval::TrainData& data,
                                           uint64_t seed,
                                           std::vector<bool>& held) {
  std::vector<std::vector<size_t>> by_user(data.num_users);
  for (size_t k = 0; k < data.impressions.size(); ++k) {
    const eval::Impression& imp = data.impressions[k];
    if (imp.user < data.num_users) by_user[imp.user].push_back(k);
  }
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution half(0.5);
  held.assign(data.impressions.size(), false);
  std::vector<eval::Impression> out;
  for (const std::vector<size_t>& lists : by_user) {
    if (lists.size() < 2 || !half(rng)) continue;
    const eval::Impression& last = data.impressions[lists.back()];
    const auto clicks =
        std::count(last.clicked.begin(), last.clicked.end(), uint8_t(1));
    if (clicks == 0 || size_t(clicks) >= last.items.size()) continue;
    held[lists.back()] = true;
    out.push_back(last);
  }
  return out;
}

Result<std::unique_ptr<SemSimulator>> SemSimulator::Fit(
    const LearnerOptions& options, const eval::TrainData& data,
    const std::vector<state::AppliedEvent>& events, int max_epochs,
    int patience, const Seeds& seeds) {
  std::unique_ptr<SemSimulator> sim(new SemSimulator());
  Result<std::unique_ptr<Learner>> made = Learner::Create(options);
  if (!made.ok()) return made.status();
  sim->learner_ = std::move(made).value();
  Learner& learner = *sim->learner_;
  CFREC_RETURN_IF_ERROR(learner.EnsureIds(data.num_users, data.num_items));
  const size_t offset = events.size() - data.impressions.size();
  std::vector<bool> held;
  sim->heldout_ = HeldOutLists(data, seeds.heldout, held);
  std::mt19937_64 rng(seeds.shuffle);
  for (size_t n = 0; n < events.size(); ++n) {
    if (n >= offset && held[n - offset]) continue;
    sim->events_.push_back(events[n]);
  }
  nlohmann::json curve = nlohmann::json::array();
  int best_epoch = 0, since = 0, epoch = 1;
  for (; epoch <= max_epochs; ++epoch) {
    if (epoch == 1) {
      CFREC_RETURN_IF_ERROR(learner.Train(sim->events_));
    } else {
      std::shuffle(sim->events_.begin(), sim->events_.end(), rng);
      CFREC_RETURN_IF_ERROR(learner.Replay(sim->events_));
    }
    const double auc = ListAuc(learner.sem_view(), sim->heldout_, {});
    curve.push_back(std::isfinite(auc) ? nlohmann::json(auc)
                                       : nlohmann::json());
    if (auc > sim->best_auc_) {
      sim->best_auc_ = auc;
      best_epoch = epoch;
      since = 0;
      Result<std::string> blob = learner.SaveCheckpoint();
      if (!blob.ok()) return blob.status();
      sim->best_ = std::move(blob).value();
    } else if (++since >= patience) {
      break;
    }
  }
  if (!sim->best_.empty()) {
    CFREC_RETURN_IF_ERROR(learner.RestoreCheckpoint(sim->best_));
  }
  sim->refresh_rng_.seed(seeds.refresh);
  sim->report_ = {{"heldout_lists", sim->heldout_.size()},
                  {"epochs_run", std::min(epoch, max_epochs)},
                  {"best_epoch", best_epoch},
                  {"ps_auc_heldout", curve},
                  {"refresh_passes", 0},
                  {"refresh_kept", 0}};
  return sim;
}

Status SemSimulator::Refresh() {
  std::shuffle(events_.begin(), events_.end(), refresh_rng_);
  CFREC_RETURN_IF_ERROR(learner_->Replay(events_));
  const double auc = ListAuc(learner_->sem_view(), heldout_, {});
  report_["refresh_passes"] = report_["refresh_passes"].get<int>() + 1;
  if (auc >= best_auc_) {
    best_auc_ = auc;
    Result<std::string> blob = learner_->SaveCheckpoint();
    if (!blob.ok()) return blob.status();
    best_ = std::move(blob).value();
    report_["refresh_kept"] = report_["refresh_kept"].get<int>() + 1;
    return Status::Ok();
  }
  return learner_->RestoreCheckpoint(best_);
}

}  // namespace cfrec::learner::cf
