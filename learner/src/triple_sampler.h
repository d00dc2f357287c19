// TripleSampler: the ranker's training triples (u, i+, i-) of a round of
// events, shuffled. Every click yields `num_negatives` triples whose
// negatives come from the list's items the user never clicked
// ("impression"), from catalog items the user never clicked ("catalog", a
// few tries), or alternately from both ("mix"); the history items an event
// brought yield triples with catalog negatives (train_on_history). It can
// also record the round's clicks in the click lists first (Learner::Train),
// so that each user's list is read while it is still in the cache.
//
// Parallel and deterministic: users are dealt to lanes by a hash of the
// user id (a number of lanes that depends on the round's size only); a
// lane records its users' clicks in event order, then builds their triples
// in event order, drawing from its own generator stream of the round's
// seed (fast_rng.h). Lanes share no user, so any number of threads can run
// them, and the triples depend only on the events, the click lists and the
// seed; a lane's few hundred lists stay in the cache between recording and
// sampling. The shuffle is one permutation drawn from the seed's own
// stream, applied in parallel; when the number of triples is known from the
// events alone (no history items to train on), the permutation is drawn by
// one more task beside the lanes instead of after them. The caller draws the
// seed from its checkpointed generator, so a restored learner samples as an
// uninterrupted one.
//
// Thread-safety: one caller thread; the pool's threads only read the
// events, record clicks of their lane's users and write their own lane.
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
  // Events per lane (the round's lanes: its events / kLaneEvents, at least
  // 1, at most kMaxLanes).
  static constexpr size_t kLaneEvents = 256;
  static constexpr size_t kMaxLanes = 1024;

  // Reads negatives, num_negatives and train_on_history.
  explicit TripleSampler(const LearnerOptions& options);

  // The triples of `events` (users below num_users; items below num_items)
  // into *out, in shuffled order. With `record`, first records the events'
  // clicks and histories in *clicks (ClickLists::Observe, each user's in
  // event order; `clicks` must cover num_users) and returns whether any
  // (user, item) pair was new; else reads *clicks as it is and returns
  // false. `pool` may be null (the caller's thread does everything, with
  // the same result).
  bool Build(std::span<const state::AppliedEvent> events, bool record,
             ClickLists* clicks, int64_t num_users, int64_t num_items,
             uint64_t seed, WorkPool* pool, Triples* out);

 private:
  struct Lane {
    std::vector<uint32_t> events;  // indices into the round, ascending
    Triples triples;
    std::vector<uint32_t> unclicked;  // scratch
    bool added = false;
    uint32_t touched = 0;  // keeps RecordLane's cache-warming loads
  };
  void RecordLane(std::span<const state::AppliedEvent> events,
                  ClickLists& clicks, Lane& lane) const;
  // order_ := the shuffle of n triples (depends on n and the seed only).
  void Shuffle(size_t n, uint64_t seed);
  void BuildLane(std::span<const state::AppliedEvent> events,
                 const ClickLists& clicks, int64_t num_users, int64_t num_items,
                 FastRng& rng, Lane& lane) const;

  enum class Negatives { kImpression, kCatalog, kMix };
  Negatives negatives_;
  int num_negatives_;
  bool train_on_history_;
  std::vector<Lane> lanes_;
  std::vector<size_t> offsets_;  // lane -> first index in flat_
  Triples flat_;                 // the lanes, concatenated
  std::vector<uint32_t> order_;  // the shuffle: out[k] = flat_[order_[k]]
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_TRIPLE_SAMPLER_H_
