#include "triple_sampler.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>

namespace cfrec::learner {
namespace {

using state::AppliedEvent;

// The shuffle's stream; lanes use streams 0, 1, 2, ...
constexpr uint64_t kShuffleStream = std::numeric_limits<uint64_t>::max();

// Click lists are read at random users: hint the cache a few events ahead
// (the entry first, then the items it points to).
inline void PrefetchClicks(const ClickLists& clicks,
                           std::span<const AppliedEvent> events,
                           std::span<const uint32_t> lane, size_t k) {
  constexpr size_t kEntryAhead = 16, kItemsAhead = 8;
  if (k + kEntryAhead < lane.size()) {
    clicks.PrefetchEntry(events[lane[k + kEntryAhead]].user);
  }
  if (k + kItemsAhead < lane.size()) {
    clicks.PrefetchItems(events[lane[k + kItemsAhead]].user);
  }
}

// The lane of a user: a multiplicative hash, so that lanes get users
// evenly whatever the ids' pattern.
inline size_t LaneOf(uint32_t user, size_t lanes) {
  const uint32_t h = user * 2654435761u;
  return static_cast<size_t>((uint64_t{h} * lanes) >> 32);
}

template <typename T>
void CopyRange(const std::vector<T>& from, size_t begin, size_t end,
               std::vector<T>& to, size_t at) {
  if (end > begin) {
    std::memcpy(to.data() + at, from.data() + begin, (end - begin) * sizeof(T));
  }
}

}  // namespace

TripleSampler::TripleSampler(const LearnerOptions& o)
    : negatives_(o.negatives == "impression" ? Negatives::kImpression
                 : o.negatives == "catalog"  ? Negatives::kCatalog
                                             : Negatives::kMix),
      num_negatives_(o.num_negatives),
      train_on_history_(o.train_on_history) {}

void TripleSampler::RecordLane(std::span<const AppliedEvent> events,
                               ClickLists& clicks, Lane& lane) const {
  // Groups of events: first the lines that their clicks' searches read,
  // all at once (ClickLists::Touch), then the inserts, which find them in
  // the cache.
  constexpr size_t kGroup = 8;
  uint32_t users[kGroup], items[kGroup], at[kGroup];
  int8_t slot[kGroup];  // event begin + k -> its search in the group, or -1
  uint32_t seen = 0;
  const std::span<const uint32_t> order(lane.events);
  for (size_t begin = 0; begin < order.size(); begin += kGroup) {
    const size_t end = std::min(order.size(), begin + kGroup);
    size_t group = 0;
    for (size_t k = begin; k < end; ++k) {
      const AppliedEvent& e = events[order[k]];
      slot[k - begin] = -1;
      if (e.clicked.empty() || e.clicked[0] >= e.items.size()) continue;
      slot[k - begin] = static_cast<int8_t>(group);
      users[group] = e.user;
      items[group] = e.items[e.clicked[0]];
      ++group;
    }
    seen ^= clicks.Touch(std::span<const uint32_t>(users, group),
                         std::span<const uint32_t>(items, group),
                         std::span<uint32_t>(at, group));
    // The inserts reuse the searches' places (Observe checks them: an
    // earlier insert of the group into the same list moves them).
    for (size_t k = begin; k < end; ++k) {
      const AppliedEvent& e = events[order[k]];
      if (e.user >= clicks.num_users()) continue;
      const int s = slot[k - begin];
      if (s >= 0 ? clicks.Observe(e, at[s]) : clicks.Observe(e)) {
        lane.added = true;
      }
    }
  }
  lane.touched = seen;
}

void TripleSampler::BuildLane(std::span<const AppliedEvent> events,
                              const ClickLists& clicks, int64_t num_users,
                              int64_t num_items, FastRng& rng,
                              Lane& lane) const {
  Triples& t = lane.triples;
  t.clear();
  std::vector<uint32_t>& unclicked = lane.unclicked;
  const uint64_t items = static_cast<uint64_t>(num_items);
  // A catalog negative: an item the user never clicked (a few tries).
  auto catalog_negative = [&](uint32_t user, uint32_t positive) {
    auto j = static_cast<uint32_t>(rng.Below(items));
    for (int tries = 0; tries < 8; ++tries) {
      if (j != positive && !clicks.Contains(user, j)) break;
      j = static_cast<uint32_t>(rng.Below(items));
    }
    return j;
  };
  auto add = [&](uint32_t user, uint32_t positive) {
    for (int k = 0; k < num_negatives_; ++k) {
      const bool from_list = negatives_ == Negatives::kImpression ||
                             (negatives_ == Negatives::kMix && k % 2 == 0);
      uint32_t j;
      if (from_list && !unclicked.empty()) {
        j = unclicked[rng.Below(unclicked.size())];
      } else {
        j = catalog_negative(user, positive);
      }
      t.u.push_back(user);
      t.pos.push_back(positive);
      t.neg.push_back(j);
    }
  };
  const std::span<const uint32_t> order(lane.events);
  for (size_t k = 0; k < order.size(); ++k) {
    PrefetchClicks(clicks, events, order, k);
    const AppliedEvent& e = events[order[k]];
    if (e.user >= num_users) continue;
    if (!e.clicked.empty()) {
      unclicked.clear();
      for (size_t q = 0; q < e.items.size(); ++q) {
        // The event's own clicks are clicked: no need to search the list.
        if (std::find(e.clicked.begin(), e.clicked.end(), q) !=
            e.clicked.end()) {
          continue;
        }
        if (!clicks.Contains(e.user, e.items[q]))
          unclicked.push_back(e.items[q]);
      }
      for (uint16_t p : e.clicked) {
        if (p < e.items.size()) add(e.user, e.items[p]);
      }
    }
    if (train_on_history_ && !e.history.empty() && clicks.BroughtHistory(e)) {
      unclicked.clear();  // history has no list: catalog negatives
      for (uint32_t i : e.history) add(e.user, i);
    }
  }
}

void TripleSampler::Shuffle(size_t n, uint64_t seed) {
  // Fisher-Yates on the order, so a mini-batch mixes users and events.
  order_.resize(n);
  for (size_t k = 0; k < n; ++k) order_[k] = static_cast<uint32_t>(k);
  FastRng shuffle(seed, kShuffleStream);
  for (size_t k = n; k > 1; --k) {
    std::swap(order_[k - 1], order_[shuffle.Below(k)]);
  }
}

bool TripleSampler::Build(std::span<const AppliedEvent> events, bool record,
                          ClickLists* clicks, int64_t num_users,
                          int64_t num_items, uint64_t seed, WorkPool* pool,
                          Triples* out) {
  if (events.size() > std::numeric_limits<uint32_t>::max()) {
    throw std::length_error("too many events in one round");
  }
  const size_t num_lanes = std::clamp<size_t>(
      (events.size() + kLaneEvents - 1) / kLaneEvents, 1, kMaxLanes);
  if (lanes_.size() < num_lanes) lanes_.resize(num_lanes);
  for (size_t l = 0; l < num_lanes; ++l) {
    lanes_[l].events.clear();
    lanes_[l].added = false;
  }
  // The number of triples, foreseen from the events' sizes (a click whose
  // entry lies outside its list yields none, and whether an event brought
  // its history depends on the click lists: both make the guess wrong or
  // unknown). The shuffle depends on that number and the seed only: with a
  // guess it is drawn by one more task beside the lanes, and drawn again
  // after them if the guess was wrong. On one thread it is drawn after the
  // lanes, as nothing could run beside it.
  size_t expected = 0;
  bool known = pool != nullptr && pool->threads() > 1;
  for (size_t k = 0; k < events.size(); ++k) {
    const AppliedEvent& e = events[k];
    lanes_[LaneOf(e.user, num_lanes)].events.push_back(
        static_cast<uint32_t>(k));
    if (!known || e.user >= num_users) continue;
    // Only positions inside the list can make triples: a damaged log's
    // stray positions must not make the guess (and the shuffle's buffer)
    // large.
    size_t clicks = 0;
    for (uint16_t p : e.clicked) clicks += p < e.items.size();
    expected += clicks * static_cast<size_t>(num_negatives_);
    known &= !(train_on_history_ && !e.history.empty());
  }
  known &= expected <= std::numeric_limits<uint32_t>::max();
  auto run = [&](int tasks, const std::function<void(int)>& fn) {
    if (pool != nullptr) {
      pool->Run(tasks, fn);
    } else {
      for (int t = 0; t < tasks; ++t) fn(t);
    }
  };
  const int first_lane = known ? 1 : 0;
  run(static_cast<int>(num_lanes) + first_lane, [&](int task) {
    if (task < first_lane) {
      Shuffle(expected, seed);
      return;
    }
    const int l = task - first_lane;
    Lane& lane = lanes_[l];
    if (record) RecordLane(events, *clicks, lane);
    FastRng rng(seed, static_cast<uint64_t>(l));
    BuildLane(events, *clicks, num_users, num_items, rng, lane);
  });
  bool added = false;
  offsets_.assign(num_lanes + 1, 0);
  for (size_t l = 0; l < num_lanes; ++l) {
    offsets_[l + 1] = offsets_[l] + lanes_[l].triples.size();
    added |= lanes_[l].added;
  }
  const size_t n = offsets_[num_lanes];
  if (n > std::numeric_limits<uint32_t>::max()) {
    throw std::length_error("too many training triples in one round");
  }
  flat_.u.resize(n);
  flat_.pos.resize(n);
  flat_.neg.resize(n);
  run(static_cast<int>(num_lanes), [&](int l) {
    const Triples& t = lanes_[l].triples;
    CopyRange(t.u, 0, t.size(), flat_.u, offsets_[l]);
    CopyRange(t.pos, 0, t.size(), flat_.pos, offsets_[l]);
    CopyRange(t.neg, 0, t.size(), flat_.neg, offsets_[l]);
  });
  if (!known || n != expected) Shuffle(n, seed);
  out->u.resize(n);
  out->pos.resize(n);
  out->neg.resize(n);
  const int parts = pool != nullptr ? pool->threads() : 1;
  run(parts, [&](int p) {
    const size_t begin = n * p / parts, end = n * (p + 1) / parts;
    for (size_t k = begin; k < end; ++k) {
      const uint32_t from = order_[k];
      out->u[k] = flat_.u[from];
      out->pos[k] = flat_.pos[from];
      out->neg[k] = flat_.neg[from];
    }
  });
  return added;
}

}  // namespace cfrec::learner
