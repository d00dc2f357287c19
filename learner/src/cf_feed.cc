#include "cf_feed.h"

#include <algorithm>
#include <cmath>

#include "cfrec/schemas/log.h"

namespace cfrec::learner {
namespace {

using Clock = std::chrono::steady_clock;

// Inline mode: most Generate rounds per Mix call, so one call cannot stall
// the trainer (what is still owed carries over).
constexpr int kMaxInlineRounds = 16;
// Owed samples are capped at this many rounds' worth (a long catch-up must
// not turn into minutes of counterfactual-only training). Large enough that
// one idle-replay chunk of history-heavy events (MIND: ~100k observed
// samples per 1024 events) is owed in full.
constexpr double kMaxOwedRounds = 256;

CounterfactualOptions EngineOptions(const TrainerOptions& o) {
  CounterfactualOptions cf = o.counterfactual;
  cf.intervention = o.intervention;  // the trainer's flag decides
  return cf;
}

}  // namespace

Result<std::unique_ptr<CounterfactualFeed>> CounterfactualFeed::Create(
    const TrainerOptions& options) {
  if (options.intervention == "none") {
    return std::unique_ptr<CounterfactualFeed>();
  }
  auto engine = CounterfactualEngine::Create(EngineOptions(options));
  if (!engine.ok()) return engine.status();
  return std::unique_ptr<CounterfactualFeed>(
      new CounterfactualFeed(options, std::move(engine).value()));
}

CounterfactualFeed::CounterfactualFeed(
    const TrainerOptions& options, std::unique_ptr<CounterfactualEngine> engine)
    : options_(options),
      cf_(options_.counterfactual),
      inline_rng_(options.counterfactual.seed + 1),
      engine_(std::move(engine)) {}

CounterfactualFeed::~CounterfactualFeed() { Stop(); }

void CounterfactualFeed::Start(const ThreadSched& sched) {
  if (!cf_.background || thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = false;
  }
  raise_to_ = SchedPolicy::kIdle;
  thread_ = std::thread([this, sched] { Loop(sched); });
}

void CounterfactualFeed::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status CounterfactualFeed::RaiseTo(SchedPolicy policy) {
  // No lock: the thread may be starved while holding one. Loop publishes
  // its id and then reads raise_to_; this publishes raise_to_ and then reads
  // the id (both sequentially consistent), so at least one of the two sees
  // the other and raises the thread. A thread that has just ended (its id
  // cleared after this read) makes the raise fail with "no such process".
  SchedPolicy asked = raise_to_.load();
  while (IsBelow(asked, policy) &&
         !raise_to_.compare_exchange_weak(asked, policy)) {
  }
  const int64_t tid = thread_id_.load();
  if (tid == 0 || !IsBelow(policy_.load(), policy)) return Status::Ok();
  const Status raised = RaiseThreadTo(tid, policy);
  if (raised.ok()) policy_ = policy;
  return raised;
}

void CounterfactualFeed::Observe(std::span<const state::AppliedEvent> events) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const state::AppliedEvent& e : events) {
    if (e.kind != state::AppliedEvent::Kind::kImpression) continue;
    if (!recent_set_.insert(e.user).second) continue;
    recent_.push_back(e.user);
    if (recent_.size() > size_t(cf_.recent_users)) {
      recent_set_.erase(recent_.front());
      recent_.pop_front();
    }
  }
  cv_.notify_all();
}

std::vector<uint32_t> CounterfactualFeed::PickUsers(
    std::mt19937_64& rng) const {
  std::vector<uint32_t> users;
  if (recent_.empty()) return users;
  std::uniform_int_distribution<size_t> pick(0, recent_.size() - 1);
  users.resize(size_t(cf_.users_per_round));
  for (uint32_t& u : users) u = recent_[pick(rng)];
  return users;
}

