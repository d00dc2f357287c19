// EventStore: cfrec's durable state in RocksDB.
//
// Column families (one per access pattern; see docs/STATE.md):
//   impressions     impression_id            -> user, ts, seq, items,
//                                               history, clicked positions
//   clicks          (unused since format 2)
//   pending_clicks  impression_id|item_id    -> user_id, ts   (before impr.)
//   user_log        user|window              -> the user's (ts, impression
//                                               id) of the window (format
//                                               3; impression_index.h)
//   time_index      ts|impression_id         -> user          (time windows;
//                                               written per window)
//   item_stats      item                     -> impressions, clicks, last ts
//   dictionary      u/i + external id <-> dense index
//   offsets         topic|partition          -> next offset to consume
//   applied_log     first seq                -> up to 64 AppliedEvents
//                                               (learner feed)
//   checkpoints     name|chunk               -> blob          (learner)
//   dead_letters    seq                      -> reason, origin, raw bytes
//   meta            key                      -> value
//                   (incl. log_id|topic      -> identity of the log the
//                    topic's offsets belong to)
//
// Exactly-once application: ApplyBatch writes the events of a consumed batch
// and the next offset of every partition it touched in ONE WriteBatch, and
// skips any message whose offset is below the stored next offset. A consumer
// that seeks to NextOffsets() after a crash therefore re-reads at most what
// was not applied, and applies nothing twice.
//
// Offsets only mean something in the log they were read from. The store
// keeps, per topic, the identity of that log (SetLogId). When the broker
// serves another log (the embedded broker starts empty at every start; a
// topic was recreated), the ingest side discards the topic's offsets and
// reads the new log from its start: events already stored are recognised by
// their impression id (clicks by impression and item) and not applied again.
//
// Thread-safety: ApplyBatch and the other writers must be called from one
// thread at a time (the ingest thread); every const method may be called
// concurrently with them from any thread. SetLogId and DiscardOffsets
// refuse to run while a submitted batch is in flight (CompleteBatch first).
#ifndef CFREC_STATE_EVENT_STORE_H_
#define CFREC_STATE_EVENT_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/schemas/event.h"
#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"
#include "cfrec/state/storage_faults.h"
#include "cfrec/state/store_types.h"

namespace cfrec::state {

struct StoreOptions {
  // fsync the WAL on every batch. Default false: a process crash loses
  // nothing (the WAL is in the OS page cache); an OS crash may lose the last
  // batches, but their offsets go with them, so they are consumed again.
  bool sync_writes = false;
  // Create the database when the directory has none. Default true.
  bool create_if_missing = true;
  // Block cache size in MiB. Default 128.
  size_t block_cache_mb = 128;
  // Limits applied when parsing consumed messages.
  EventLimits limits;
  // Fault switch for tests and drills: while it holds a fault, the store's
  // file writes fail with it (see storage_faults.h). Default null: none.
  std::shared_ptr<StorageFaults> faults;
  // Impressions per window of the indexes by user and by time: they are kept
  // in memory (and in one row per batch) until the window closes, then
  // written as one user_log row per user of the window and their time_index
  // rows. Larger windows write fewer rows and keep more in
  // memory (about 50 bytes per impression). Default 65,536.
  size_t user_log_window = 65536;
};

class EventStore {
 public:
  // Opens (or creates) the store in `dir`.
  static Result<std::unique_ptr<EventStore>> Open(const std::string& dir,
                                                  const StoreOptions& options);
  virtual ~EventStore() = default;

  // --- Writers (one thread at a time) ---------------------------------

  // Parses, validates and applies a consumed batch atomically with the
  // partitions' next offsets. Invalid messages become dead letters; they
  // never fail the batch. Fails only when storage fails, in which case
  // nothing of the batch is applied.
  virtual Result<ApplyOutcome> ApplyBatch(
      std::span<const ConsumedMessage> batch) = 0;

