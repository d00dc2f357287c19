// Applying a consumed batch: each new message is parsed and becomes rows in
// the batch's one WriteBatch. Impressions are de-duplicated by id, clicks by
// impression and position; a click joins its impression or is held until it
// arrives, and held clicks join the impression when it does; new ids are
// staged in the dictionaries; every applied event is numbered and written to
// the applied log (in segments, see applied_log.h); what cannot be applied
// becomes a dead letter. An impression's row carries its joined clicks and
// is written once per batch, after the batch's clicks joined it. Nothing is
// visible before RocksEventStore has written the batch and published it.
//
// Thread-safety: the apply thread only.
#ifndef CFREC_STATE_SRC_BATCH_APPLIER_H_
#define CFREC_STATE_SRC_BATCH_APPLIER_H_

#include <rocksdb/write_batch.h>

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "applied_log.h"
#include "cfrec/schemas/event.h"
#include "cfrec/schemas/status.h"
#include "cfrec/state/store_types.h"
#include "dead_letters.h"
#include "dictionaries.h"
#include "id_dictionary.h"
#include "impression_index.h"
#include "layout.h"
#include "offsets.h"
#include "records.h"

namespace cfrec::state {

// The state of one ApplyBatch call.
struct BatchState {
  rocksdb::WriteBatch wb;
  ApplyOutcome outcome;
  StoreCounters counters;  // copy, committed on success
  uint64_t next_dead_letter_seq = 0;
  OffsetTable::NextOffsetMap next_offsets;
  // Impressions applied in this batch or read from the store by it; a
  // dirty one (new, or a click joined it) is written when the batch ends.
  // The keys view the batch's parsed messages, which outlive the BatchState.
  struct Overlay {
    // One applied in this batch keeps its list and history in its event
    // (`event`, in outcome.events) instead of a copy here.
    ImpressionRecord record;
    bool dirty = false;
    bool fresh = false;  // applied in this batch: needs its index rows
    const AppliedEvent* event = nullptr;

    const std::vector<ItemIndex>& items() const {
      return event != nullptr ? event->items : record.items;
    }
    const std::vector<ItemIndex>& history() const {
      return event != nullptr ? event->history : record.history;
    }
    // The record with its own list and history (what a later batch's
    // overlay starts from).
    ImpressionRecord Materialized() const;
  };
  std::unordered_map<std::string_view, Overlay> impressions;
  // Clicks held in this batch, by impression id.
  std::unordered_map<std::string, std::vector<PendingClick>, StringHash,
                     std::equal_to<>>
      pending;
  std::unordered_set<std::string> new_pending_impressions;
  std::unordered_set<std::string> resolved_pending_impressions;
  AppliedLogWriter log;
  // The impressions applied in this batch, for the indexes by user and by
  // time (impression_index.h).
  std::vector<IndexedImpression> new_impressions;
};

class BatchApplier {
 public:
  // `dictionaries`, `offsets` and `dead_letters` are not owned and must
  // outlive the applier.
  BatchApplier(DbRef db, Dictionaries& dictionaries, const OffsetTable& offsets,
               const DeadLetterLog& dead_letters, const EventLimits& limits)
      : db_(db),
        users_(dictionaries.users()),
        items_(dictionaries.items()),
        offsets_(offsets),
        dead_letters_(dead_letters),
        limits_(limits) {}

  // At open: which impressions have held clicks.
  Status Load();

  // Adds the messages of `batch` that are new to `b` (whose counters and
  // next dead-letter seq the caller has set). `earlier` is the batch before
  // it when that one is still being written (null otherwise): `b` sees its
  // impressions, held clicks and offsets as if they were stored, and its
  // messages must stay valid until `b` is published. Fails only when
  // storage fails.
  Status Apply(std::span<const ConsumedMessage> batch, BatchState& b,
               const BatchState* earlier);
  // After `b`'s write (batches in the order they were applied).
  void Publish(const BatchState& b);

 private:
  Status ApplyImpression(BatchState& b, const EventView& e);
  Status ApplyClick(BatchState& b, const EventView& e,
                    const ConsumedMessage& msg);
  // The impression applied earlier (in this batch, the earlier one being
  // written, or before), or nullptr. One found outside the batch joins its
  // overlay.
  Result<BatchState::Overlay*> LookupImpression(BatchState& b,
                                                std::string_view impression_id);
  // Writes the rows of the impressions the batch changed, and the index
  // rows of those it applied, each family in key order.
  void Finish(BatchState& b);
  void AddDeadLetter(BatchState& b, std::string reason,
                     const ConsumedMessage& msg);

  DbRef db_;
  IdDictionary& users_;
  IdDictionary& items_;
  const OffsetTable& offsets_;
  const DeadLetterLog& dead_letters_;
  EventLimits limits_;

  // Impression ids with held clicks. Lets an arriving impression skip the
  // pending-clicks scan in the common case.
  std::unordered_set<std::string, StringHash, std::equal_to<>>
      pending_impressions_;

  // Scratch for keys and values on their way into the WriteBatch (which
  // copies them).
  std::string key_;
  std::string value_;
  // The impressions Finish writes, sorted by each family's key in turn.
  std::vector<const std::pair<const std::string_view, BatchState::Overlay>*>
      rows_;

  // The batch before the one being applied while it is written, or null.
  const BatchState* earlier_ = nullptr;

  // The parsed messages of the last two batches (the one being applied and
  // the one being written, whose overlay keys view them), used in turn;
  // kept across batches so that their vectors keep their capacity.
  std::array<std::vector<EventView>, 2> views_;
  size_t views_turn_ = 0;
  // The batch being applied: its messages that are new (not redelivered),
  // and how parsing each went.
  std::vector<const ConsumedMessage*> admitted_;
  std::vector<Status> parsed_;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_BATCH_APPLIER_H_
