// CounterfactualFeed: the trainer's side of the counterfactual engine
// (CPR Algorithm 1 run online). It remembers recently active users, keeps a
// CounterfactualEngine generating C(tau) for them, and trains the trainer's
// learner on those samples at options.counterfactual.mix_ratio
// counterfactual samples per observed ranker sample.
//
// Two modes (CounterfactualOptions::background):
//  - background: a thread owns the engine and a read-only Learner copy,
//    restored from a checkpoint blob the trainer hands over every
//    refresh_interval_ms (the policy lives with the engine); it pretrains
//    the policy on the first copy and then fills a bounded queue of sample
//    batches, which Mix drains.
//  - inline: Mix generates on the trainer's own learner, on the calling
//    thread; deterministic (tests, evaluation).
//
// Thread-safety: every method but Stats() is called from the trainer
// thread (Create/Start/Stop from the thread that starts and stops the
// trainer, before and after that thread runs). Stats() is safe anywhere.
#ifndef CFREC_LEARNER_SRC_CF_FEED_H_
#define CFREC_LEARNER_SRC_CF_FEED_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "cfrec/learner/counterfactual.h"
#include "cfrec/learner/learner.h"
#include "cfrec/learner/options.h"
#include "cfrec/schemas/thread_sched.h"
#include "cfrec/state/applied_event.h"

namespace cfrec::learner {

struct CounterfactualFeedStats {
  CounterfactualStats engine;
  uint64_t samples_trained = 0;  // counterfactual samples the ranker took
  uint64_t observed_seen = 0;    // observed ranker samples since start
  uint64_t steps = 0;            // ranker steps on counterfactual samples
  uint64_t observed_steps = 0;   // ranker steps on observed samples
  double achieved_ratio = 0;     // samples_trained / observed_seen
  uint64_t refreshes = 0;        // learner copies handed to the thread
  double refresh_ms = 0;         // last checkpoint+restore cost
};

class CounterfactualFeed {
 public:
  // Null (and Ok) when options.intervention is "none".
  static Result<std::unique_ptr<CounterfactualFeed>> Create(
      const TrainerOptions& options);
  ~CounterfactualFeed();  // Stops the thread.

  // Starts the background thread (background mode) under `sched`, as the
  // trainer's.
  void Start(const ThreadSched& sched);
  void Stop();
  // Raises the background thread to `policy` if its own is lower, so that
  // a stop (which waits for its round and for the engine's lock) does not
  // wait on a thread a busy machine never runs (RaiseThreadTo; Unavailable
  // when refused). Ok without a thread.
  Status RaiseTo(SchedPolicy policy);

  // Users of newly trained events become candidates for simulation.
  void Observe(std::span<const state::AppliedEvent> events);
  // Trains `learner` on counterfactual samples owed for the observed ranker
  // samples counted by learner.stats().observed_samples since the last
  // call. In background mode also hands the thread a fresh copy of the
  // learner when refresh_interval_ms has passed.
  Status Mix(Learner& learner);

  // Background mode: whether at least one generator round's worth of
  // counterfactual samples is owed. Optional work (the trainer's idle
  // replay) waits while it is, so the configured ratio holds when the
  // generator is slower than the trainer. Always false inline.
  bool Behind() const;

  // Engine state (policy, baseline, generator).
  Result<std::string> SaveCheckpoint();
  Status RestoreCheckpoint(std::string_view blob);

  CounterfactualFeedStats Stats() const;

 private:
  CounterfactualFeed(const TrainerOptions& options,
                     std::unique_ptr<CounterfactualEngine> engine);
  std::vector<uint32_t> PickUsers(std::mt19937_64& rng) const;  // mu_ held
  void Loop(const ThreadSched& sched);
  // Trains what is owed from the front of `pool` in steps of StepSize().
  void TrainOwed(Learner& learner, std::vector<CounterfactualSample>& pool);
  // Samples per counterfactual ranker step: the observed steps' mean size
  // (EMA), at most the ranker's batch_size.
  size_t StepSize() const;

  const TrainerOptions options_;
  const CounterfactualOptions& cf_;

  // Trainer thread only.
  uint64_t last_observed_ = 0;
  uint64_t last_steps_ = 0;        // learner's steps at the end of the last Mix
  double observed_step_size_ = 0;  // samples per observed step (EMA)
  double owed_ = 0;                // counterfactual samples due
  std::vector<CounterfactualSample> pending_;  // generated, not yet trained
  std::chrono::steady_clock::time_point next_refresh_{};
  bool pretrained_ = false;  // inline mode
  std::mt19937_64 inline_rng_;

  mutable std::mutex engine_mu_;  // the engine (background thread + saves)
  std::unique_ptr<CounterfactualEngine> engine_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<uint32_t> recent_;  // oldest first
  std::unordered_set<uint32_t> recent_set_;
  std::deque<std::vector<CounterfactualSample>> queue_;
  std::string blob_;  // newest learner copy for the thread
  bool new_blob_ = false;
  bool closed_ = false;
  // The thread's scheduling, for RaiseTo: atomics, not under mu_, so that
  // a stop never waits for a lock that a starved idle thread holds.
  std::atomic<SchedPolicy> policy_{SchedPolicy::kNormal};  // once running
  std::atomic<SchedPolicy> raise_to_{SchedPolicy::kIdle};  // highest asked
  std::atomic<int64_t> thread_id_{0};  // kernel id while it runs
  CounterfactualFeedStats stats_;
  std::thread thread_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_CF_FEED_H_
