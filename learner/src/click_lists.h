// ClickLists: the items each user clicked (history included), as the
// learner keeps them for negative sampling, LightGCN's graph, serving's
// exclusion and the user term of the stream features. A unit of its own with
// a step (Observe), a checkpoint part (ToCsr / FromCsr) and a snapshot part
// (AppendCsr).
//
// Thread-safety: none; the Learner's owner thread.
#ifndef CFREC_LEARNER_SRC_CLICK_LISTS_H_
#define CFREC_LEARNER_SRC_CLICK_LISTS_H_

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "cfrec/state/applied_event.h"

namespace cfrec::learner {

class ClickLists {
 public:
  // Users 0 .. users-1 have a (possibly empty) list.
  void Grow(size_t users);
  size_t num_users() const { return clicked_.size(); }

  // Records the event's clicks and, the first time the user's history comes
  // with an event, that history (remembering which event brought it).
  // Returns whether any (user, item) pair was new.
  bool Observe(const state::AppliedEvent& e);
  // The same, with `first_at` the place of the event's first click in the
  // user's list as Touch found it (checked before use: a wrong or stale
  // place costs a search, not a wrong list).
  bool Observe(const state::AppliedEvent& e, uint32_t first_at);

  bool Contains(uint32_t user, uint32_t item) const;
  // Cache hints for a loop over events: PrefetchEntry(u) a few events
  // ahead, then PrefetchItems(u) a few events later (it reads the entry).
  void PrefetchEntry(uint32_t user) const {
    if (user < clicked_.size()) __builtin_prefetch(&clicked_[user]);
  }
  void PrefetchItems(uint32_t user) const {
    if (user >= clicked_.size() || clicked_[user].empty()) return;
    // A binary search reads lines all over the list: hint up to 1 KiB.
    const auto& c = clicked_[user];
    const size_t n = std::min<size_t>(c.size(), 256);
    for (size_t k = 0; k < n; k += 16) __builtin_prefetch(c.data() + k);
  }
  // Reads, for every k, the cache lines that a search for items[k] in the
  // list of users[k] reads, the searches in lockstep so that their cache
  // misses overlap (a binary search's loads depend on each other, so one
  // search at a time waits for each miss in turn). Returns a value of the
  // loads, for the caller to keep. users.size() == items.size() <= 16.
  // With `at` (as long as users), stores each search's place: the first
  // entry >= items[k] (for Observe's first_at).
  uint32_t Touch(std::span<const uint32_t> users,
                 std::span<const uint32_t> items,
                 std::span<uint32_t> at = {}) const;
  // Ascending; empty for an unknown user.
  std::span<const uint32_t> Items(uint32_t user) const;
  // Whether `e` is the event that brought its user's history (so the
  // history is trained once, with that event).
  bool BroughtHistory(const state::AppliedEvent& e) const;
  const std::vector<std::vector<uint32_t>>& lists() const { return clicked_; }

  // Checkpoint part: the lists as CSR (offsets, items) and the seq of the
  // event that brought each user's history.
  void ToCsr(std::vector<int64_t>* offsets, std::vector<int64_t>* items,
             std::vector<int64_t>* history_owners) const;
  // Replaces the lists with `users` users read from ToCsr's output (entries
  // past `users` are ignored, missing ones are empty).
  void FromCsr(size_t users, std::span<const int64_t> offsets,
               std::span<const int64_t> items,
               std::span<const int64_t> history_owners);
  // Snapshot part: appends the lists as CSR (offsets start with 0).
  void AppendCsr(std::vector<uint64_t>* offsets,
                 std::vector<uint32_t>* items) const;

 private:
  bool Add(uint32_t user, uint32_t item);
  bool AddAt(uint32_t user, uint32_t item, size_t at);
  bool ObserveImpl(const state::AppliedEvent& e, const uint32_t* first_at);

  std::vector<std::vector<uint32_t>> clicked_;  // per user, ascending
  std::vector<uint64_t> history_owner_;         // seq that brought the history
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_CLICK_LISTS_H_
