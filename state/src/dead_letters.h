// The dead_letters family: messages that were not applied, each with its
// reason and origin, numbered 1, 2, ... in the order they were recorded.
// Key: SeqKey(seq); value: reason, topic, partition, offset, raw bytes.
//
// Thread-safety: Read from any thread; the rest from the apply thread.
#ifndef CFREC_STATE_SRC_DEAD_LETTERS_H_
#define CFREC_STATE_SRC_DEAD_LETTERS_H_

#include <rocksdb/write_batch.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/state/store_types.h"
#include "layout.h"

namespace cfrec::state {

class DeadLetterLog {
 public:
  explicit DeadLetterLog(DbRef db) : db_(db) {}

  // At open: the counters tell how many dead letters are stored.
  void Load(const StoreCounters& counters) {
    next_seq_ = counters.dead_letters + 1;
  }
  // The seq of the next batch's first dead letter.
  uint64_t next_seq() const { return next_seq_; }
  // After a batch's write: `next_seq` follows its last dead letter.
  void Publish(uint64_t next_seq) { next_seq_ = next_seq; }

  // Adds `d` (numbered by the caller) to a batch's WriteBatch.
  void Stage(const DeadLetter& d, rocksdb::WriteBatch* wb) const;

  Result<std::vector<DeadLetter>> Read(uint64_t from_seq, size_t max) const;

 private:
  DbRef db_;
  uint64_t next_seq_ = 1;  // apply thread only
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_DEAD_LETTERS_H_
