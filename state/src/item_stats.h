// Item stats: impressions, clicks and last impression time per item.
//
// item_stats values: the three as little-endian u64; key: item (BE32). Item
// stats are a pure function of the applied log: they are kept in memory,
// written for the items touched since the last flush every
// kStatsFlushBatches batches (with the applied seq they cover, in that
// batch's WriteBatch), and brought up to date at open by folding in the
// applied log after that seq. Per-batch read-modify-write or merge operands
// for every shown item cost more than the rest of ingest together.
//
// Thread-safety: Get and All from any thread; Load, Stage and Publish from
// the apply thread.
#ifndef CFREC_STATE_SRC_ITEM_STATS_H_
#define CFREC_STATE_SRC_ITEM_STATS_H_

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"
#include "cfrec/state/store_types.h"
#include "event_reader.h"
#include "layout.h"

namespace cfrec::state {

// Item stat deltas, dense by item, with the list of items touched: a hash
// map of deltas cost as much as the rest of the bookkeeping per batch.
// Reused across batches (Clear keeps the capacity).
class StatsDelta {
 public:
  ItemStats& At(ItemIndex item) {
    if (item >= by_item_.size()) {
      by_item_.resize(std::max<size_t>(item + 1, by_item_.size() * 2));
      seen_.resize(by_item_.size(), 0);
    }
    if (!seen_[item]) {
      seen_[item] = 1;
      touched_.push_back(item);
    }
    return by_item_[item];
  }
  // The delta of `item`; zero when untouched.
  ItemStats Get(ItemIndex item) const {
    return item < by_item_.size() ? by_item_[item] : ItemStats{};
  }
  const std::vector<ItemIndex>& touched() const { return touched_; }
  // Calls `fn(item, delta)` for each touched item, in the order touched,
  // and clears the deltas as it goes (one pass instead of two).
  template <typename Fn>
  void Drain(Fn&& fn) {
    for (ItemIndex item : touched_) {
      fn(item, by_item_[item]);
      by_item_[item] = ItemStats{};
      seen_[item] = 0;
    }
    touched_.clear();
  }
  void Clear() {
    Drain([](ItemIndex, const ItemStats&) {});
  }

 private:
  std::vector<ItemStats> by_item_;
  std::vector<uint8_t> seen_;
  std::vector<ItemIndex> touched_;
};

class ItemStatsTable {
 public:
  explicit ItemStatsTable(DbRef db) : db_(db) {}

  // At open: the last flush, then the events of `reader`'s applied log after
  // it, up to `applied_seq`.
  Status Load(const EventReader& reader, uint64_t applied_seq);

  // Folds a batch's `events` into deltas of its own and, when a flush is
  // due, adds the stats of every item touched since the last one and
  // `applied_seq` to the batch's WriteBatch. At most two batches are staged
  // and not yet published (one being written, one being built); a flush
  // counts the earlier one's deltas in.
  void Stage(std::span<const AppliedEvent> events, uint64_t applied_seq,
             rocksdb::WriteBatch* wb);
  // After the write of the oldest staged batch: readers see its deltas.
  void Publish();
  // Forgets every staged batch (their writes failed).
  void Discard() { staged_ = 0; }

  ItemStats Get(ItemIndex item) const;
  // Stats of items 0 .. n-1.
  std::vector<ItemStats> All(size_t n) const;

 private:
  void ApplyStatsLocked(const StatsDelta& d);
  void AddStatsLocked(ItemIndex item, const ItemStats& d);
  void MarkDirty(const StatsDelta& d);
  void MarkDirty(ItemIndex item);
  void ClearDirty();

  DbRef db_;
  mutable std::mutex stats_mu_;
  // By ItemIndex; may be longer than the published dictionary.
  std::vector<ItemStats> item_stats_;
  std::vector<ItemIndex> stats_dirty_;     // touched since last flush
  std::vector<uint8_t> stats_dirty_flag_;  // by ItemIndex
  int batches_since_stats_flush_ = 0;      // apply thread only
  // Apply thread only: the deltas of the staged batches, oldest at head_,
  // and whether each flushes.
  std::array<StatsDelta, 2> deltas_;
  std::array<bool, 2> flush_ = {false, false};
  size_t head_ = 0;
  size_t staged_ = 0;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_ITEM_STATS_H_
