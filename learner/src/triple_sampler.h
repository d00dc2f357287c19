// TripleSampler: the ranker's training triples (u, i+, i-) of a round of
// events, shuffled. Every click yields `num_negatives` triples whose
// negatives come from the list's items the user never clicked
// ("impression"), from catalog items the user never clicked ("catalog", a
// few tries), or alternately from both ("mix"); the history items an event
// brought yield triples with catalog negatives (train_on_history).
//
// Parallel and deterministic: the events are cut into chunks of
// kChunkEvents, each drawing from its own generator stream of the round's
// seed (fast_rng.h), so chunks can be built by any number of threads and
// the triples depend only on the events, the click lists and the seed; the
// shuffle is one permutation drawn from the seed's own stream, applied in
// parallel. The caller draws the seed from its checkpointed generator, so
// a restored learner samples as an uninterrupted one.
//
// Thread-safety: one caller thread; the pool's threads only read the
// events and click lists and write their own chunk.
#ifndef CFREC_LEARNER_SRC_TRIPLE_SAMPLER_H_
#define CFREC_LEARNER_SRC_TRIPLE_SAMPLER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "cfrec/learner/options.h"
#include "cfrec/state/applied_event.h"
#include "click_lists.h"
#include "fast_rng.h"
#include "work_pool.h"

namespace cfrec::learner {

// Ranker training triples (u, i+, i-); the pointwise loss reads them as one
// positive and one negative pair.
struct Triples {
  std::vector<int64_t> u, pos, neg;
  size_t size() const { return u.size(); }
  void clear() {
    u.clear();
    pos.clear();
    neg.clear();
  }
};

class TripleSampler {
 public:
  static constexpr size_t kChunkEvents = 512;

  // Reads negatives, num_negatives and train_on_history.
  explicit TripleSampler(const LearnerOptions& options);

  // The triples of `events` (users below num_users; items below num_items)
  // into *out, in shuffled order. `pool` may be null (the caller's thread
  // does everything, with the same result).
  void Build(std::span<const state::AppliedEvent> events,
             const ClickLists& clicks, int64_t num_users, int64_t num_items,
             uint64_t seed, WorkPool* pool, Triples* out);

 private:
  struct Chunk {
    Triples triples;
    std::vector<uint32_t> unclicked;  // scratch
  };
  void BuildChunk(std::span<const state::AppliedEvent> events,
                  const ClickLists& clicks, int64_t num_users,
                  int64_t num_items, FastRng& rng, Chunk& chunk) const;

  enum class Negatives { kImpression, kCatalog, kMix };
  Negatives negatives_;
  int num_negatives_;
  bool train_on_history_;
  std::vector<Chunk> chunks_;
  std::vector<size_t> offsets_;  // chunk -> first index in flat_
  Triples flat_;                 // the chunks, concatenated
  std::vector<uint32_t> order_;  // the shuffle: out[k] = flat_[order_[k]]
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_TRIPLE_SAMPLER_H_
