// IdDictionary: external string id <-> dense index, append-only.
//
// Thread-safety: one writer (the apply thread) and any number of readers.
// The writer stages new ids during a batch (Stage) without taking the lock and
// publishes them after the batch is durable (Publish); readers only ever see
// published ids, i.e. ids whose assignment is on disk.
#ifndef CFREC_STATE_SRC_ID_DICTIONARY_H_
#define CFREC_STATE_SRC_ID_DICTIONARY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cfrec::state {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return std::hash<std::string_view>{}(s);
  }
};

class IdDictionary {
 public:
  // Readers (any thread).
  std::optional<uint32_t> Find(std::string_view id) const {
    std::shared_lock lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return std::nullopt;
    return it->second;
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
    if (auto it = index_.find(id); it != index_.end()) {
      *is_new = false;
      return it->second;
    }
    if (auto it = staged_index_.find(id); it != staged_index_.end()) {
      *is_new = false;
      return it->second;
    }
    const auto index = static_cast<uint32_t>(names_.size() + staged_.size());
    staged_.emplace_back(id);
    staged_index_.emplace(staged_.back(), index);
    *is_new = true;
    return index;
  }
  // Writer only: the index of a published or staged id, without staging.
  std::optional<uint32_t> WriterFind(std::string_view id) const {
    if (auto it = index_.find(id); it != index_.end()) return it->second;
    if (auto it = staged_index_.find(id); it != staged_index_.end()) {
      return it->second;
    }
    return std::nullopt;
  }
  // Writer only: the ids staged since the last Publish/Discard, in order.
  const std::vector<std::string>& staged() const { return staged_; }
  uint32_t staged_base() const { return static_cast<uint32_t>(names_.size()); }
  void Publish() {
    std::unique_lock lock(mu_);
    for (auto& name : staged_) {
      index_.emplace(name, static_cast<uint32_t>(names_.size()));
      names_.push_back(std::move(name));
    }
    staged_.clear();
    staged_index_.clear();
  }
  void Discard() {
    staged_.clear();
    staged_index_.clear();
  }
  // Loading at open, before any reader exists.
  void LoadAppend(std::string name) {
    index_.emplace(name, static_cast<uint32_t>(names_.size()));
    names_.push_back(std::move(name));
  }

 private:
  mutable std::shared_mutex mu_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> index_;
  std::vector<std::string> staged_;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>
      staged_index_;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_ID_DICTIONARY_H_
