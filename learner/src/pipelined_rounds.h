// PipelinedRounds: the Learner's side of LearnerOptions::train_pipeline.
// A round's triples are sampled on the Learner's thread into one of two
// buffers and its batches handed to a RoundPipeline thread, while the next
// round is sampled into the other buffer.
//
// Failures: a round that fails on the pipeline's thread is reported once,
// as a Status, by the next Submit (which still starts its own round) or,
// when Settle was called first, kept until the next Submit or Forget. So a
// failed round never takes the round after it along.
//
// Thread-safety: one caller thread (the Learner's).
#ifndef CFREC_LEARNER_SRC_PIPELINED_ROUNDS_H_
#define CFREC_LEARNER_SRC_PIPELINED_ROUNDS_H_

#include <functional>

#include "cfrec/schemas/status.h"
#include "round_pipeline.h"
#include "triple_sampler.h"

namespace cfrec::learner {

class PipelinedRounds {
 public:
  // The buffer for the next round's triples: not the one in training.
  // Each call switches buffers.
  Triples& NextBuffer();

  // Waits for the round in training, starts `train` (the batches of the
  // round in the buffer NextBuffer() gave last) and returns the failure of
  // an earlier round not reported yet (the first one; OK: none).
  Status Submit(std::function<void()> train);

  // Waits until the round in training is done; its failure is kept for the
  // next Submit.
  void Settle();

  // Forgets a kept failure (a restored checkpoint replaced what it left).
  void Forget() { failed_ = Status::Ok(); }

 private:
  void Keep(std::exception_ptr error);

  Triples buffers_[2];
  int next_ = 0;
  Status failed_;  // the first failed round not reported yet
  // Last: destroyed first, so its thread stops before the buffers go.
  RoundPipeline pipeline_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_PIPELINED_ROUNDS_H_
