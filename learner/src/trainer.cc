#include "cfrec/learner/trainer.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "cf_feed.h"
#include "cfrec/learner/learner.h"
#include "cfrec/schemas/failpoint.h"
#include "cfrec/schemas/log.h"
#include "cfrec/schemas/thread_sched.h"
#include "cfrec/state/event_store.h"
#include "checkpoint_frame.h"
#include "online_quality.h"
#include "serving_window.h"
#include "stream_step.h"

namespace cfrec::learner {
namespace {

using Clock = std::chrono::steady_clock;
using state::AppliedEvent;

constexpr size_t kCatchUpChunk = 4096;
constexpr size_t kReplayRun = 8;  // consecutive old events read per lookup
// How often an idle trainer that waits for counterfactual samples looks
// for them.
constexpr std::chrono::milliseconds kGeneratorPoll(10);
// Model versions are reserved in blocks of this many, recorded in the store
// before the first of a block is published: a restart continues above every
// version published before it (skipping at most this many) with one small
// write per block.
constexpr uint64_t kVersionBlock = 1000;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start)
      .count();
}

}  // namespace

class Trainer::Impl {
 public:
  Impl(const TrainerOptions& options, state::EventStore* store,
       SnapshotHolder* snapshots)
      : options_(options),
        store_(store),
        snapshots_(snapshots),
        window_(options.candidate_window_ms),
        replay_rng_(options.learner.seed + 1) {
    if (options.stream_features) {
      stream_ = std::make_unique<StreamStep>(StreamOpts());
    }
  }

  ~Impl() {
    if (thread_.joinable()) (void)Stop();
  }

  Status Start() {
    if (thread_.joinable())
      return Status::FailedPrecondition("already started");
    if (snapshots_ == nullptr) {
      return Status::InvalidArgument("trainer needs a SnapshotHolder");
    }
    CFREC_RETURN_IF_ERROR(ValidateTrainerOptions(options_));
    auto learner = Learner::Create(options_.learner);
    if (!learner.ok()) return learner.status();
    learner_ = std::move(learner).value();
    if (store_ != nullptr) CFREC_RETURN_IF_ERROR(Restore());
    if (store_ != nullptr) CFREC_RETURN_IF_ERROR(RestoreVersions());
    auto feed = CounterfactualFeed::Create(options_);
    if (!feed.ok()) return feed.status();
    feed_ = std::move(feed).value();
    if (feed_ != nullptr && store_ != nullptr) {
      CFREC_RETURN_IF_ERROR(RestoreFeed());
    }
    if (feed_ != nullptr) feed_->Start(BackgroundSched());
    {
      TrainingStats stats = CollectStats();
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = false;
      stopped_ = false;
      quiet_ = false;  // not before the new thread has caught up
      dropped_at_stop_ = false;
      trained_seq_ = learner_->applied_seq();
      PublishStatsLocked(std::move(stats));
    }
    Publish();
    thread_ = std::thread([this] { Run(); });
    return Status::Ok();
  }

  void Enqueue(std::vector<AppliedEvent> events) {
    if (events.empty()) return;
    std::unique_lock<std::mutex> lock(mu_);
    // A batch larger than the whole queue is still accepted when the queue
    // is empty, so a producer can never deadlock.
    space_cv_.wait(lock, [&] {
      return closed_ || queued_ == 0 ||
             queued_ + events.size() <= size_t(options_.queue_capacity);
    });
    if (closed_) {
      counters_.events_dropped += events.size();
      // Not trained: a WaitUntilQuiet after the stop must not say quiet.
      if (store_ != nullptr) dropped_at_stop_ = true;
      return;
    }
    queued_ += events.size();
    queue_.push_back(std::move(events));
    work_cv_.notify_one();
  }

