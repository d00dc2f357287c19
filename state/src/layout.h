// The store's RocksDB layout as its parts share it: the column families, the
// separator and sequence keys several families use, the format version, and
// the one mapping of a RocksDB status to a Status. docs/STATE.md describes
// every family; the keys and values of each are built by the part that owns
// it.
#ifndef CFREC_STATE_SRC_LAYOUT_H_
#define CFREC_STATE_SRC_LAYOUT_H_

#include <rocksdb/db.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "cfrec/schemas/status.h"

namespace cfrec::state {

// Column family indexes; kCfNames[i] is the name of family i.
enum Cf : size_t {
  kMeta = 0,  // RocksDB's "default" family
  kImpressions,
  kClicks,  // unused since format 2 (clicks live in their impression's row)
  kPendingClicks,
  kUserLog,
  kTimeIndex,
  kItemStats,
  kDictionary,
  kOffsets,
  kAppliedLog,
  kCheckpoints,
  kDeadLetters,
  kNumCfs,
};
constexpr std::array<const char*, kNumCfs> kCfNames = {
    "default",  "impressions", "clicks",      "pending_clicks",
    "user_log", "time_index",  "item_stats",  "dictionary",
    "offsets",  "applied_log", "checkpoints", "dead_letters",
};

constexpr char kSep = '\0';  // ids never contain control characters

// The open database and its column families, as the store's parts use it.
// Not owned: RocksEventStore owns both and outlives every part.
struct DbRef {
  rocksdb::DB* db = nullptr;
  std::span<rocksdb::ColumnFamilyHandle* const> families;  // by Cf

  rocksdb::DB* operator->() const { return db; }
  rocksdb::ColumnFamilyHandle* cf(Cf c) const { return families[c]; }
};

Status FromRocks(const rocksdb::Status& s, std::string_view what);

// Key of the applied log and the dead letters: the sequence number (BE64).
std::string SeqKey(uint64_t seq);

// Writes the format version into a new store; fails on a store of another
// format. A format-2 store is upgraded in place (format 3 reads its user_log
// rows as they are); `*note` then says so, and is empty otherwise.
Status CheckFormat(DbRef db, std::string* note);

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_LAYOUT_H_
