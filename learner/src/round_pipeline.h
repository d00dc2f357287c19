// RoundPipeline: one background thread that runs one job at a time, so the
// Learner can train a round's batches there while its own thread prepares
// the next round (LearnerOptions::train_pipeline). Submit waits for the
// job before it and starts its own whatever the one before did; what a job
// threw is handed back once, by the next Submit or by Wait, whichever comes
// first. The jobs run in submission order, one after the other.
//
// The thread runs under the scheduling of the thread that submits (policy
// and nice value, read at the first Submit), as the WorkPool's workers do:
// its work is the trainer's.
//
// Thread-safety: Submit and Wait are called by one thread (the Learner's).
#ifndef CFREC_LEARNER_SRC_ROUND_PIPELINE_H_
#define CFREC_LEARNER_SRC_ROUND_PIPELINE_H_

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "cfrec/schemas/thread_sched.h"

namespace cfrec::learner {

class RoundPipeline {
 public:
  RoundPipeline();
  // Waits for the running job (its error is dropped), then stops.
  ~RoundPipeline();
  RoundPipeline(const RoundPipeline&) = delete;
  RoundPipeline& operator=(const RoundPipeline&) = delete;

  // Waits for the job before, starts `job` on the thread and returns what
  // the job before threw (null: nothing, or already handed back by Wait).
  [[nodiscard]] std::exception_ptr Submit(std::function<void()> job);
  // Waits until no job is running; rethrows what the last job threw, if
  // Submit has not handed it back yet.
  void Wait();

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;  // the next job to start; empty: none
  bool running_ = false;       // a job has been taken and not finished
  bool stop_ = false;
  std::exception_ptr error_;  // what the last job threw
  ThreadSched sched_;         // the submitter's, adopted by the thread
  bool sched_read_ = false;   // the submitter's thread only
  std::thread thread_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_ROUND_PIPELINE_H_
