// The user log: each user's impressions in time order
// (EventStore::UserImpressions).
//
// Format 3 writes one user_log row per user and window instead of one per
// impression. A window is a run of batches that together applied at least
// StoreOptions::user_log_window impressions. Its impressions are kept in
// memory, and each batch writes its own in one row of the meta family
// ("user_log_tail" · the batch's applied seq, BE64) so that Load finds them
// again after a restart. The batch that closes the window writes a row per
// user of it, all in key order, and deletes the window's tail rows, in its
// own WriteBatch. So per impression the write is a share of one appended
// tail row and of one row per user and window, instead of a row at a random
// position of the memtable (about 40% of the write in format 2).
//
// user_log rows, format 3: key user (BE32) · window (BE64, the applied seq of
// the batch that closed it), 12 bytes; value: varint count, then per
// impression of that user in the window varint ts and the length-prefixed
// impression id, ordered by ts, then id. Format 2 rows (key user · ts (BE64)
// · impression id, empty value) are read as they are.
//
// Thread-safety: Find from any thread; Load, Stage, Publish and Discard from
// the apply thread.
#ifndef CFREC_STATE_SRC_USER_LOG_H_
#define CFREC_STATE_SRC_USER_LOG_H_

#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"
#include "layout.h"

namespace cfrec::state {

// One applied impression, as the user log keeps it.
struct UserLogEntry {
  UserIndex user = 0;
  int64_t ts_ms = 0;
  std::string impression_id;
};

class UserLogTable {
 public:
  // `window_impressions`: the impressions after which a window is closed
  // (at least 1).
  UserLogTable(DbRef db, size_t window_impressions)
      : db_(db), window_impressions_(std::max<size_t>(window_impressions, 1)) {}

  // At open: the open window's impressions, from its tail rows.
  Status Load();

  // Adds a batch's new impressions to its WriteBatch: as a tail row, or,
  // when they close the window, as the window's rows. At most two batches
  // are staged and not yet published (one being written, one being built);
  // the second sees the first as applied.
  void Stage(std::vector<UserLogEntry> entries, uint64_t applied_seq,
             rocksdb::WriteBatch* wb);
  // After the write of the oldest staged batch: readers see its impressions.
  void Publish();
  // Forgets every staged batch (their writes failed).
  void Discard() { staged_count_ = 0; }

  // Ids of `user`'s impressions with from_ms <= ts < to_ms, ordered by ts,
  // then id; at most `limit`.
  Result<std::vector<std::string>> Find(UserIndex user, int64_t from_ms,
                                        int64_t to_ms, size_t limit) const;

  size_t window_size() const;  // published impressions of the open window

 private:
  struct Staged {
    std::vector<UserLogEntry> entries;
    std::string tail_key;  // empty: no tail row
    bool closes = false;   // wrote the window's rows
  };
  // Puts the rows of the window made of `parts`.
  void WriteWindow(const std::vector<const std::vector<UserLogEntry>*>& parts,
                   uint64_t applied_seq, rocksdb::WriteBatch* wb);

  DbRef db_;
  const size_t window_impressions_;

  mutable std::mutex mu_;
  // Published impressions of the open window (written by the apply thread
  // under mu_), and the keys of their tail rows (apply thread only).
  std::vector<UserLogEntry> window_;
  std::vector<std::string> tail_keys_;

  // Apply thread only: the staged batches, oldest at staged_head_.
  std::array<Staged, 2> staged_;
  size_t staged_head_ = 0;
  size_t staged_count_ = 0;

  // Scratch for the window's rows.
  std::vector<const UserLogEntry*> sorted_;
  std::string key_;
  std::string value_;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_USER_LOG_H_
