// Where the consumer resumes, and whose log that is: the offsets family
// (topic, kSep, partition (BE32) -> next offset (BE64)) with its in-memory
// mirror, and the identity of each topic's log (meta key "log_id", kSep,
// topic). docs/STATE.md explains both.
//
// Thread-safety: NextOffsets and LogId from any thread; the rest from the
// apply thread.
#ifndef CFREC_STATE_SRC_OFFSETS_H_
#define CFREC_STATE_SRC_OFFSETS_H_

#include <rocksdb/write_batch.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "cfrec/schemas/status.h"
#include "cfrec/state/store_types.h"
#include "layout.h"

namespace cfrec::state {

class OffsetTable {
 public:
  // (topic, partition) -> next offset to consume.
  using NextOffsetMap = std::map<std::pair<std::string, int32_t>, int64_t>;

  // `sync_writes`: StoreOptions::sync_writes, for SetLogId and
  // DiscardOffsets.
  OffsetTable(DbRef db, bool sync_writes)
      : db_(db), sync_writes_(sync_writes) {}

  Status Load();

  // Whether `msg` is new, i.e. not below the next offset of its partition:
  // the one in `batch_next` (the batch so far), else the one in `earlier`
  // (a batch before it that is still being written; may be null), else the
  // stored one. A new message's partition moves on to the offset after it
  // in `batch_next`.
  bool Admit(const ConsumedMessage& msg, NextOffsetMap* batch_next,
             const NextOffsetMap* earlier) const;
  // Adds a batch's next offsets to its WriteBatch.
  void Stage(const NextOffsetMap& batch_next, rocksdb::WriteBatch* wb) const;
  // After that batch's write.
  void Publish(const NextOffsetMap& batch_next);

  // EventStore's methods of the same names.
  Status SetLogId(std::string_view topic, std::string_view log_id,
                  bool discard_offsets);
  Status DiscardOffsets(std::string_view topic,
                        std::span<const int32_t> partitions);
  std::map<int32_t, int64_t> NextOffsets(std::string_view topic) const;
  Result<std::string> LogId(std::string_view topic) const;

 private:
  // Deletes the offsets of `partitions` of `topic` (and, when `log_id` is
  // set, records it) in one write.
  Status WriteOffsetReset(std::string_view topic,
                          std::span<const int32_t> partitions,
                          const std::string* log_id);

  DbRef db_;
  bool sync_writes_;
  mutable std::mutex mu_;
  NextOffsetMap offsets_;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_OFFSETS_H_
