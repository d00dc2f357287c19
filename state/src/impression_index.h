// The indexes of the applied impressions: each user's impressions in time
// order (user_log, EventStore::UserImpressions) and all impressions in time
// order (time_index, EventStore::ImpressionsInWindow), both written per
// window.
//
// A window is a run of batches that together applied at least
// StoreOptions::user_log_window impressions. Its impressions are kept in
// memory, and each batch writes its own in one row of the meta family
// ("user_log_tail" · the batch's applied seq, BE64) so that Load finds them
// again after a restart. The batch that closes the window writes, in its own
// WriteBatch, one user_log row per user of the window and one time_index row
// per impression, each family in key order, and deletes the window's tail
// rows. So per impression the write is a share of one appended tail row, of
// one user_log row per user and window, and a time_index row inserted next to
// its neighbours, instead of two rows at scattered positions of the
// memtables (the user_log row alone was about 40% of the write in format 2).
//
// user_log rows, format 3: key user (BE32) · window (BE64, the applied seq of
// the batch that closed it), 12 bytes; value: varint count, then per
// impression of that user in the window varint ts and the length-prefixed
// impression id, ordered by ts, then id. Format 2 rows (key user · ts (BE64)
// · impression id, empty value) are read as they are. time_index rows: key
// ts (BE64) · impression id, value user (BE32), as in format 2.
//
// A reader takes the open window's matches (under a lock), then the rows,
// and sorts them; a window that closes in between is seen twice and counted
// once (by id), never missed. Under the lock a reader of one user visits only
// that user's impressions of the open window, through an index by user that
// readers extend under the lock as they need it (the apply thread does not
// pay for it), not the whole window.
//
// Thread-safety: Find, FindNewest and FindInTime from any thread; Load,
// Stage, Publish and Discard from the apply thread.
#ifndef CFREC_STATE_SRC_IMPRESSION_INDEX_H_
#define CFREC_STATE_SRC_IMPRESSION_INDEX_H_

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"
#include "layout.h"

namespace cfrec::state {

// One applied impression, as the indexes keep it.
struct IndexedImpression {
  UserIndex user = 0;
  int64_t ts_ms = 0;
  std::string impression_id;
};

class ImpressionIndex {
 public:
  // `window_impressions`: the impressions after which a window is closed
  // (at least 1).
  ImpressionIndex(DbRef db, size_t window_impressions)
      : db_(db), window_impressions_(std::max<size_t>(window_impressions, 1)) {}

  // At open: the open window's impressions, from its tail rows.
  Status Load();

  // Adds a batch's new impressions to its WriteBatch: as a tail row, or,
  // when they close the window, as the window's rows of both families. At most
  // two batches are staged and not yet published (one being written, one being
  // built); the second sees the first as applied.
  void Stage(std::vector<IndexedImpression> entries, uint64_t applied_seq,
             rocksdb::WriteBatch* wb);
  // After the write of the oldest staged batch: readers see its impressions.
  void Publish();
  // Forgets every staged batch (their writes failed).
  void Discard() { staged_count_ = 0; }

  // Ids of `user`'s impressions with from_ms <= ts < to_ms, ordered by ts,
  // then id; at most `limit`.
  Result<std::vector<std::string>> Find(UserIndex user, int64_t from_ms,
                                        int64_t to_ms, size_t limit) const;
  // Ids of `user`'s `limit` most recently applied impressions, ordered by
  // ts, then id. Recency is by window: the open window's impressions are the
  // newest, then each closed window's, newest window first; within a window
  // the later ts. Reads the user's open-window impressions and the user's
  // rows from the newest until `limit` are found, not the whole log (except
  // for an upgraded store's format-2 rows, which are skipped over; they are
  // older than every format-3 row and read only when those are too few).
  Result<std::vector<std::string>> FindNewest(UserIndex user,
                                              size_t limit) const;
  // The same for the impressions of all users.
  Result<std::vector<std::string>> FindInTime(int64_t from_ms, int64_t to_ms,
                                              size_t limit) const;

  size_t window_size() const;  // published impressions of the open window

 private:
  struct Staged {
    std::vector<IndexedImpression> entries;
    std::string tail_key;  // empty: no tail row
    bool closes = false;   // wrote the window's rows
  };
  // Puts the rows of the window made of `parts`.
  // Extends the index by user over all of window_ (under mu_); returns the
  // position of `user`'s newest impression in window_, or kNone.
  uint32_t NewestOf(UserIndex user) const;
  static constexpr uint32_t kNone = UINT32_MAX;
  void WriteWindow(
      const std::vector<const std::vector<IndexedImpression>*>& parts,
      uint64_t applied_seq, rocksdb::WriteBatch* wb);

  DbRef db_;
  const size_t window_impressions_;

  mutable std::mutex mu_;
  // Published impressions of the open window (written by the apply thread
  // under mu_), and the keys of their tail rows (apply thread only).
  std::vector<IndexedImpression> window_;
  // The index by user of window_[0, prev_.size()) (readers, under mu_):
  // each user's newest impression, and per impression the position of the
  // same user's one before it (kNone: none).
  mutable std::unordered_map<UserIndex, uint32_t> newest_;
  mutable std::vector<uint32_t> prev_;
  std::vector<std::string> tail_keys_;

  // Apply thread only: the staged batches, oldest at staged_head_.
  std::array<Staged, 2> staged_;
  size_t staged_head_ = 0;
  size_t staged_count_ = 0;

  // Scratch for the window's rows.
  std::vector<const IndexedImpression*> sorted_;
  std::string key_;
  std::string value_;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_IMPRESSION_INDEX_H_