  Status Stop() {
    const SchedPolicy mine = ThisThreadSched().policy;
    Status raised;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      stop_policy_ = mine;
      raised = RaiseTrainerThreadLocked();
    }
    WarnIfNotRaised(raised, "the trainer's");
    if (feed_ != nullptr)
      WarnIfNotRaised(feed_->RaiseTo(mine), "the generator's");
    work_cv_.notify_all();
    space_cv_.notify_all();
    if (thread_.joinable()) {
      thread_.join();
      // The last snapshot and checkpoint are made here, on the caller's
      // thread and at its priority. The trainer's thread may run under
      // SCHED_IDLE (cfrec serve's default) and get no CPU at all on a
      // saturated machine; a stop that left this work to it waited minutes.
      Publish();
      if (store_ != nullptr) Checkpoint();
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
      progress_cv_.notify_all();
    }
    if (feed_ != nullptr) feed_->Stop();
    std::lock_guard<std::mutex> lock(mu_);
    return first_error_;
  }

  TrainingStats Stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  TrainerCounters Counters() const {
    std::lock_guard<std::mutex> lock(mu_);
    TrainerCounters c = counters_;
    if (feed_ != nullptr) {
      CounterfactualFeedStats f = feed_->Stats();
      c.cf_lists = f.engine.lists_generated;
      c.cf_samples_generated = f.engine.samples_generated;
      c.cf_samples_trained = f.samples_trained;
      c.cf_policy_updates = f.engine.policy_updates;
      c.cf_mix_ratio = f.achieved_ratio;
      c.cf_steps = f.steps;
      c.observed_steps = f.observed_steps;
      c.cf_seconds = f.engine.seconds;
      c.cf_refreshes = f.refreshes;
    }
    return c;
  }

  bool WaitUntilQuiet(std::chrono::milliseconds timeout) const {
    std::unique_lock<std::mutex> lock(mu_);
    progress_cv_.wait_for(
        lock, timeout, [&] { return (quiet_ && queue_.empty()) || stopped_; });
    return quiet_ && queue_.empty() && !dropped_at_stop_;
  }

  bool WaitForSeq(uint64_t seq, std::chrono::milliseconds timeout) const {
    std::unique_lock<std::mutex> lock(mu_);
    progress_cv_.wait_for(lock, timeout,
                          [&] { return trained_seq_ >= seq || stopped_; });
    return trained_seq_ >= seq;
  }

 private:
  // The previous good checkpoint, kept beside the newest one.
  std::string PreviousName() const {
    return options_.checkpoint_name + ".previous";
  }

  // The newest checkpoint, if any; if it cannot be decoded (damaged,
  // truncated), the previous one (PreviousName()), and if that cannot be
  // either, none: the learner starts fresh and trains on the whole applied
  // log again, which holds every event. Either way the catch-up reads the
  // applied log from the restored seq + 1, so nothing is lost. Each
  // undecodable checkpoint is reported (log, checkpoints_unusable). A
  // checkpoint of other model options is an error: the configuration is
  // wrong, not the data.
  Status Restore() {
    bool any = false;
    for (const std::string& name : {options_.checkpoint_name, PreviousName()}) {
      Result<std::string> blob = store_->GetCheckpoint(name);
      if (!blob.ok()) {
        if (blob.status().IsNotFound()) continue;
        return blob.status().WithContext("reading the learner checkpoint '" +
                                         name + "'");
      }
      any = true;
      Status restored = RestoreFrom(*blob);
      if (restored.ok()) {
        LogInfo("learner", "resumed from checkpoint '" + name +
                               "' at applied seq " +
                               std::to_string(learner_->applied_seq()));
        // Only a newest checkpoint known to be good becomes the previous
        // one when the next is written; after a fallback the previous
        // stays what it is.
        newest_good_ = name == options_.checkpoint_name;
        return Status::Ok();
      }
      if (restored.code() != StatusCode::kCorruption) return restored;
      LogError("learner", "checkpoint '" + name + "' (" +
                              std::to_string(blob->size()) +
                              " bytes) cannot be used: " + restored.ToString());
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++counters_.checkpoints_unusable;
      }
      // A failed restore may have changed part of the state.
      CFREC_RETURN_IF_ERROR(StartFresh());
    }
    if (any) {
      LogError("learner",
               "no usable checkpoint; starting fresh, training again on the "
               "applied log from seq 1");
    }
    return Status::Ok();
  }

  Status StartFresh() {
    auto fresh = Learner::Create(options_.learner);
    if (!fresh.ok()) return fresh.status();
    learner_ = std::move(fresh).value();
    window_ = ServingWindow(options_.candidate_window_ms);
    if (stream_ != nullptr) {
      stream_ = std::make_unique<StreamStep>(StreamOpts());
    }
    return Status::Ok();
  }

  Status RestoreFrom(std::string_view blob) {
    Result<std::string_view> frame = UnsealCheckpoint(blob);
    if (!frame.ok()) return frame.status();
    Result<CheckpointParts> parts = SplitCheckpoint(*frame);
    if (!parts.ok()) return parts.status();
    CFREC_RETURN_IF_ERROR(learner_->RestoreCheckpoint(parts->learner));
    CFREC_RETURN_IF_ERROR(window_.Deserialize(parts->window));
    // Written without stream features, or turned off since: the stream
    // starts empty.
    if (!parts->stream.has_value() || stream_ == nullptr) return Status::Ok();
    // The stream part is soft state (it rebuilds from the stream): one that
    // does not fit this build (e.g. another feature set) starts fresh.
    Status stream = stream_->Deserialize(*parts->stream);
    if (!stream.ok()) {
      LogWarn("learner", "stream features start fresh: " + stream.ToString());
      stream_ = std::make_unique<StreamStep>(StreamOpts());
    }
    return Status::Ok();
  }

  stream::StreamOptions StreamOpts() const {
    stream::StreamOptions so;
    so.model.learning_rate = options_.stream_learning_rate;
    so.evict_after_ms = options_.stream_evict_after_ms;
    return so;
  }

  std::string VersionsName() const {
    return options_.checkpoint_name + ".versions";
  }
  // Versions continue after the block reserved by the last start.
  Status RestoreVersions() {
    Result<std::string> blob = store_->GetCheckpoint(VersionsName());
    if (!blob.ok()) {
      if (blob.status().IsNotFound()) return Status::Ok();
      return blob.status().WithContext("reading the model version");
    }
    char* end = nullptr;
    const uint64_t reserved = std::strtoull(blob->c_str(), &end, 10);
    if (blob->empty() || *end != '\0') {
      // Versions then start from 1 again; say so.
      LogError("learner", "model version record '" + VersionsName() +
                              "' is damaged; versions start from 1");
      return Status::Ok();
    }
    std::lock_guard<std::mutex> lock(mu_);
    version_ = reserved_ = reserved;
    LogInfo("learner",
            "model versions continue after " + std::to_string(reserved));
    return Status::Ok();
  }
  // Before `version` is published: reserves a new block when it is past the
  // reserved ones. Trainer thread (and Start).
  void ReserveVersion(uint64_t version) {
    if (store_ == nullptr || version <= reserved_) return;
    const uint64_t reserved = version - 1 + kVersionBlock;
    Status status =
        store_->PutCheckpoint(VersionsName(), std::to_string(reserved));
    if (!status.ok()) {
      // Published anyway: serving goes on; a restart may then repeat
      // versions.
      RecordError(status.WithContext("recording the model version"));
      return;
    }
    reserved_ = reserved;
  }

  // The engine's policy is soft state beside the learner checkpoint (a
  // missing or mismatching one starts a fresh policy).
  std::string FeedCheckpointName() const {
    return options_.checkpoint_name + ".counterfactual";
  }
  Status RestoreFeed() {
    Result<std::string> blob = store_->GetCheckpoint(FeedCheckpointName());
    if (!blob.ok()) {
      if (blob.status().IsNotFound()) return Status::Ok();
      return blob.status().WithContext("reading the engine checkpoint");
    }
    (void)feed_->RestoreCheckpoint(*blob);
    return Status::Ok();
  }

  // Trains the counterfactual samples owed for the observed samples
  // trained since the last call (CPR Algorithm 1, lines 5-8, online).
  void MixCounterfactual() {
    if (feed_ == nullptr) return;
    Status status = feed_->Mix(*learner_);
    if (!status.ok()) RecordError(status);
    TrainingStats stats = CollectStats();
    std::lock_guard<std::mutex> lock(mu_);
    PublishStatsLocked(std::move(stats));
  }

  // The trainer's threads' scheduling (options validated by Start).
  ThreadSched BackgroundSched() const {
    Result<SchedPolicy> policy = ParseSchedPolicy(options_.sched);
    return {policy.ok() ? *policy : SchedPolicy::kNormal, options_.nice};
  }

  void Run() {
    // One intra-op thread: measured faster than two while the other core
    // serves ingest and HTTP.
    at::set_num_threads(1);
    // Training is throughput work that shares two cores with request
    // handling: a lower priority (per-thread nice and policy) keeps it from
    // stretching the tail latency of HTTP requests, and it still gets the
    // cycles the server does not use. The fused kernels' workers take this
    // thread's scheduling when it first hands them work.
    const Status sched = LowerThisThreadTo(BackgroundSched());
    if (!sched.ok()) {
      LogWarn("learner",
              "keeping the trainer thread's priority: " + sched.ToString());
    }
    Status raised;
    {
      std::lock_guard<std::mutex> lock(mu_);
      thread_id_ = ThisThreadKernelId();
      if (closed_) raised = RaiseTrainerThreadLocked();
    }
    WarnIfNotRaised(raised, "the trainer's");
    auto next_snapshot =
        Clock::now() + std::chrono::milliseconds(options_.snapshot_interval_ms);
    auto next_checkpoint =
        Clock::now() + std::chrono::seconds(options_.checkpoint_interval_s);
    if (store_ != nullptr) CatchUp(next_snapshot);
    while (true) {
      std::vector<AppliedEvent> batch;
      bool closing = false;
      {
        std::unique_lock<std::mutex> lock(mu_);
        // With idle-replay budget left, only look at the queue; otherwise
        // sleep until work or the next snapshot.
        work_cv_.wait_until(lock,
                            IdleReplayDue() ? Clock::now()
                            : WaitingForGenerator()
                                ? Clock::now() + kGeneratorPoll
                                : next_snapshot,
                            [&] { return closed_ || !queue_.empty(); });
        if (closed_ && store_ != nullptr && !queue_.empty()) {
          // Stopping with a store: what is still queued is in its applied
          // log, and the next start trains it (CatchUp). Training it now
          // would hold the stop for as long as the queue takes, on a thread
          // that may get little CPU.
          counters_.events_dropped += queued_;
          dropped_at_stop_ = true;
          queue_.clear();
          queued_ = 0;
        }
        while (!queue_.empty() &&
               batch.size() < size_t(options_.max_events_per_round)) {
          std::vector<AppliedEvent>& front = queue_.front();
          queued_ -= front.size();
          if (batch.empty()) {
            batch = std::move(front);
          } else {
            std::move(front.begin(), front.end(), std::back_inserter(batch));
          }
          queue_.pop_front();
        }
        closing = closed_ && queue_.empty();
        if (!batch.empty()) quiet_ = false;
      }
      space_cv_.notify_all();
      if (!batch.empty()) {
        TrainNew(std::move(batch));
        idle_replayed_ = 0;  // a new quiet period starts after these
      } else if (!closing && IdleReplayDue()) {
        IdleReplay();
      }
      MixCounterfactual();
      {
        std::lock_guard<std::mutex> lock(mu_);
        // Not quiet after a stop left queued events untrained.
        quiet_ = queue_.empty() && !IdleBudgetLeft() && !dropped_at_stop_;
        if (quiet_) progress_cv_.notify_all();
      }
      auto now = Clock::now();
      if (now >= next_snapshot) {
        Publish();
        next_snapshot =
            now + std::chrono::milliseconds(options_.snapshot_interval_ms);
      }
      if (store_ != nullptr && options_.checkpoint_interval_s > 0 &&
          now >= next_checkpoint) {
        Checkpoint();
        next_checkpoint =
            now + std::chrono::seconds(options_.checkpoint_interval_s);
      }
      if (closing) break;
    }
    // Stop() publishes and checkpoints once this thread has ended.
    std::lock_guard<std::mutex> lock(mu_);
    thread_id_ = 0;
  }

  // A stop waits for the round in training. Under SCHED_IDLE (cfrec serve's
  // default) the trainer's thread gets no CPU while other threads want it,
  // so on a saturated machine that wait had no end: the stop raises it to
  // the policy of the thread calling Stop (nice value kept). Leaving
  // SCHED_IDLE may be refused (thread_sched.h); then the stop waits as
  // before, and says so. Called with mu_ held, which keeps the thread from
  // ending (and its id from being reused) meanwhile.
  Status RaiseTrainerThreadLocked() {
    if (thread_id_ == 0 || !IsBelow(BackgroundSched().policy, stop_policy_)) {
      return Status::Ok();
    }
    return RaiseThreadTo(thread_id_, stop_policy_);
  }

  static void WarnIfNotRaised(const Status& raised, const char* whose) {
    if (raised.ok()) return;
    LogWarn("learner", std::string(whose) +
                           " thread keeps its priority while the stop waits "
                           "for it: " +
                           raised.ToString());
  }

  // Reads the applied log after the last trained seq until its end,
  // publishing snapshots on schedule meanwhile.
  void CatchUp(Clock::time_point& next_snapshot) {
    while (true) {
      if (Clock::now() >= next_snapshot) {
        Publish();
        next_snapshot = Clock::now() + std::chrono::milliseconds(
                                           options_.snapshot_interval_ms);
      }
      uint64_t from = learner_->applied_seq() + 1;
      Result<std::vector<AppliedEvent>> events =
          store_->ReadApplied(from, kCatchUpChunk);
      if (!events.ok()) {
        RecordError(events.status().WithContext("catching up"));
        return;
      }
      if (events->empty()) return;
      TrainNew(std::move(events).value());
      MixCounterfactual();
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;
    }
  }

  void TrainNew(std::vector<AppliedEvent> batch) {
    uint64_t done = learner_->applied_seq();
    // Skip what was already trained (catch-up overlaps with the queue).
    size_t skipped = 0;
    std::erase_if(batch, [&](const AppliedEvent& e) {
      bool dup = e.seq != 0 && e.seq <= done;
      skipped += dup;
      return dup;
    });
    if (skipped > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      counters_.events_skipped += skipped;
    }
    if (batch.empty()) return;
    // A gap (events applied but never enqueued) is filled from the log.
    if (store_ != nullptr && batch.front().seq > done + 1) {
      auto missing =
          store_->ReadApplied(done + 1, batch.front().seq - done - 1);
      if (missing.ok()) {
        missing->insert(missing->end(), std::make_move_iterator(batch.begin()),
                        std::make_move_iterator(batch.end()));
        batch = std::move(missing).value();
      }
    }
    window_.Observe(batch);
    const std::shared_ptr<const ModelSnapshot> served = snapshots_->Get();
    quality_.Observe(batch, served.get());
    if (stream_ != nullptr) {
      stream_->Observe(batch, *learner_,
                       served != nullptr ? served->stream() : nullptr);
    }
    if (feed_ != nullptr) feed_->Observe(batch);
    Status status = learner_->Train(batch);
    if (!status.ok()) RecordError(status);
    Replay(batch.size(), done, options_.replay_ratio);
    // With pipelined rounds (train_pipeline) this waits for the batch's
    // round: the events count as trained, and waiters are told, only after.
    TrainingStats stats = CollectStats();
    std::lock_guard<std::mutex> lock(mu_);
    trained_seq_ = learner_->applied_seq();
    PublishStatsLocked(std::move(stats));
    progress_cv_.notify_all();
  }

  // Revisits random old events of the applied log (the replay buffer).
  void Replay(size_t new_events, uint64_t last_old_seq, double ratio) {
    if (store_ == nullptr || ratio <= 0 || last_old_seq == 0) return;
    size_t want = static_cast<size_t>(double(new_events) * ratio);
    std::vector<AppliedEvent> old;
    std::uniform_int_distribution<uint64_t> pick(1, last_old_seq);
    while (old.size() < want) {
      auto run = store_->ReadApplied(pick(replay_rng_),
                                     std::min(kReplayRun, want - old.size()));
      if (!run.ok() || run->empty()) break;
      std::move(run->begin(), run->end(), std::back_inserter(old));
    }
    if (old.empty()) return;
    Status status = learner_->Replay(old);
    if (!status.ok()) RecordError(status);
    std::lock_guard<std::mutex> lock(mu_);
    counters_.events_replayed += old.size();
  }

  // Whether a quiet trainer should keep revisiting the applied log.
  // Idle replay is optional work: with counterfactual samples owed that the
  // background generator has not produced yet, it waits for them, so the
  // configured mix ratio holds while the trainer is faster than the
  // generator.
  bool IdleReplayDue() const {
    return IdleBudgetLeft() && (feed_ == nullptr || !feed_->Behind());
  }
  bool WaitingForGenerator() const {
    return IdleBudgetLeft() && feed_ != nullptr && feed_->Behind();
  }

  bool IdleBudgetLeft() const {
    if (store_ == nullptr || options_.idle_replay_passes <= 0) return false;
    const double log_size = double(learner_->applied_seq());
    return log_size > 0 &&
           double(idle_replayed_) < options_.idle_replay_passes * log_size;
  }

  // One round of the idle replay: a chunk of random old events.
  void IdleReplay() {
    const uint64_t before = counters_replayed();
    Replay(size_t(options_.idle_replay_chunk), learner_->applied_seq(),
           /*ratio=*/1.0);
    const uint64_t done = counters_replayed() - before;
    // Count the chunk even when nothing could be read, so a failing store
    // cannot spin this loop forever.
    idle_replayed_ += std::max<uint64_t>(done, options_.idle_replay_chunk);
    TrainingStats stats = CollectStats();
    std::lock_guard<std::mutex> lock(mu_);
    counters_.events_idle_replayed += done;
    PublishStatsLocked(std::move(stats));
  }

  uint64_t counters_replayed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counters_.events_replayed;
  }

  void Publish() {
    auto start = Clock::now();
    SnapshotInputs in;
    {
      std::lock_guard<std::mutex> lock(mu_);
      in.version = ++version_;
      in.stats = stats_;
    }
    ReserveVersion(in.version);
    if (FailPointsEnabled()) {
      FailPoint("snapshot.build", "version=" + std::to_string(in.version));
    }
    in.ids = store_;
    in.candidates = window_.Candidates();
    in.popular = window_.Popular();
    if (stream_ != nullptr) in.stream = stream_->MakeScorer();
    Result<std::shared_ptr<const ModelSnapshot>> snapshot =
        learner_->MakeSnapshot(std::move(in));
    if (!snapshot.ok()) {
      RecordError(snapshot.status());  // readers keep the previous one
      return;
    }
    snapshots_->Publish(std::move(snapshot).value());
    std::lock_guard<std::mutex> lock(mu_);
    ++counters_.snapshots_published;
    counters_.last_snapshot_build_ms = MsSince(start);
  }

  void Checkpoint() {
    auto start = Clock::now();
    Result<std::string> blob = learner_->SaveCheckpoint();
    if (!blob.ok()) {
      RecordError(blob.status());
      return;
    }
    const std::string stream_part =
        stream_ != nullptr ? stream_->Serialize() : std::string();
    const std::string framed = SealCheckpoint(
        FrameCheckpoint(*blob, window_.Serialize(),
                        stream_ != nullptr ? &stream_part : nullptr));
    const uint64_t seq = learner_->applied_seq();
    // The newest checkpoint becomes the previous one before it is
    // replaced. Each put is atomic, so a crash at any point leaves a newest
    // checkpoint no older than before, and a good previous one: between the
    // two puts both hold the same blob.
    if (newest_good_) {
      Result<std::string> newest =
          store_->GetCheckpoint(options_.checkpoint_name);
      Status kept = newest.ok() ? store_->PutCheckpoint(PreviousName(), *newest)
                                : newest.status();
      if (!kept.ok()) {
        RecordError(kept.WithContext("keeping the previous checkpoint"));
        return;
      }
    }
    if (FailPointsEnabled()) {
      FailPoint("checkpoint.put", "seq=" + std::to_string(seq));
    }
    Status status = store_->PutCheckpoint(options_.checkpoint_name, framed);
    if (!status.ok()) {
      RecordError(status.WithContext("writing the learner checkpoint"));
      return;
    }
    newest_good_ = true;
    if (FailPointsEnabled()) {
      FailPoint("checkpoint.written", "seq=" + std::to_string(seq));
    }
    if (feed_ != nullptr) {
      Result<std::string> engine = feed_->SaveCheckpoint();
      Status saved = engine.ok()
                         ? store_->PutCheckpoint(FeedCheckpointName(), *engine)
                         : engine.status();
      if (!saved.ok()) RecordError(saved.WithContext("engine checkpoint"));
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++counters_.checkpoints_written;
    counters_.last_checkpoint_seq = seq;
    counters_.last_checkpoint_ms = MsSince(start);
    counters_.last_checkpoint_bytes = framed.size();
  }

  void RecordError(const Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counters_.errors;
    if (first_error_.ok()) first_error_ = status;
  }

  // Called without mu_: with pipelined rounds (train_pipeline) the
  // learner's stats() waits for the round in training, and mu_ guards what
  // ingest (Enqueue) and the metrics (Stats) need at once.
  TrainingStats CollectStats() {
    TrainingStats stats = learner_->stats();
    stats.intervention = options_.intervention;
    stats.trainer = options_.trainer;
    if (feed_ != nullptr) {
      CounterfactualFeedStats f = feed_->Stats();
      stats.policy_reward = f.engine.mean_reward;
      stats.policy_baseline = f.engine.baseline;
    }
    return stats;
  }

  void PublishStatsLocked(TrainingStats stats) {
    stats_ = std::move(stats);
    quality_.Fill(&stats_);
  }

  const TrainerOptions options_;
  state::EventStore* const store_;
  SnapshotHolder* const snapshots_;
  // Trainer thread only (and Start before the thread exists, Stop after it
  // has ended); so are the members up to thread_.
  std::unique_ptr<Learner> learner_;
  // Counterfactual samples; null for intervention "none". Created in Start.
  std::unique_ptr<CounterfactualFeed> feed_;
  ServingWindow window_;
  // Stream-aware scoring; null with stream_features off.
  std::unique_ptr<StreamStep> stream_;
  OnlineQuality quality_;
  std::mt19937_64 replay_rng_;
  uint64_t idle_replayed_ = 0;  // old events revisited this quiet period
  std::thread thread_;

  mutable std::mutex mu_;             // guards everything below
  std::condition_variable work_cv_;   // queue not empty or closed
  std::condition_variable space_cv_;  // queue has room or closed
  mutable std::condition_variable progress_cv_;
  std::deque<std::vector<AppliedEvent>> queue_;
  size_t queued_ = 0;  // events in queue_
  bool closed_ = false;
  bool stopped_ = false;
  int64_t thread_id_ = 0;  // the trainer thread's kernel id while it runs
  SchedPolicy stop_policy_ = SchedPolicy::kNormal;  // Stop's caller's
  bool dropped_at_stop_ = false;  // a stop left queued events untrained
  bool quiet_ = false;            // queue drained and idle replay done
  uint64_t trained_seq_ = 0;
  uint64_t version_ = 0;
  // Versions up to this one are recorded in the store (ReserveVersion).
  // Trainer thread (and Start, and Stop after the thread has ended).
  uint64_t reserved_ = 0;
  TrainingStats stats_;
  TrainerCounters counters_;
  Status first_error_;
  // True once the newest checkpoint in the store is known to be good
  // (restored from, or written by, this trainer); trainer thread only
  // after Start, and Stop after the thread has ended.
  bool newest_good_ = false;
};

Trainer::Trainer(const TrainerOptions& options, state::EventStore* store,
                 SnapshotHolder* snapshots)
    : impl_(std::make_unique<Impl>(options, store, snapshots)) {}
Trainer::~Trainer() = default;
Status Trainer::Start() { return impl_->Start(); }
void Trainer::Enqueue(std::vector<state::AppliedEvent> events) {
  impl_->Enqueue(std::move(events));
}
Status Trainer::Stop() { return impl_->Stop(); }
TrainingStats Trainer::Stats() const { return impl_->Stats(); }
TrainerCounters Trainer::Counters() const { return impl_->Counters(); }
bool Trainer::WaitUntilQuiet(std::chrono::milliseconds timeout) const {
  return impl_->WaitUntilQuiet(timeout);
}
bool Trainer::WaitForSeq(uint64_t seq,
                         std::chrono::milliseconds timeout) const {
  return impl_->WaitForSeq(seq, timeout);
}

}  // namespace cfrec::learner