  // The pipelined apply: the same, with the write of one batch overlapping
  // the building of the next (and whatever the caller does in between, such
  // as polling). SubmitBatch parses `batch` and builds its WriteBatch on the
  // calling thread -- seeing every batch submitted before it as applied --
  // and hands it to a writer thread. At most one batch is being written: a
  // batch submitted while another is waits, once built, for that one's
  // write, and returns its outcome. CompleteBatch waits for the batch being
  // written and returns its outcome (nullopt when there is none). An
  // outcome is returned once its batch is durable and visible to readers,
  // exactly as ApplyBatch's; NextOffsets() only covers such batches.
  //
  // Each WriteBatch still carries its events and its offsets, and batches
  // are written in order, so after a crash the store holds a prefix of the
  // submitted batches with their offsets. The messages of a submitted batch
  // must stay valid until its outcome has been returned.
  //
  // Errors: when a write fails, neither that batch nor the one built on it
  // is applied (both are forgotten; re-read from NextOffsets()). When
  // building fails, that batch is not applied; the one being written, if
  // any, stays in flight for CompleteBatch.
  //
  // Default (stores that apply synchronously): SubmitBatch is ApplyBatch
  // and CompleteBatch has nothing to return. ApplyBatch must not be called
  // while a submitted batch is in flight.
  virtual Result<std::optional<ApplyOutcome>> SubmitBatch(
      std::span<const ConsumedMessage> batch);
  virtual Result<std::optional<ApplyOutcome>> CompleteBatch();

  // Stores a named blob (a model checkpoint), replacing the previous one
  // atomically.
  virtual Status PutCheckpoint(std::string_view name,
                               std::string_view blob) = 0;

  // Records `log_id` as the identity of the log that `topic`'s offsets
  // belong to. With `discard_offsets`, the stored next offsets of every
  // partition of `topic` are deleted in the same atomic write, so that the
  // log is consumed from its start. Stores that keep no log identities
  // (test doubles) return Unsupported.
  virtual Status SetLogId(std::string_view topic, std::string_view log_id,
                          bool discard_offsets);
  // Deletes the stored next offsets of `partitions` of `topic` in one atomic
  // write (their log restarted: they are consumed from its start again).
  virtual Status DiscardOffsets(std::string_view topic,
                                std::span<const int32_t> partitions);

  // --- Readers (thread-safe) ------------------------------------------

  // Next offset to consume for each partition of `topic` that was applied.
  virtual std::map<int32_t, int64_t> NextOffsets(
      std::string_view topic) const = 0;
  // The identity recorded by SetLogId for `topic`; empty when none was.
  virtual Result<std::string> LogId(std::string_view topic) const;

  virtual std::optional<UserIndex> FindUser(std::string_view id) const = 0;
  virtual std::optional<ItemIndex> FindItem(std::string_view id) const = 0;
  // External id of a dense index; empty when out of range.
  virtual std::string UserId(UserIndex user) const = 0;
  virtual std::string ItemId(ItemIndex item) const = 0;
  virtual size_t NumUsers() const = 0;
  virtual size_t NumItems() const = 0;

  virtual Result<StoredImpression> GetImpression(
      std::string_view impression_id) const = 0;
  // A user's impressions with from_ms <= ts < to_ms in time order, with
  // their clicks; at most `limit`.
  virtual Result<std::vector<StoredImpression>> UserImpressions(
      UserIndex user, int64_t from_ms, int64_t to_ms, size_t limit) const = 0;
  // A user's `limit` most recently applied impressions in time order, with
  // their clicks. The store reads only as far back as it needs to (by window
  // of its user log, so "recent" is at that granularity: see
  // state/src/impression_index.h). The default reads all of the user's
  // impressions and keeps the newest by time (for test doubles).
  virtual Result<std::vector<StoredImpression>> RecentUserImpressions(
      UserIndex user, size_t limit) const;
  // Impressions of all users with from_ms <= ts < to_ms in time order.
  virtual Result<std::vector<StoredImpression>> ImpressionsInWindow(
      int64_t from_ms, int64_t to_ms, size_t limit) const = 0;
  virtual Result<ItemStats> GetItemStats(ItemIndex item) const = 0;
  // Stats of every item, indexed by ItemIndex (size NumItems()).
  virtual Result<std::vector<ItemStats>> AllItemStats() const = 0;

  // Applied log: events with seq in [from_seq, from_seq + max) that exist.
  virtual Result<std::vector<AppliedEvent>> ReadApplied(uint64_t from_seq,
                                                        size_t max) const = 0;

  virtual Result<std::vector<DeadLetter>> ReadDeadLetters(uint64_t from_seq,
                                                          size_t max) const = 0;

  // NotFound when no checkpoint of that name was stored.
  virtual Result<std::string> GetCheckpoint(std::string_view name) const = 0;

  virtual StoreCounters Counters() const = 0;

  // OK while the store can write. After a failed write (disk full,
  // read-only file system, I/O error): Unavailable with the cause, until a
  // later write succeeds (the store resumes writing by itself once the
  // cause is gone; see write_health.h). Stores that cannot fail (test
  // doubles) return OK.
  virtual Status StorageHealth() const;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_EVENT_STORE_H_
