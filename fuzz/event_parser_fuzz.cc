// The event parser (schemas/event.h) on arbitrary bytes, as Kafka messages
// and POST /v1/events bodies reach it. Besides not crashing, it checks:
// - the single-pass fast path (ParseEvent, ParseEventView with a reused
//   view) accepts exactly what the general parser accepts, with the same
//   event or the same error, under the default and under tight limits;
// - an accepted event is valid, and its canonical JSON (both serializers
//   write the same bytes) parses back to the same event.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cfrec/schemas/event.h"
#include "fuzz_check.h"

namespace {

using cfrec::Event;
using cfrec::EventLimits;
using cfrec::EventView;

EventLimits TightLimits() {
  EventLimits limits;
  limits.max_message_bytes = 512;
  limits.max_id_bytes = 8;
  limits.max_list_length = 4;
  limits.max_history_length = 3;
  return limits;
}

void CheckAgreement(std::string_view json, const EventLimits& limits,
                    EventView* view) {
  auto fast = cfrec::ParseEvent(json, limits);
  cfrec::Status via_view = cfrec::ParseEventView(json, limits, view);
  FUZZ_CHECK(via_view.ok() == fast.ok());
  if (fast.ok()) {
    FUZZ_CHECK(cfrec::ToEvent(*view) == *fast);
  } else {
    FUZZ_CHECK(via_view.message() == fast.status().message());
  }
  // The general parser leaves the size check to its callers.
  if (json.size() > limits.max_message_bytes) return;
  auto general = cfrec::internal::ParseEventGeneral(json, limits);
  FUZZ_CHECK(general.ok() == fast.ok());
  if (general.ok()) {
    FUZZ_CHECK(*general == *fast);
  } else {
    FUZZ_CHECK(general.status().message() == fast.status().message());
  }
  if (!fast.ok()) return;
  const Event& event = *fast;
  FUZZ_CHECK(cfrec::ValidateEvent(event, limits).ok());
  const std::string canonical = cfrec::SerializeEvent(event);
  FUZZ_CHECK(canonical == cfrec::internal::SerializeEventDom(event));
  auto again = cfrec::ParseEvent(canonical, EventLimits{});
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == event);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  // Reused across inputs, as the ingest loop reuses its view.
  static EventView view;
  CheckAgreement(json, EventLimits{}, &view);
  CheckAgreement(json, TightLimits(), &view);
  return 0;
}
