#include "triple_sampler.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>

namespace cfrec::learner {
namespace {

using state::AppliedEvent;

// The shuffle's stream; chunks use streams 0, 1, 2, ...
constexpr uint64_t kShuffleStream = std::numeric_limits<uint64_t>::max();

// Click lists are read at random users: hint the cache a few events ahead
// (the entry first, then the items it points to).
inline void PrefetchClicks(const ClickLists& clicks,
                           std::span<const AppliedEvent> events, size_t k) {
  constexpr size_t kEntryAhead = 16, kItemsAhead = 8;
  if (k + kEntryAhead < events.size()) {
    clicks.PrefetchEntry(events[k + kEntryAhead].user);
  }
  if (k + kItemsAhead < events.size()) {
    clicks.PrefetchItems(events[k + kItemsAhead].user);
  }
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

void TripleSampler::BuildChunk(std::span<const AppliedEvent> events,
                               const ClickLists& clicks, int64_t num_users,
                               int64_t num_items, FastRng& rng,
                               Chunk& chunk) const {
  Triples& t = chunk.triples;
  t.clear();
  std::vector<uint32_t>& unclicked = chunk.unclicked;
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
  for (size_t k = 0; k < events.size(); ++k) {
    PrefetchClicks(clicks, events, k);
    const AppliedEvent& e = events[k];
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

void TripleSampler::Build(std::span<const AppliedEvent> events,
                          const ClickLists& clicks, int64_t num_users,
                          int64_t num_items, uint64_t seed, WorkPool* pool,
                          Triples* out) {
  const size_t num_chunks = (events.size() + kChunkEvents - 1) / kChunkEvents;
  if (chunks_.size() < num_chunks) chunks_.resize(num_chunks);
  auto run = [&](int tasks, const std::function<void(int)>& fn) {
    if (pool != nullptr) {
      pool->Run(tasks, fn);
    } else {
      for (int t = 0; t < tasks; ++t) fn(t);
    }
  };
  run(static_cast<int>(num_chunks), [&](int c) {
    const size_t begin = static_cast<size_t>(c) * kChunkEvents;
    const size_t end = std::min(events.size(), begin + kChunkEvents);
    FastRng rng(seed, static_cast<uint64_t>(c));
    BuildChunk(events.subspan(begin, end - begin), clicks, num_users, num_items,
               rng, chunks_[c]);
  });
  offsets_.assign(num_chunks + 1, 0);
  for (size_t c = 0; c < num_chunks; ++c) {
    offsets_[c + 1] = offsets_[c] + chunks_[c].triples.size();
  }
  const size_t n = offsets_[num_chunks];
  if (n > std::numeric_limits<uint32_t>::max()) {
    throw std::length_error("too many training triples in one round");
  }
  flat_.u.resize(n);
  flat_.pos.resize(n);
  flat_.neg.resize(n);
  run(static_cast<int>(num_chunks), [&](int c) {
    const Triples& t = chunks_[c].triples;
    CopyRange(t.u, 0, t.size(), flat_.u, offsets_[c]);
    CopyRange(t.pos, 0, t.size(), flat_.pos, offsets_[c]);
    CopyRange(t.neg, 0, t.size(), flat_.neg, offsets_[c]);
  });
  // Fisher-Yates on the order, so a mini-batch mixes users and events.
  order_.resize(n);
  for (size_t k = 0; k < n; ++k) order_[k] = static_cast<uint32_t>(k);
  FastRng shuffle(seed, kShuffleStream);
  for (size_t k = n; k > 1; --k) {
    std::swap(order_[k - 1], order_[shuffle.Below(k)]);
  }
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
}

}  // namespace cfrec::learner
