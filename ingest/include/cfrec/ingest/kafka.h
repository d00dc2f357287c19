// Kafka plumbing: the embedded broker, a producer (EventSink), and the
// consumer behind the MessageSource interface. librdkafka types stay in the
// .cc files.
#ifndef CFREC_INGEST_KAFKA_H_
#define CFREC_INGEST_KAFKA_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/ingest/event_sink.h"
#include "cfrec/schemas/status.h"
#include "cfrec/state/event_store.h"

namespace cfrec::ingest {

inline constexpr std::string_view kDefaultTopic = "cfrec.events";

// An in-process Kafka cluster: librdkafka's mock cluster, which speaks the
// real Kafka protocol on a loopback port. Clients (in this process or
// another) connect to bootstrap_servers() like to any broker.
//
// Limits of the mock (librdkafka 2.0.2): it keeps at most 5 MiB and 100,000
// message sets per partition and drops older ones silently, so a producer
// must not run far ahead of the consumer (replay paces on lag). Its log
// lives in memory: every start begins with an empty log, which log_id()
// tells apart from the logs of earlier starts.
class EmbeddedBroker {
 public:
  struct Options {
    int brokers = 1;      // default 1
    int partitions = 16;  // partitions of each topic it creates
  };
  static Result<std::unique_ptr<EmbeddedBroker>> Start(const Options& options);
  static Result<std::unique_ptr<EmbeddedBroker>> Start() {
    return Start(Options{});
  }
  ~EmbeddedBroker();

  // "127.0.0.1:PORT[,...]"
  const std::string& bootstrap_servers() const { return bootstraps_; }
  // "embedded:<16 random hex digits>", new at every start: the identity of
  // this broker's log (see IngestorOptions::log_id).
  const std::string& log_id() const { return log_id_; }
  Status CreateTopic(std::string_view topic, int partitions);
  // Faults, for tests. A broker outage (ids 1..brokers): connections are
  // closed and refused until SetBrokerUp.
  Status SetBrokerDown(int32_t broker_id);
  Status SetBrokerUp(int32_t broker_id);
  // Moves the leadership of one partition to another broker (a leader
  // change; clients learn it from a NOT_LEADER error and new metadata).
  Status SetPartitionLeader(std::string_view topic, int32_t partition,
                            int32_t broker_id);
  // The next requests of Kafka API `api_key` (0 Produce, 1 Fetch, 2
  // ListOffsets, 3 Metadata, ...) fail with these Kafka error codes, one
  // request each, in order.
  Status PushRequestErrors(int16_t api_key, const std::vector<int>& errors);

 private:
  struct Impl;
  explicit EmbeddedBroker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string bootstraps_;
  std::string log_id_;
};

struct ProducerOptions {
  std::string brokers;  // bootstrap servers (required)
  std::string topic = std::string(kDefaultTopic);
  int linger_ms = 5;                   // batching delay; default 5 ms
  size_t queue_max_messages = 500000;  // local queue bound
  // Extra librdkafka properties, e.g. {"security.protocol", "ssl"}.
  std::map<std::string, std::string> extra;
};

// A Kafka producer. Thread-safe.
class KafkaProducer : public EventSink {
 public:
  static Result<std::unique_ptr<KafkaProducer>> Create(
      const ProducerOptions& options);
  ~KafkaProducer() override;

  Status Send(std::string_view key, std::string_view payload) override;
  // Like Send, but waits for room in the local queue instead of failing.
  Status SendBlocking(std::string_view key, std::string_view payload);
  Status Flush(std::chrono::milliseconds timeout) override;
  // Waits for these messages' own delivery reports only, not for every
  // message sent before them; the wait serves delivery reports (poll).
  Status SendDurable(std::span<const SinkMessage> messages,
                     std::chrono::milliseconds timeout) override;
  // Messages whose delivery failed (after librdkafka's retries).
  uint64_t delivery_failures() const;
  uint64_t delivered() const;
  // Per partition, the offset after the highest one delivered so far (for
  // pacing a producer against a consumer partition by partition). Serves
  // pending delivery reports first.
  std::map<int32_t, int64_t> DeliveredNextOffsets() const;
  // Messages queued or in flight, not yet reported delivered.
  size_t outstanding() const;

