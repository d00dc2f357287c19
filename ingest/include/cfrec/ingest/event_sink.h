// EventSink: where validated events are sent to enter the stream. The Kafka
// producer implements it; the HTTP server's POST /v1/events uses it; tests
// use an in-memory fake.
#ifndef CFREC_INGEST_EVENT_SINK_H_
#define CFREC_INGEST_EVENT_SINK_H_

#include <chrono>
#include <span>
#include <string_view>

#include "cfrec/schemas/status.h"

namespace cfrec::ingest {

// One message for SendDurable.
struct SinkMessage {
  std::string_view key;
  std::string_view payload;
};

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
  // Sends `messages` and returns once the log has confirmed every one of
  // them (the producer's delivery reports): OK, or ResourceExhausted /
  // Unavailable as Send (messages before the refused one are queued), or
  // Unavailable when a delivery failed or `timeout` passed first (then the
  // messages may still be delivered later). The default
  // sends each and then waits for everything sent so far (Flush).
  virtual Status SendDurable(std::span<const SinkMessage> messages,
                             std::chrono::milliseconds timeout) {
    for (const SinkMessage& m : messages) {
      Status sent = Send(m.key, m.payload);
      if (!sent.ok()) return sent;
    }
    return Flush(timeout);
  }
};

}  // namespace cfrec::ingest

#endif  // CFREC_INGEST_EVENT_SINK_H_
