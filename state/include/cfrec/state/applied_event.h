// What the store hands downstream (to the learner) after it has durably
// applied a batch: events in dense-index form, numbered by a gap-free
// sequence that is persisted with them (the applied log).
#ifndef CFREC_STATE_APPLIED_EVENT_H_
#define CFREC_STATE_APPLIED_EVENT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/schemas/status.h"

namespace cfrec::state {

// Dense ids, assigned in arrival order from 0 and persisted. Stable forever.
using UserIndex = uint32_t;
using ItemIndex = uint32_t;

struct AppliedEvent {
  enum class Kind : uint8_t {
    // A new impression list. `clicked` holds the clicks known when it was
    // applied: inline ones and clicks that had arrived before it.
    kImpression = 0,
    // A click joined to an impression applied earlier. `items` is that
    // impression's list and `clicked` the one clicked position.
    kClick = 1,
  };

  uint64_t seq = 0;  // 1, 2, 3, ... in apply order, never reused
  Kind kind = Kind::kImpression;
  UserIndex user = 0;
  int64_t ts_ms = 0;               // event time of the impression or click
  std::vector<ItemIndex> items;    // the list as shown, in order
  std::vector<uint16_t> clicked;   // positions into `items`, ascending
  std::vector<ItemIndex> history;  // kImpression only: MIND's History

  friend bool operator==(const AppliedEvent&, const AppliedEvent&) = default;
};

// Compact binary encoding used by the applied log (varints).
std::string EncodeAppliedEvent(const AppliedEvent& event);
Result<AppliedEvent> DecodeAppliedEvent(std::string_view bytes);

}  // namespace cfrec::state

#endif  // CFREC_STATE_APPLIED_EVENT_H_
