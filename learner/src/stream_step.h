// StreamStep: the trainer's stream-aware part. It feeds the applied events
// to a stream::StreamModel before the learner trains on them, with the
// ranker's f(u, i) of that moment as the user term, and owns the stream's
// checkpoint and snapshot parts.
#ifndef CFREC_LEARNER_SRC_STREAM_STEP_H_
#define CFREC_LEARNER_SRC_STREAM_STEP_H_

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cfrec/learner/learner.h"
#include "cfrec/state/applied_event.h"
#include "cfrec/stream/stream_model.h"

namespace cfrec::learner {

class StreamStep {
 public:
  explicit StreamStep(const stream::StreamOptions& options) : model_(options) {}

  // Step: call before learner.Train(events). `served` is the stream scorer
  // of the snapshot being served (null: none yet); lists train on its rows.
  void Observe(std::span<const state::AppliedEvent> events, Learner& learner,
               const stream::StreamScorer* served);
  // Snapshot part.
  std::shared_ptr<const stream::StreamScorer> MakeScorer() const {
    return model_.MakeScorer();
  }
  // Checkpoint part.
  std::string Serialize() const { return model_.Serialize(); }
  Status Deserialize(std::string_view blob) { return model_.Deserialize(blob); }
  stream::StreamStats Stats() const { return model_.Stats(); }

 private:
  stream::StreamModel model_;
  std::vector<float> ranker_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_STREAM_STEP_H_