 private:
  struct Impl;
  explicit KafkaProducer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One message read from the log; owns its bytes.
struct SourceMessage {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string payload;
};

// What a Kafka client knows of its brokers' reachability, from librdkafka's
// error and statistics callbacks (no request is made to learn it).
struct BrokerHealth {
  // Brokers the client holds an open connection to (state UP in
  // librdkafka's statistics); -1 until the first statistics arrive.
  int brokers_up = -1;
  // Set while no broker is reachable (librdkafka reported
  // ALL_BROKERS_DOWN, or its statistics show no broker up): since when.
  std::optional<std::chrono::steady_clock::time_point> unreachable_since;
  // Times every broker became unreachable.
  uint64_t outages = 0;
  // The last error librdkafka reported (transport errors included).
  std::string last_error;
};

// Where ingest reads from. Not thread-safe: one consumer thread, except
// where a method says otherwise.
class MessageSource {
 public:
  virtual ~MessageSource() = default;
  // Starts reading every partition of the topic at the given next offsets
  // (partitions not in the map start at the beginning of the log).
  virtual Status Assign(const std::map<int32_t, int64_t>& next_offsets) = 0;
  // Appends up to `max` messages to `out`, waiting at most `timeout` for the
  // first one. Non-fatal conditions (broker down, gap) are logged and
  // counted, not returned.
  virtual Status Poll(size_t max, std::chrono::milliseconds timeout,
                      std::vector<SourceMessage>* out) = 0;
  // Next offset the broker will assign, per partition (for lag), asked of
  // the broker. Thread-safe once assigned. Waits a bounded time (the Kafka
  // source: 2 s for all partitions together), and fails at once while no
  // broker is reachable (Health()).
  virtual Result<std::map<int32_t, int64_t>> HighWatermarks() = 0;
  // The high watermarks as the consumer last saw them (the Kafka source:
  // from fetch responses, cached by librdkafka); partitions not fetched yet
  // are absent. Never blocks; thread-safe. Stale while the broker is away.
  virtual std::map<int32_t, int64_t> CachedHighWatermarks() const { return {}; }
  // Reachability of the brokers. Never blocks; thread-safe. Default:
  // nothing known (brokers_up -1, reachable).
  virtual BrokerHealth Health() const { return {}; }
  // Offsets found missing from the log (the broker dropped them).
  virtual uint64_t gap_messages() const = 0;
  // Identity of the log read: "kafka:<cluster id>/<topic>". Empty when it
  // cannot be told (the default; brokers that send no cluster id).
  virtual Result<std::string> LogId() { return std::string(); }
  // Partitions whose log was found to have restarted behind the position
  // asked for (the offset is past the log's end: topic recreated) since the
  // last call. The source already reads them again from their start; their
  // stored offsets must be discarded before messages from them are applied.
  virtual std::vector<int32_t> TakeRestartedPartitions() { return {}; }
};

struct ConsumerOptions {
  std::string brokers;  // bootstrap servers (required)
  std::string topic = std::string(kDefaultTopic);
  std::string group_id = "cfrec";  // for broker-side bookkeeping only
  // librdkafka's fetch.wait.max.ms. Default 100. Against the embedded
  // (mock) broker use 1: measured there, 10 ms left the consumer idle for
  // more than half of a benchmark run while data waited in the broker.
  int fetch_wait_max_ms = 100;
  // librdkafka's statistics.interval.ms: how often the brokers' connection
  // states are read (MessageSource::Health); 0 leaves only the
  // ALL_BROKERS_DOWN error to tell an outage, and nothing its end but the
  // next message. Default 1000.
  int statistics_interval_ms = 1000;
  // Join the consumer group `group_id` (subscribe) instead of assigning
  // every partition. The group decides which partitions this consumer
  // reads; each partition it is given starts at stored_offsets()[p] (the
  // store's next offsets, read at that moment; the beginning when absent),
  // and a partition taken away is released at once. Offsets are never
  // committed to the group: exactly-once stays in the store. Default false
  // (manual assignment of every partition).
  bool join_group = false;
  std::function<std::map<int32_t, int64_t>()> stored_offsets;
  // Extra librdkafka properties.
  std::map<std::string, std::string> extra;
};

// A librdkafka consumer: no auto-commit; offsets live in the EventStore and
// Assign() seeks there. Manual assignment of every partition, or, with
// join_group, the partitions the consumer group hands out (docs/STATE.md,
// "Consumer group").
Result<std::unique_ptr<MessageSource>> CreateKafkaSource(
    const ConsumerOptions& options);

}  // namespace cfrec::ingest

#endif  // CFREC_INGEST_KAFKA_H_
