// IdDictionary: external string id <-> dense index, append-only.
//
// Thread-safety: one writer (the apply thread) and any number of readers.
// The writer stages new ids during a batch (Stage) without taking the lock and
// publishes them after the batch is durable (Publish); readers only ever see
// published ids, i.e. ids whose assignment is on disk.
//
// Lookups go through a flat open-addressing table of (hash tag, index) pairs
// whose keys are the names themselves, so a lookup costs one probe into the
// table and one string compare, with no node per id (an unordered_map's
// nodes made interning about a fifth of ingest's CPU).
#ifndef CFREC_STATE_SRC_ID_DICTIONARY_H_
#define CFREC_STATE_SRC_ID_DICTIONARY_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cfrec::state {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return std::hash<std::string_view>{}(s);
  }
};

// Index from string to uint32 over names stored elsewhere (`names[i]` is the
// key of index i - `base`). A slot holds a 32-bit hash tag in its high half
// and index + 1 in its low half (0 = empty); the tag also picks the slot, so
// growing needs no rehash of the names. Linear probing, load <= 1/2.
class FlatIdIndex {
 public:
  static uint32_t Tag(std::string_view id) {
    const uint64_t h = std::hash<std::string_view>{}(id);
    return static_cast<uint32_t>(h ^ (h >> 32));
  }

  std::optional<uint32_t> Find(std::string_view id, uint32_t tag,
                               const std::vector<std::string>& names,
                               uint32_t base) const {
    if (slots_.empty()) return std::nullopt;
    const size_t mask = slots_.size() - 1;
    for (size_t pos = tag & mask;; pos = (pos + 1) & mask) {
      const uint64_t slot = slots_[pos];
      if (slot == 0) return std::nullopt;
      if (static_cast<uint32_t>(slot >> 32) == tag) {
        const auto index = static_cast<uint32_t>(slot) - 1;
        if (names[index - base] == id) return index;
      }
    }
  }

  // Requests the cache line of `tag`'s first slot.
  void Prefetch(uint32_t tag) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[tag & (slots_.size() - 1)]);
  }

  // The index in the first slot of `tag`'s probe run whose tag is `tag`,
  // or nullopt when the run ends first: a candidate that Find would compare
  // first with the name.
  std::optional<uint32_t> FirstCandidate(uint32_t tag) const {
    if (slots_.empty()) return std::nullopt;
    const size_t mask = slots_.size() - 1;
    for (size_t pos = tag & mask;; pos = (pos + 1) & mask) {
      const uint64_t slot = slots_[pos];
      if (slot == 0) return std::nullopt;
      if (static_cast<uint32_t>(slot >> 32) == tag) {
        return static_cast<uint32_t>(slot) - 1;
      }
    }
  }

  // `index` must not be present yet.
  void Insert(uint32_t tag, uint32_t index) {
    if ((size_ + 1) * 2 > slots_.size()) Grow(std::max<size_t>(64, size_ * 4));
    Place(tag, index);
    ++size_;
  }

  // Makes room for `n` entries without growing.
  void Reserve(size_t n) {
    if (n * 2 > slots_.size()) Grow(n * 2);
  }

  // Empties the index, keeping its capacity.
  void Clear() {
    if (size_ == 0) return;
    std::fill(slots_.begin(), slots_.end(), 0);
    size_ = 0;
  }

  size_t size() const { return size_; }

 private:
  void Place(uint32_t tag, uint32_t index) {
    const size_t mask = slots_.size() - 1;
    size_t pos = tag & mask;
    while (slots_[pos] != 0) pos = (pos + 1) & mask;
    slots_[pos] = (uint64_t{tag} << 32) | (uint64_t{index} + 1);
  }
  void Grow(size_t min_slots) {
    size_t n = 64;
    while (n < min_slots) n *= 2;
    std::vector<uint64_t> old(n, 0);
    old.swap(slots_);
    for (uint64_t slot : old) {
      if (slot != 0) {
        Place(static_cast<uint32_t>(slot >> 32),
              static_cast<uint32_t>(slot) - 1);
      }
    }
  }

  std::vector<uint64_t> slots_;
  size_t size_ = 0;
};

class IdDictionary {
 public:
  // Readers (any thread).
  std::optional<uint32_t> Find(std::string_view id) const {
    const uint32_t tag = FlatIdIndex::Tag(id);
    std::shared_lock lock(mu_);
    return index_.Find(id, tag, names_, 0);
  }
  std::string Name(uint32_t index) const {
    std::shared_lock lock(mu_);
    return index < names_.size() ? names_[index] : std::string();
  }
  size_t size() const {
    std::shared_lock lock(mu_);
    return names_.size();
  }

