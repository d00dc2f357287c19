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
// nodes made interning about a fifth of ingest's CPU); a short name is kept in
// its slot, so its lookup reads nothing else.
#ifndef CFREC_STATE_SRC_ID_DICTIONARY_H_
#define CFREC_STATE_SRC_ID_DICTIONARY_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
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
// key of index i - `base`). A slot holds a 32-bit hash tag, index + 1 (0 =
// empty) and, for a name of up to kInlineName bytes, the name itself, so that
// a lookup of a short id (MIND's "N12345" and "U12345") touches one slot and
// not the name's string as well: staging a list's ids was a fifth of the
// apply thread, mostly waiting for those two cache misses. Longer names are
// compared with `names`. The tag also picks the slot, so growing needs no
// rehash of the names. Linear probing, load <= 1/2.
class FlatIdIndex {
 public:
  static constexpr size_t kInlineName = 15;

  static uint32_t Tag(std::string_view id) {
    const uint64_t h = std::hash<std::string_view>{}(id);
    return static_cast<uint32_t>(h ^ (h >> 32));
  }

  std::optional<uint32_t> Find(std::string_view id, uint32_t tag,
                               const std::vector<std::string>& names,
                               uint32_t base) const {
    if (slots_.empty()) return std::nullopt;
    // A short id as its slot would hold it, compared as two words.
    const Short wanted = ToShort(id);
    const size_t mask = slots_.size() - 1;
    for (size_t pos = tag & mask;; pos = (pos + 1) & mask) {
      const Slot& slot = slots_[pos];
      if (slot.index_plus_1 == 0) return std::nullopt;
      if (slot.tag != tag) continue;
      const uint32_t index = slot.index_plus_1 - 1;
      if (slot.name.words[0] != kLongName) {
        if (slot.name.words[0] == wanted.words[0] &&
            slot.name.words[1] == wanted.words[1]) {
          return index;
        }
      } else if (names[index - base] == id) {
        return index;
      }
    }
  }

  // `index` (whose name is `name`) must not be present yet.
  void Insert(uint32_t tag, uint32_t index, std::string_view name) {
    if ((size_ + 1) * 2 > slots_.size()) Grow(slots_.size() * 2);
    Place(MakeSlot(tag, index, name));
    ++size_;
  }

  // Makes room for `n` entries without growing.
  void Reserve(size_t n) {
    if (n * 2 > slots_.size()) Grow(n * 2);
  }

  // Empties the index, keeping its capacity.
  void Clear() {
    if (size_ == 0) return;
    std::fill(slots_.begin(), slots_.end(), Slot{});
    size_ = 0;
  }

  size_t size() const { return size_; }

 private:
  // A name of up to kInlineName bytes: its length, then its bytes, then
  // zeros; a longer one is kLongName in the first word.
  struct Short {
    uint64_t words[2] = {0, 0};
  };
  static constexpr uint64_t kLongName = ~uint64_t{0};
  struct Slot {
    uint32_t tag = 0;
    uint32_t index_plus_1 = 0;  // 0: empty
    Short name;
  };
  static_assert(sizeof(Slot) == 24);

  static Short ToShort(std::string_view name) {
    Short s;
    if (name.size() > kInlineName) {
      s.words[0] = kLongName;
      return s;
    }
    char bytes[sizeof(s.words)] = {};
    bytes[0] = static_cast<char>(name.size());
    if (!name.empty()) std::memcpy(bytes + 1, name.data(), name.size());
    std::memcpy(s.words, bytes, sizeof(bytes));
    return s;
  }
  static Slot MakeSlot(uint32_t tag, uint32_t index, std::string_view name) {
    Slot slot;
    slot.tag = tag;
    slot.index_plus_1 = index + 1;
    slot.name = ToShort(name);
    return slot;
  }
  void Place(const Slot& slot) {
    const size_t mask = slots_.size() - 1;
    size_t pos = slot.tag & mask;
    while (slots_[pos].index_plus_1 != 0) pos = (pos + 1) & mask;
    slots_[pos] = slot;
  }
  void Grow(size_t min_slots) {
    size_t n = 64;
    while (n < min_slots) n *= 2;
    std::vector<Slot> old(n);
    old.swap(slots_);
    for (const Slot& slot : old) {
      if (slot.index_plus_1 != 0) Place(slot);
    }
  }

  std::vector<Slot> slots_;
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
    staged_index_.Insert(tag, index, id);
    *is_new = true;
    return index;
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
      index_.Insert(staged_tags_[k], static_cast<uint32_t>(names_.size()),
                    staged_[k]);
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
    index_.Insert(FlatIdIndex::Tag(name), static_cast<uint32_t>(names_.size()),
                  name);
    names_.push_back(std::move(name));
  }

 private:
  void RebuildStagedIndex() {
    staged_index_.Clear();
    const auto base = staged_base();
    for (size_t k = 0; k < staged_.size(); ++k) {
      staged_index_.Insert(staged_tags_[k], base + static_cast<uint32_t>(k),
                           staged_[k]);
    }
  }

  mutable std::shared_mutex mu_;
  std::vector<std::string> names_;
  FlatIdIndex index_;  // over names_
  std::vector<std::string> staged_;
  std::vector<uint32_t> staged_tags_;
  FlatIdIndex staged_index_;  // over staged_, indexes from names_.size()
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_ID_DICTIONARY_H_
