// The values EventStore takes and returns: consumed messages, what applying
// them did, and what the store holds. Plain structs, kept apart from the
// EventStore interface (event_store.h includes them) so that the parts of the
// store's implementation can use them without depending on it.
#ifndef CFREC_STATE_STORE_TYPES_H_
#define CFREC_STATE_STORE_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/state/applied_event.h"

namespace cfrec::state {

// One message as consumed from Kafka (or any ordered, offset-addressed log).
// The views must stay valid for the duration of ApplyBatch.
struct ConsumedMessage {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string_view key;
  std::string_view payload;
};

// Why a message was not applied.
struct DeadLetter {
  uint64_t seq = 0;  // 1, 2, ... in the order they were recorded
  std::string reason;
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::string payload;  // the raw bytes as received
};

// Where the time of applying batches went, in seconds of the apply thread.
// `build` is the rest of the apply: dictionaries, joins, encoding and the
// WriteBatch.
struct ApplyPhases {
  double parse_seconds = 0;   // parsing and validating messages
  double lookup_seconds = 0;  // reads from the store: is it new, joins
  double build_seconds = 0;   // building the WriteBatch
  double write_seconds = 0;   // the RocksDB write (WAL and memtables)
  // Of write_seconds, the time the apply thread waited for it (all of it
  // unless the write overlapped the building of the next batch).
  double write_wait_seconds = 0;

  ApplyPhases& operator+=(const ApplyPhases& o) {
    parse_seconds += o.parse_seconds;
    lookup_seconds += o.lookup_seconds;
    build_seconds += o.build_seconds;
    write_seconds += o.write_seconds;
    write_wait_seconds += o.write_wait_seconds;
    return *this;
  }
};

struct ApplyOutcome {
  size_t messages = 0;               // messages in the batch
  size_t redelivered = 0;            // skipped: offset already applied
  size_t impressions = 0;            // impressions applied
  size_t clicks_joined = 0;          // clicks joined to their impression
  size_t clicks_pending = 0;         // clicks held until their impression
  size_t duplicates = 0;             // repeated impression id / click, ignored
  size_t dead_letters = 0;           // rejected, recorded with their reason
  std::vector<AppliedEvent> events;  // what was applied, in seq order
  ApplyPhases phases;                // stores that time their phases
};

struct ItemStats {
  uint64_t impressions = 0;
  uint64_t clicks = 0;
  int64_t last_impression_ms = 0;  // event time; 0 = never impressed
  friend bool operator==(const ItemStats&, const ItemStats&) = default;
};

// An impression as stored, with its joined clicks.
struct StoredImpression {
  std::string impression_id;
  UserIndex user = 0;
  int64_t ts_ms = 0;
  std::vector<ItemIndex> items;
  std::vector<uint16_t> clicked;  // positions, ascending
  std::vector<ItemIndex> history;
};

struct StoreCounters {
  uint64_t impressions = 0;
  uint64_t clicks_joined = 0;
  uint64_t clicks_pending = 0;  // currently held
  uint64_t duplicates = 0;
  uint64_t dead_letters = 0;
  uint64_t applied_seq = 0;  // last sequence number of the applied log
  uint64_t users = 0;
  uint64_t items = 0;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_STORE_TYPES_H_
