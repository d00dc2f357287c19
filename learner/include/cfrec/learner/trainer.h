// Trainer: the online learner thread. It takes applied events from ingest
// through a bounded queue, trains a Learner on them (plus replayed old events
// from the applied log), publishes a scoring snapshot every
// snapshot_interval_ms and checkpoints into the store.
//
// Restart: Start() restores the last checkpoint and catches up by reading
// the applied log from the checkpoint's applied seq + 1, so no event is lost
// or trained twice; events that arrive through Enqueue with a seq already
// trained are skipped, and a gap in seqs is filled from the applied log.
// The store keeps the newest checkpoint and the previous good one
// (checkpoint_name + ".previous"). A checkpoint that cannot be decoded is
// reported (log, checkpoints_unusable) and the previous one is used; if
// that cannot be decoded either, the learner starts fresh from seq 1.
// Model versions continue above every version published before the
// restart.
//
// Thread-safety: Start, Stop and the destructor from one thread; Enqueue from
// one producer thread (ingest); Stats and the observers from any thread.
// The Trainer's own thread owns every model and optimizer.
//
// This header is LibTorch-free.
#ifndef CFREC_LEARNER_TRAINER_H_
#define CFREC_LEARNER_TRAINER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "cfrec/learner/options.h"
#include "cfrec/learner/snapshot.h"
#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"

namespace cfrec::state {
class EventStore;
}

namespace cfrec::learner {

// Counters of the trainer itself (beyond TrainingStats).
struct TrainerCounters {
  uint64_t snapshots_published = 0;
  double last_snapshot_build_ms = 0;  // time to build the latest snapshot
  uint64_t checkpoints_written = 0;
  uint64_t last_checkpoint_seq = 0;  // applied seq the last one holds
  // Checkpoints found undecodable at start (the learner fell back to the
  // previous one, or started fresh).
  uint64_t checkpoints_unusable = 0;
  double last_checkpoint_ms = 0;
  size_t last_checkpoint_bytes = 0;
  uint64_t events_replayed = 0;  // old events revisited from the applied log
  uint64_t events_idle_replayed = 0;  // of those, while no new event waited
  uint64_t events_skipped = 0;        // duplicates (seq already trained)
  // Enqueued after Stop, or queued untrained when Stop came with a store
  // (both re-read from the applied log on restart).
  uint64_t events_dropped = 0;
  uint64_t errors = 0;  // failed training rounds / checkpoints
  // Counterfactual engine (intervention random|learned; 0 for none).
  uint64_t cf_lists = 0;              // simulated lists
  uint64_t cf_samples_generated = 0;  // (u, i, j) samples generated
  uint64_t cf_samples_trained = 0;    // of those, trained by the ranker
  uint64_t cf_policy_updates = 0;     // REINFORCE steps
  double cf_mix_ratio = 0;            // achieved: trained cf / observed samples
  uint64_t cf_steps = 0;              // ranker steps on counterfactual samples
  uint64_t observed_steps = 0;  // ranker steps on observed samples (cf runs)
  double cf_seconds = 0;        // time spent generating (and pretraining)
  uint64_t cf_refreshes = 0;    // learner copies handed to the generator
};

class Trainer {
 public:
  // `store` may be null (no checkpoints, catch-up or replay: for tests and
  // tools); `snapshots` must not be null. Neither is owned; both must
  // outlive the Trainer.
  Trainer(const TrainerOptions& options, state::EventStore* store,
          SnapshotHolder* snapshots);
  ~Trainer();  // Stops if running.
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Validates the options, restores the last checkpoint (if any), publishes
  // a first snapshot before returning, and starts the thread, which first
  // catches up from the applied log.
  Status Start();
  // Queues applied events (seq order). Blocks while the queue is full.
  // After Stop the events are dropped: the applied log holds them, and the
  // next Start catches up.
  void Enqueue(std::vector<state::AppliedEvent> events);
  // Ends the trainer's thread after its current round, then publishes a
  // last snapshot and writes a final checkpoint on the calling thread (at
  // its priority, not the trainer's). Without a store it first trains
  // what is queued; with one, the queued events are left to the next
  // Start, which reads them from the applied log (counted in
  // events_dropped). Returns the first error seen.
  Status Stop();

  TrainingStats Stats() const;
  TrainerCounters Counters() const;
  // Blocks until every event with seq <= `seq` has been trained on, the
  // trainer stopped, or `timeout` passed; returns whether it was trained.
  bool WaitForSeq(uint64_t seq, std::chrono::milliseconds timeout) const;
  // Blocks until the queue is drained and the idle replay budget is spent
  // (TrainerOptions::idle_replay_passes), the trainer stopped, or `timeout`
  // passed; returns whether it is quiet. With a store that keeps receiving
  // events it may never be.
  bool WaitUntilQuiet(std::chrono::milliseconds timeout) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_TRAINER_H_