// Counterfactual samples go through ranker steps of the size the observed
// samples do. The ranker's optimizer is Adam, whose step moves each
// parameter by about the learning rate whatever the batch size, so a
// sample's weight is set by the size of the step it is in: trained as one
// step per generation round (users_per_round x k^2 samples, often a third of
// an observed step), the counterfactual samples took 64% of the steps at a
// mix ratio of 0.5 by samples. In steps of the observed size they take the
// mix ratio's share.
size_t CounterfactualFeed::StepSize() const {
  const size_t batch = size_t(std::max(1, options_.learner.batch_size));
  if (observed_step_size_ <= 0) return batch;
  return std::clamp(size_t(std::lround(observed_step_size_)), size_t(1), batch);
}

void CounterfactualFeed::TrainOwed(Learner& learner,
                                   std::vector<CounterfactualSample>& pool) {
  const size_t step = StepSize();
  size_t n = std::min(pool.size(), size_t(owed_));
  n -= n % step;
  if (n == 0) return;
  const uint64_t steps_before = learner.stats().steps;
  Status status = Status::Ok();
  for (size_t begin = 0; begin < n && status.ok(); begin += step) {
    status = learner.TrainCounterfactual(
        std::span<const CounterfactualSample>(pool.data() + begin, step));
  }
  pool.erase(pool.begin(), pool.begin() + n);
  owed_ -= double(n);
  if (status.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.samples_trained += n;
    stats_.steps += learner.stats().steps - steps_before;
  }
}

bool CounterfactualFeed::Behind() const {
  return cf_.background &&
         owed_ >= double(cf_.users_per_round) * cf_.noise_k * cf_.noise_k;
}

Status CounterfactualFeed::Mix(Learner& learner) {
  const uint64_t observed = learner.stats().observed_samples;
  const uint64_t delta =
      observed >= last_observed_ ? observed - last_observed_ : 0;
  last_observed_ = observed;
  // Every step since the end of the last call trained observed samples.
  const uint64_t steps = learner.stats().steps;
  const uint64_t observed_steps =
      steps >= last_steps_ ? steps - last_steps_ : 0;
  if (observed_steps > 0 && delta > 0) {
    const double size = double(delta) / double(observed_steps);
    observed_step_size_ = observed_step_size_ == 0
                              ? size
                              : 0.9 * observed_step_size_ + 0.1 * size;
  }
  const size_t step = StepSize();
  const double per_round =
      double(cf_.users_per_round) * cf_.noise_k * cf_.noise_k;
  owed_ = std::min(owed_ + cf_.mix_ratio * double(delta),
                   kMaxOwedRounds * per_round);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.observed_seen += delta;
    stats_.observed_steps += observed_steps;
  }
  Status status = Status::Ok();
  if (cf_.background) {
    auto now = Clock::now();
    if (now >= next_refresh_) {
      next_refresh_ = now + std::chrono::milliseconds(cf_.refresh_interval_ms);
      auto start = Clock::now();
      Result<std::string> blob = learner.SaveCheckpoint();
      if (blob.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        blob_ = std::move(blob).value();
        new_blob_ = true;
        ++stats_.refreshes;
        stats_.refresh_ms =
            std::chrono::duration<double, std::milli>(Clock::now() - start)
                .count();
        cv_.notify_all();
      } else {
        status = blob.status();
      }
    }
    while (owed_ >= double(step)) {
      if (pending_.size() < step) {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.empty()) break;
        pending_.insert(pending_.end(), queue_.front().begin(),
                        queue_.front().end());
        queue_.pop_front();
        cv_.notify_all();  // room in the queue
        continue;
      }
      TrainOwed(learner, pending_);
    }
  } else {
    std::vector<uint32_t> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      all.assign(recent_.begin(), recent_.end());
    }
    std::lock_guard<std::mutex> engine_lock(engine_mu_);
    if (!pretrained_ && !all.empty() && owed_ >= 1) {
      CFREC_RETURN_IF_ERROR(engine_->Pretrain(learner, all));
      pretrained_ = true;
    }
    int rounds = 0;
    while (owed_ >= double(step)) {
      if (pending_.size() < step) {
        if (rounds++ == kMaxInlineRounds) break;
        std::vector<uint32_t> users;
        {
          std::lock_guard<std::mutex> lock(mu_);
          users = PickUsers(inline_rng_);
        }
        if (users.empty()) break;
        auto samples = engine_->Generate(learner, users);
        if (!samples.ok()) return samples.status();
        if (samples->empty()) break;  // catalog smaller than K
        pending_.insert(pending_.end(), samples->begin(), samples->end());
        continue;
      }
      TrainOwed(learner, pending_);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (cf_.background) {
    // The thread copies engine stats in; inline mode does it here.
  } else {
    stats_.engine = engine_->stats();
  }
  last_steps_ = learner.stats().steps;
  stats_.achieved_ratio =
      stats_.observed_seen == 0
          ? 0
          : double(stats_.samples_trained) / double(stats_.observed_seen);
  return status;
}

