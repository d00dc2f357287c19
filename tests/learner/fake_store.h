// An in-memory EventStore with just what the trainer uses: the applied log
// and checkpoints. Thread-safe like the real one (readers may run
// concurrently with writers).
#ifndef CFREC_TESTS_LEARNER_FAKE_STORE_H_
#define CFREC_TESTS_LEARNER_FAKE_STORE_H_

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cfrec/state/event_store.h"

namespace cfrec::learner::testing {

class FakeStore : public state::EventStore {
 public:
  // Appends events to the applied log (their seqs must continue it).
  void Append(const std::vector<state::AppliedEvent>& events) {
    std::lock_guard<std::mutex> lock(mu_);
    log_.insert(log_.end(), events.begin(), events.end());
  }
  size_t checkpoint_puts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return puts_;
  }

  Result<state::ApplyOutcome> ApplyBatch(
      std::span<const state::ConsumedMessage>) override {
    return Status::Unsupported("fake");
  }
  Status PutCheckpoint(std::string_view name, std::string_view blob) override {
    std::lock_guard<std::mutex> lock(mu_);
    checkpoints_[std::string(name)] = std::string(blob);
    ++puts_;
    return Status::Ok();
  }
  // Test helper: removes a checkpoint, as if it had never been written.
  void EraseCheckpoint(std::string_view name) {
    std::lock_guard<std::mutex> lock(mu_);
    checkpoints_.erase(std::string(name));
  }
  std::map<int32_t, int64_t> NextOffsets(std::string_view) const override {
    return {};
  }
  std::optional<state::UserIndex> FindUser(std::string_view) const override {
    return std::nullopt;
  }
  std::optional<state::ItemIndex> FindItem(std::string_view) const override {
    return std::nullopt;
  }
  std::string UserId(state::UserIndex u) const override {
    return "u" + std::to_string(u);
  }
  std::string ItemId(state::ItemIndex i) const override {
    return "i" + std::to_string(i);
  }
  size_t NumUsers() const override { return 0; }
  size_t NumItems() const override { return 0; }
  Result<state::StoredImpression> GetImpression(
      std::string_view) const override {
    return Status::Unsupported("fake");
  }
  Result<std::vector<state::StoredImpression>> UserImpressions(
      state::UserIndex, int64_t, int64_t, size_t) const override {
    return Status::Unsupported("fake");
  }
  Result<std::vector<state::StoredImpression>> ImpressionsInWindow(
      int64_t, int64_t, size_t) const override {
    return Status::Unsupported("fake");
  }
  Result<state::ItemStats> GetItemStats(state::ItemIndex) const override {
    return Status::Unsupported("fake");
  }
  Result<std::vector<state::ItemStats>> AllItemStats() const override {
    return Status::Unsupported("fake");
  }
  Result<std::vector<state::AppliedEvent>> ReadApplied(
      uint64_t from_seq, size_t max) const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<state::AppliedEvent> out;
    for (const auto& e : log_) {
      if (e.seq >= from_seq && e.seq < from_seq + max) out.push_back(e);
    }
    return out;
  }
  Result<std::vector<state::DeadLetter>> ReadDeadLetters(
      uint64_t, size_t) const override {
    return std::vector<state::DeadLetter>{};
  }
  Result<std::string> GetCheckpoint(std::string_view name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = checkpoints_.find(std::string(name));
    if (it == checkpoints_.end()) return Status::NotFound("no checkpoint");
    return it->second;
  }
  state::StoreCounters Counters() const override { return {}; }

 private:
  mutable std::mutex mu_;
  std::vector<state::AppliedEvent> log_;
  std::map<std::string, std::string> checkpoints_;
  size_t puts_ = 0;
};

}  // namespace cfrec::learner::testing

#endif  // CFREC_TESTS_LEARNER_FAKE_STORE_H_
