// BrokerWatch: the Kafka consumer's view of whether its brokers answer.
// It follows librdkafka's event callback: the error ALL_BROKERS_DOWN
// (raised as the last broker connection is lost), and the statistics
// document, whose brokers' "state" is UP while connected; log lines go to
// cfrec's log. Errors and statistics are served by consume(), on the ingest
// thread; log lines may come from librdkafka's own threads. Thread-safe.
#ifndef CFREC_INGEST_SRC_BROKER_WATCH_H_
#define CFREC_INGEST_SRC_BROKER_WATCH_H_

#include <librdkafka/rdkafkacpp.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "cfrec/ingest/kafka.h"

namespace cfrec::ingest {

class BrokerWatch final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override;

  BrokerHealth Health() const;

  // A message arrived: some broker answers.
  void MarkReachable();

 private:
  void OnError(RdKafka::Event& event);
  void OnStats(const std::string& text);
  void UnreachableLocked(const std::string& why);
  void ReachableLocked();

  mutable std::mutex mu_;
  BrokerHealth health_;  // guarded by mu_
  uint64_t errors_ = 0;  // guarded by mu_
};

}  // namespace cfrec::ingest

#endif  // CFREC_INGEST_SRC_BROKER_WATCH_H_
