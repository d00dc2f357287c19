// EventSink: where validated events are sent to enter the stream. The Kafka
// producer implements it; the HTTP server's POST /v1/events uses it; tests
// use an in-memory fake.
#ifndef CFREC_INGEST_EVENT_SINK_H_
#define CFREC_INGEST_EVENT_SINK_H_

#include <chrono>
#include <string_view>

#include "cfrec/schemas/status.h"

namespace cfrec::ingest {

// Thread-safe: Send may be called from many threads at once.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queues one message (key = user id, payload = the event's JSON). Returns
  // ResourceExhausted when the local queue is full, Unavailable when the
  // sink is closed. Delivery is asynchronous; Flush waits for it.
  virtual Status Send(std::string_view key, std::string_view payload) = 0;
  // Waits until everything sent so far is delivered or `timeout` passes.
  virtual Status Flush(std::chrono::milliseconds timeout) = 0;
};

}  // namespace cfrec::ingest

#endif  // CFREC_INGEST_EVENT_SINK_H_
