// The applied log (family applied_log) in segments: one row holds up to
// kSegmentEvents consecutive events, keyed by the sequence number of its
// first (SeqKey), so that a batch of 2,000 messages adds a few dozen keys to
// the memtables instead of one per event. A click does not copy its
// impression's list: it names the impression by sequence number and the
// clicked position, and reading resolves it.
//
// Segment value: varint count, then per event (seq = first + i):
//   impression: 0, user, ts, n, items..., n, clicked..., n, history...
//   click:      1, seq - impression seq, position, ts
//
// Thread-safety: AppliedLogWriter belongs to the apply thread; ReadAppliedLog
// may be called from any thread.
#ifndef CFREC_STATE_SRC_APPLIED_LOG_H_
#define CFREC_STATE_SRC_APPLIED_LOG_H_

#include <rocksdb/write_batch.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"
#include "layout.h"

namespace cfrec::state {

inline constexpr size_t kSegmentEvents = 64;

// Encodes the events of one batch into segments of its WriteBatch. Events
// must be added in sequence order without gaps.
class AppliedLogWriter {
 public:
  // Starts a batch: segments go to `wb` (not owned; must outlive the batch).
  void Start(DbRef db, rocksdb::WriteBatch* wb);
  void AddImpression(const AppliedEvent& event);
  // A click joined to the impression numbered `impression_seq`.
  void AddClick(uint64_t seq, uint64_t impression_seq, uint16_t position,
                int64_t ts_ms);
  // Writes the last, partly filled segment.
  void Finish();

 private:
  void Next(uint64_t seq);

  DbRef db_;
  rocksdb::WriteBatch* wb_ = nullptr;
  uint64_t first_seq_ = 0;
  size_t count_ = 0;
  std::string body_;  // the segment: its count, then its events
};

// The events with seq in [from_seq, from_seq + max) that exist, in full
// form (clicks with their impression's list).
Result<std::vector<AppliedEvent>> ReadAppliedLog(DbRef db, uint64_t from_seq,
                                                 size_t max);

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_APPLIED_LOG_H_
