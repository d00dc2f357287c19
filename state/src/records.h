// Rows of the families that hold the events themselves: an impression with
// its joined clicks (impressions), clicks held until their impression
// arrives (pending_clicks), and the key of the index of impressions by time
// (time_index). Written by BatchApplier and ImpressionIndex, read by
// EventReader and ImpressionIndex.
#ifndef CFREC_STATE_SRC_RECORDS_H_
#define CFREC_STATE_SRC_RECORDS_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"

namespace cfrec::state {

// impressions value: user, ts, the impression's applied-log seq, items,
// history (dense indexes), and the positions clicked so far, ascending (a
// click joined later rewrites the row).
struct ImpressionRecord {
  UserIndex user = 0;
  int64_t ts_ms = 0;
  uint64_t seq = 0;
  std::vector<ItemIndex> items;
  std::vector<ItemIndex> history;
  std::vector<uint16_t> clicked;
};

std::string EncodeImpression(const ImpressionRecord& r);
// The same into `*out` (replacing its contents; its capacity is reused).
void EncodeImpression(const ImpressionRecord& r, std::string* out);
// The same from its parts.
void EncodeImpression(UserIndex user, int64_t ts_ms, uint64_t seq,
                      std::span<const ItemIndex> items,
                      std::span<const ItemIndex> history,
                      std::span<const uint16_t> clicked, std::string* out);
Result<ImpressionRecord> DecodeImpression(std::string_view v);

// A click held in pending_clicks. Key: PendingKey(impression id, item_id);
// value: user id, ts.
struct PendingClick {
  std::string item_id;
  std::string user_id;
  int64_t ts_ms = 0;
};

std::string EncodePending(std::string_view user_id, int64_t ts_ms);
// Fills `p`'s user id and ts from a pending_clicks value; false when the value
// does not start with them.
bool DecodePending(std::string_view v, PendingClick* p);

// pending_clicks key: impression id, kSep, item id.
std::string PendingKey(std::string_view impression_id,
                       std::string_view item_id);
// time_index key: ts (BE64), impression id. Value: user (BE32).
std::string TimeKey(int64_t ts_ms, std::string_view impression_id);
void TimeKey(int64_t ts_ms, std::string_view impression_id, std::string* out);

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_RECORDS_H_
