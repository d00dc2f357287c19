// Replay: turns a MIND-format log into the event stream, in time order.
//
// One impression event per row (without clicks) and one click event per
// clicked item, keyed by user id; clicks follow their impression by
// `click_delay_ms` of event time. At speed 0 events are sent as fast as the
// producer takes them; at speed S the replay waits so that event time runs S
// times faster than wall time.
#ifndef CFREC_INGEST_REPLAY_H_
#define CFREC_INGEST_REPLAY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cfrec/ingest/event_sink.h"
#include "cfrec/schemas/mind.h"
#include "cfrec/schemas/status.h"

namespace cfrec::ingest {

struct ReplayOptions {
  double speed = 0;            // 0 = full speed; 60 = 60x real time
  int64_t click_delay_ms = 0;  // event-time delay of clicks; default 0
  bool progress_bar = false;   // draw a bar on stderr (a terminal)
  // When set, the replay waits while backlog() exceeds max_backlog: the
  // embedded broker drops old messages, so a producer must not run far
  // ahead of the consumer. backlog() is typically produced - applied. It is
  // consulted every 64 events.
  std::function<int64_t()> backlog;
  int64_t max_backlog = 50000;
  // When set and it returns true, the replay stops before the next event
  // (also while it waits on the backlog or the pace) and returns what it
  // sent so far, flushed. For a service shutting down mid-replay.
  std::function<bool()> stop;
};

struct ReplaySummary {
  uint64_t rows = 0;
  uint64_t impressions = 0;
  uint64_t clicks = 0;
  double seconds = 0;
  bool stopped = false;  // options.stop ended it before the last event
};

// The events of `rows`, sorted by event time (stable: an impression precedes
// its clicks at equal time). Exposed for tests and benchmarks.
struct ReplayEvent {
  int64_t ts_ms;
  uint32_t row;
  int32_t item;  // -1 for the impression, else the clicked item's position
};
std::vector<ReplayEvent> ReplaySchedule(const std::vector<MindRow>& rows,
                                        int64_t click_delay_ms);

// Sends the rows' events to `sink` (blocking when its queue is full).
Result<ReplaySummary> Replay(const std::vector<MindRow>& rows, EventSink* sink,
                             const ReplayOptions& options);

}  // namespace cfrec::ingest

#endif  // CFREC_INGEST_REPLAY_H_
