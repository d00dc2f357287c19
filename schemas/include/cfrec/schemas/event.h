// The two event types that flow through Kafka (topic cfrec.events, key = user
// id) and POST /v1/events, and their strict JSON parsing.
//
// The JSON Schema files schemas/json/impression.schema.json and
// click.schema.json describe the same contract for producers in other
// languages; the parser here is the authority and the tests pin the two
// together on a table of accepted and rejected documents.
#ifndef CFREC_SCHEMAS_EVENT_H_
#define CFREC_SCHEMAS_EVENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cfrec/schemas/status.h"

namespace cfrec {

// Limits enforced on every event. A message outside them is rejected with a
// Status naming the field; ingest sends it to the dead letters.
struct EventLimits {
  // Largest accepted message, in bytes. Default 1 MiB.
  size_t max_message_bytes = 1 << 20;
  // Longest id (user, item, impression), in bytes of UTF-8. Default 128.
  size_t max_id_bytes = 128;
  // Most items in one impression list. Default 1,000 (MIND's longest: 299).
  size_t max_list_length = 1000;
  // Most items in an impression's history. Default 10,000.
  size_t max_history_length = 10000;
};

// An impression: the list of items shown to a user, in display order.
struct ImpressionEvent {
  std::string impression_id;
  std::string user_id;
  int64_t ts_ms = 0;                 // event time, ms since the Unix epoch
  std::vector<std::string> items;    // as shown, in order; no duplicates
  std::vector<std::string> clicks;   // subset of items, may be empty
  std::vector<std::string> history;  // clicked before the stream began

  friend bool operator==(const ImpressionEvent&,
                         const ImpressionEvent&) = default;
};

// A click on one item of an impression. May arrive before the impression.
struct ClickEvent {
  std::string impression_id;
  std::string user_id;
  std::string item_id;
  int64_t ts_ms = 0;

  friend bool operator==(const ClickEvent&, const ClickEvent&) = default;
};

using Event = std::variant<ImpressionEvent, ClickEvent>;

// The user id of either event (the Kafka key).
const std::string& EventUserId(const Event& event);

// Parses one JSON event. Strict: the "type" field selects the schema
// ("impression" or "click"); every required field must be present with the
// right type; unknown fields are rejected (they are usually typos, such as
// "click" for "clicks"); limits are enforced; `ts` is an RFC 3339 string or
// an integer of epoch milliseconds. The error names the offending field.
Result<Event> ParseEvent(std::string_view json,
                         const EventLimits& limits = EventLimits{});

// An event parsed without copying its strings: the views point into the
// parsed message, or into `owned` when the message needed the general parser
// (escapes, non-ASCII ids, unusual layout). Valid while both the message and
// this object live and until the next ParseEventView into it. Reuse one
// EventView for many messages: its vectors keep their capacity, so the
// common case allocates nothing.
struct EventView {
  enum class Kind : uint8_t { kImpression, kClick };
  Kind kind = Kind::kImpression;
  std::string_view impression_id;
  std::string_view user_id;
  std::string_view item_id;  // kClick only
  int64_t ts_ms = 0;
  std::vector<std::string_view> items;    // kImpression only
  std::vector<std::string_view> clicks;   // kImpression only
  std::vector<std::string_view> history;  // kImpression only

  // Storage for the general parser's result (heap-held so that moving the
  // EventView keeps the views valid); not part of the event.
  std::unique_ptr<Event> owned;
  std::vector<uint32_t> scratch;
};

// Parses and validates like ParseEvent (same acceptance, same errors) into
// `out`. Thread-compatible: concurrent calls need distinct EventViews.
Status ParseEventView(std::string_view json, const EventLimits& limits,
                      EventView* out);

// Copies a view into an owning event.
Event ToEvent(const EventView& view);

// Serialises an event to its canonical JSON (ts as epoch ms, empty optional
// arrays omitted). ParseEvent(SerializeEvent(e)) == e for every valid e.
std::string SerializeEvent(const Event& event);

// Checks an event built in code against the limits and invariants that
// ParseEvent enforces (non-empty ids, clicks subset of items, ...).
Status ValidateEvent(const Event& event,
                     const EventLimits& limits = EventLimits{});

namespace internal {
// The reference implementations that ParseEvent's single-pass fast path and
// SerializeEvent's direct writer must agree with; exposed for the tests that
// pin them together. ParseEventGeneral skips the message size check.
Result<Event> ParseEventGeneral(std::string_view json,
                                const EventLimits& limits);
std::string SerializeEventDom(const Event& event);
}  // namespace internal

// Parses an RFC 3339 timestamp ("2019-11-12T14:14:46Z", with optional
// fraction and +hh:mm offset) into epoch milliseconds.
Result<int64_t> ParseRfc3339Ms(std::string_view text);

// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision.
std::string FormatRfc3339Ms(int64_t ts_ms);

}  // namespace cfrec

#endif  // CFREC_SCHEMAS_EVENT_H_
