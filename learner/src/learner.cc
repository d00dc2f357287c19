#include "cfrec/learner/learner.h"

#include <algorithm>
#include <functional>

#include "learner_model.h"
#include "pipelined_rounds.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;

}  // namespace

// The Learner: its model, and the pipelined rounds when they are on. Every
// call that reads or writes the model reaches it through Settled(), which
// first waits for the round in training; only Train and Replay hand rounds
// to the pipeline, and Unsettled() serves the reads of what only the
// caller's thread writes.
class Learner::Impl {
 public:
  explicit Impl(const LearnerOptions& o) : model_(o) {
    if (o.train_pipeline && model_.CanPipelineRounds()) {
      rounds_ = std::make_unique<PipelinedRounds>();
    }
  }

  // The model with every round handed in trained (a round's failure is
  // kept for the next Train).
  LearnerModel& Settled() {
    if (rounds_) rounds_->Settle();
    return model_;
  }
  const LearnerModel& Settled() const {
    if (rounds_) rounds_->Settle();
    return model_;
  }
  // Without waiting, for what only the caller's thread writes: the id
  // space, applied_seq, the click lists, the options.
  const LearnerModel& Unsettled() const { return model_; }

  // With the pipeline: samples the round here and hands its batches to the
  // pipeline's thread, returning while they train. Reports this call's
  // failure, else that of an earlier round not reported yet (this round
  // still trains).
  Status Train(std::span<const AppliedEvent> events, bool observe) {
    if (!rounds_) return model_.Train(events, observe);
    Status earlier;
    Status own = GuardedStep(
        [&] {
          if (observe) {
            // The tables are reallocated only when they grow: the round in
            // training must be done first.
            model_.Observe(events, [this] { rounds_->Settle(); });
          }
          Triples& triples = rounds_->NextBuffer();
          model_.PrepareRound(events, /*record_clicks=*/observe,
                              /*pooled=*/false, triples);
          // No SEMs and no ACL: the batches need only the triples.
          earlier = rounds_->Submit(
              [this, &triples] { model_.TrainBatches(triples, {}); });
          return Status::Ok();
        },
        [this] {
          rounds_->Settle();
          model_.ClearAllGrads();
        });
    if (!own.ok() || earlier.ok()) return own;
    return earlier.WithContext("an earlier round");
  }

  // A restored state replaces what a failed round left, and its failure.
  Status RestoreCheckpoint(std::string_view blob) {
    Status status = Settled().RestoreCheckpoint(blob);
    if (status.ok() && rounds_) rounds_->Forget();
    return status;
  }

 private:
  LearnerModel model_;
  // LearnerOptions::train_pipeline (null without it). Last: destroyed
  // first, so its thread stops before the model it trains.
  std::unique_ptr<PipelinedRounds> rounds_;
};

Result<std::unique_ptr<Learner>> Learner::Create(
    const LearnerOptions& options) {
  CFREC_RETURN_IF_ERROR(ValidateLearnerOptions(options));
  try {
    return std::unique_ptr<Learner>(
        new Learner(std::make_unique<Impl>(options)));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("cannot build the models: ") +
                            e.what());
  }
}

Learner::Learner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Learner::~Learner() = default;

Status Learner::Train(std::span<const state::AppliedEvent> events) {
  return impl_->Train(events, /*observe=*/true);
}
Status Learner::Replay(std::span<const state::AppliedEvent> events) {
  return impl_->Train(events, /*observe=*/false);
}
Status Learner::EnsureIds(size_t num_users, size_t num_items) {
  return impl_->Settled().EnsureIds(num_users, num_items);
}
Status Learner::TrainEpochs(std::span<const state::AppliedEvent> events,
                            int epochs) {
  if (epochs <= 0) return Status::Ok();
  CFREC_RETURN_IF_ERROR(Train(events));
  for (int e = 1; e < epochs; ++e) CFREC_RETURN_IF_ERROR(Replay(events));
  return Status::Ok();
}
namespace {
// Runs a query, turning any exception (c10::Error included) into `fallback`.
template <typename F, typename T>
auto Guard(F&& f, T fallback) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception&) {
    return fallback;
  }
}
}  // namespace