void CounterfactualFeed::Loop(const ThreadSched& sched) {
  // Lowering one's own priority is always allowed; a stop that came before
  // the id was published (RaiseTo) is seen here, and the thread raises
  // itself at once.
  (void)LowerThisThreadTo(sched);
  policy_ = ThisThreadSched().policy;
  const int64_t tid = ThisThreadKernelId();
  thread_id_ = tid;
  if (const SchedPolicy want = raise_to_.load();
      IsBelow(policy_.load(), want)) {
    const Status raised = RaiseThreadTo(tid, want);
    if (raised.ok()) {
      policy_ = want;
    } else {
      LogWarn("learner",
              "the generator's thread keeps its priority while the stop "
              "waits for it: " +
                  raised.ToString());
    }
  }
  struct Forget {
    CounterfactualFeed* feed;
    ~Forget() { feed->thread_id_ = 0; }
  } forget{this};
  std::mt19937_64 rng(cf_.seed + 2);
  std::unique_ptr<Learner> copy;
  bool starved = false;  // the copy yields no samples: wait for a new one
  while (true) {
    std::string blob;
    std::vector<uint32_t> users, all;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return closed_ || new_blob_ ||
               (copy && !starved && !recent_.empty() &&
                queue_.size() < size_t(cf_.queue_batches));
      });
      if (closed_) return;
      if (new_blob_) {
        blob = std::move(blob_);
        blob_.clear();
        new_blob_ = false;
      }
      users = PickUsers(rng);
      all.assign(recent_.begin(), recent_.end());
    }
    if (!blob.empty()) {
      if (!copy) {
        auto created = Learner::Create(options_.learner);
        if (!created.ok()) return;  // options were validated: not expected
        copy = std::move(created).value();
      }
      if (!copy->RestoreCheckpoint(blob).ok()) continue;
      starved = false;
    }
    if (!copy || users.empty()) continue;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (queue_.size() >= size_t(cf_.queue_batches)) continue;
    }
    std::vector<CounterfactualSample> samples;
    CounterfactualStats engine_stats;
    {
      std::lock_guard<std::mutex> engine_lock(engine_mu_);
      // Algorithm 2 once, on the first copy (a restored engine was
      // pretrained before it was saved).
      if (engine_->stats().pretrain_lists == 0 && !all.empty()) {
        (void)engine_->Pretrain(*copy, all);  // failure: untrained policy
      }
      auto generated = engine_->Generate(*copy, users);
      if (generated.ok()) samples = std::move(generated).value();
      engine_stats = engine_->stats();
    }
    starved = samples.empty();
    std::lock_guard<std::mutex> lock(mu_);
    stats_.engine = engine_stats;
    if (!samples.empty()) queue_.push_back(std::move(samples));
  }
}

Result<std::string> CounterfactualFeed::SaveCheckpoint() {
  std::lock_guard<std::mutex> engine_lock(engine_mu_);
  return engine_->SaveCheckpoint();
}

Status CounterfactualFeed::RestoreCheckpoint(std::string_view blob) {
  std::lock_guard<std::mutex> engine_lock(engine_mu_);
  CFREC_RETURN_IF_ERROR(engine_->RestoreCheckpoint(blob));
  // A restored policy was pretrained before it was saved.
  pretrained_ = engine_->stats().pretrain_lists > 0;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.engine = engine_->stats();
  return Status::Ok();
}

CounterfactualFeedStats CounterfactualFeed::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace cfrec::learner