  // Writer only. Returns the index of `id`, assigning the next one (staged)
  // when it is new; `*is_new` tells which.
  uint32_t Stage(std::string_view id, bool* is_new) {
    // The writer is the only thread that mutates names_/index_, so it may
    // read them without the lock.
    const uint32_t tag = FlatIdIndex::Tag(id);
    if (auto found = index_.Find(id, tag, names_, 0)) {
      *is_new = false;
      return *found;
    }
    const auto base = static_cast<uint32_t>(names_.size());
    if (auto found = staged_index_.Find(id, tag, staged_, base)) {
      *is_new = false;
      return *found;
    }
    const auto index = static_cast<uint32_t>(names_.size() + staged_.size());
    staged_.emplace_back(id);
    staged_tags_.push_back(tag);
    staged_index_.Insert(tag, index);
    *is_new = true;
    return index;
  }
  // Writer only: Stage on each of `ids` in order, the indexes into `out`
  // (`out.size() == ids.size()`). The published ids of the list are looked
  // up in three passes (hash and prefetch every slot; read the slots and
  // prefetch every candidate name; compare), so that the cache misses of a
  // list overlap instead of following one another; any other id takes
  // Stage's path, in list order.
  void StageAll(std::span<const std::string_view> ids, std::span<uint32_t> out,
                bool* any_new) {
    constexpr uint32_t kNone = UINT32_MAX;
    tags_.resize(ids.size());
    for (size_t k = 0; k < ids.size(); ++k) {
      tags_[k] = FlatIdIndex::Tag(ids[k]);
      index_.Prefetch(tags_[k]);
    }
    for (size_t k = 0; k < ids.size(); ++k) {
      const auto candidate = index_.FirstCandidate(tags_[k]);
      out[k] = candidate.value_or(kNone);
      if (candidate.has_value()) __builtin_prefetch(&names_[*candidate]);
    }
    for (size_t k = 0; k < ids.size(); ++k) {
      if (out[k] != kNone && names_[out[k]] == ids[k]) continue;
      bool is_new = false;
      out[k] = Stage(ids[k], &is_new);
      *any_new = *any_new || is_new;
    }
  }
  // Writer only: the index of a published or staged id, without staging.
  std::optional<uint32_t> WriterFind(std::string_view id) const {
    const uint32_t tag = FlatIdIndex::Tag(id);
    if (auto found = index_.Find(id, tag, names_, 0)) return found;
    return staged_index_.Find(id, tag, staged_,
                              static_cast<uint32_t>(names_.size()));
  }
  // Writer only: the ids staged since the last Publish/Discard, in order;
  // staged()[k] has index staged_base() + k.
  const std::vector<std::string>& staged() const { return staged_; }
  uint32_t staged_base() const { return static_cast<uint32_t>(names_.size()); }
  // One past the last index assigned (published or staged).
  uint32_t staged_end() const {
    return static_cast<uint32_t>(names_.size() + staged_.size());
  }
  void Publish() { PublishThrough(staged_end()); }
  // Publishes the staged ids with indexes below `end` (those of a batch
  // that is durable); the later ones stay staged (a batch still being
  // written or built).
  void PublishThrough(uint32_t end) {
    if (end <= staged_base()) return;
    const size_t n = std::min<size_t>(end - staged_base(), staged_.size());
    if (n == 0) return;
    std::unique_lock lock(mu_);
    names_.reserve(names_.size() + n);
    index_.Reserve(names_.size() + n);
    for (size_t k = 0; k < n; ++k) {
      index_.Insert(staged_tags_[k], static_cast<uint32_t>(names_.size()));
      names_.push_back(std::move(staged_[k]));
    }
    lock.unlock();
    staged_.erase(staged_.begin(), staged_.begin() + n);
    staged_tags_.erase(staged_tags_.begin(), staged_tags_.begin() + n);
    RebuildStagedIndex();
  }
  void Discard() { DiscardFrom(staged_base()); }
  // Forgets the staged ids with indexes from `end` on (a batch that failed).
  void DiscardFrom(uint32_t end) {
    const size_t keep = end > staged_base() ? end - staged_base() : 0;
    if (keep >= staged_.size()) return;
    staged_.resize(keep);
    staged_tags_.resize(keep);
    RebuildStagedIndex();
  }
  // Loading at open, before any reader exists.
  void LoadAppend(std::string name) {
    index_.Insert(FlatIdIndex::Tag(name), static_cast<uint32_t>(names_.size()));
    names_.push_back(std::move(name));
  }

 private:
  void RebuildStagedIndex() {
    staged_index_.Clear();
    const auto base = staged_base();
    for (size_t k = 0; k < staged_.size(); ++k) {
      staged_index_.Insert(staged_tags_[k], base + static_cast<uint32_t>(k));
    }
  }

  mutable std::shared_mutex mu_;
  std::vector<std::string> names_;
  FlatIdIndex index_;  // over names_
  std::vector<std::string> staged_;
  std::vector<uint32_t> staged_tags_;
  FlatIdIndex staged_index_;    // over staged_, indexes from names_.size()
  std::vector<uint32_t> tags_;  // StageAll's scratch
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_ID_DICTIONARY_H_