void Learner::Score(uint32_t user, std::span<const uint32_t> items,
                    std::span<float> scores) {
  try {
    impl_->Settled().Score(user, items, scores);
  } catch (const std::exception&) {
    std::fill(scores.begin(), scores.end(),
              -std::numeric_limits<float>::infinity());
  }
}
std::vector<float> Learner::SampleBeta(size_t k) {
  return impl_->Settled().SampleBeta(k);
}
std::vector<float> Learner::SampleAlpha(std::span<const uint32_t> items) {
  return Guard([&] { return impl_->Settled().SampleAlpha(items); },
               std::vector<float>{});
}
std::vector<float> Learner::SelectionProbabilities(
    uint32_t user, std::span<const uint32_t> list,
    std::span<const float> beta) {
  return Guard(
      [&] { return impl_->Settled().SelectionProbabilities(user, list, beta); },
      std::vector<float>{});
}
std::vector<float> Learner::ImpressionLogits(uint32_t user,
                                             std::span<const uint32_t> items,
                                             std::span<const float> alpha) {
  return Guard(
      [&] { return impl_->Settled().ImpressionLogits(user, items, alpha); },
      std::vector<float>{});
}
double Learner::EvaluateElbo(std::span<const state::AppliedEvent> events) {
  return Guard([&] { return impl_->Settled().EvaluateElbo(events); },
               std::numeric_limits<double>::quiet_NaN());
}
double Learner::SelectionLogLikelihood(
    std::span<const state::AppliedEvent> events) {
  return Guard([&] { return impl_->Settled().SelectionLogLikelihood(events); },
               std::numeric_limits<double>::quiet_NaN());
}
Status Learner::TrainCounterfactual(
    std::span<const CounterfactualSample> samples) {
  return impl_->Settled().TrainCounterfactual(samples);
}
double Learner::RankerLoss(std::span<const CounterfactualSample> samples) {
  if (samples.empty()) return 0;
  std::vector<float> losses(samples.size());
  if (!RankerSampleLosses(samples, losses).ok()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  double sum = 0;
  for (float l : losses) sum += l;
  return sum / static_cast<double>(losses.size());
}
Status Learner::RankerSampleLosses(
    std::span<const CounterfactualSample> samples, std::span<float> losses) {
  if (losses.size() != samples.size()) {
    return Status::InvalidArgument("losses and samples differ in size");
  }
  try {
    impl_->Settled().SampleLosses(samples, losses);
    return Status::Ok();
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("LibTorch: ") +
                            e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Status::Internal(std::string("ranker loss failed: ") + e.what());
  }
}
SemView Learner::sem_view() const { return impl_->Settled().sem_view(); }
int Learner::SamplesPerClick() const {
  return impl_->Unsettled().SamplesPerClick();
}
const TrainingStats& Learner::stats() const { return impl_->Settled().stats(); }
TrainTimes Learner::train_times() const {
  return impl_->Settled().train_times();
}
uint64_t Learner::applied_seq() const {
  return impl_->Unsettled().applied_seq();
}
size_t Learner::num_users() const { return impl_->Unsettled().num_users(); }
size_t Learner::num_items() const { return impl_->Unsettled().num_items(); }
std::span<const uint32_t> Learner::ClickedItems(uint32_t user) const {
  return impl_->Unsettled().ClickedItems(user);
}
Result<std::string> Learner::SaveCheckpoint() const {
  return impl_->Settled().SaveCheckpoint();
}
Status Learner::RestoreCheckpoint(std::string_view blob) {
  return impl_->RestoreCheckpoint(blob);
}
Result<std::shared_ptr<const ModelSnapshot>> Learner::MakeSnapshot(
    SnapshotInputs inputs) {
  try {
    return impl_->Settled().MakeSnapshot(std::move(inputs));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("snapshot failed: ") + e.what());
  }
}

}  // namespace cfrec::learner
