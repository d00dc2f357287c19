// Reads of the stored events: an impression with its joined clicks, several
// by id, and the applied log. Which impressions a user or a time window has
// is the impression index's (impression_index.h).
//
// Thread-safety: every method may be called from any thread.
#ifndef CFREC_STATE_SRC_EVENT_READER_H_
#define CFREC_STATE_SRC_EVENT_READER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/state/applied_event.h"
#include "cfrec/state/store_types.h"
#include "layout.h"

namespace cfrec::state {

class EventReader {
 public:
  explicit EventReader(DbRef db) : db_(db) {}

  // EventStore's methods of the same names.
  Result<StoredImpression> GetImpression(std::string_view impression_id) const;
  // The impressions of `ids`, in that order.
  Result<std::vector<StoredImpression>> GetImpressions(
      std::span<const std::string> ids) const;
  Result<std::vector<AppliedEvent>> ReadApplied(uint64_t from_seq,
                                                size_t max) const;

 private:
  Result<StoredImpression> ReadStoredImpression(std::string_view id,
                                                std::string_view value) const;

  DbRef db_;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_EVENT_READER_H_
