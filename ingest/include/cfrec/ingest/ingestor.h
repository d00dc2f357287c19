// Ingestor: the consume -> apply -> hand-off loop.
//
// It reads batches from a MessageSource, applies each with one WriteBatch
// (events + offsets, EventStore::SubmitBatch), and passes the applied events
// to a callback (the learner's bounded queue) once they are durable. By
// default the apply is pipelined: the next batch is polled and built while
// the previous one is written (at most one batch in flight). On Start it
// assigns the source at the store's stored offsets, so a restart after a
// crash resumes exactly where the durable state ends -- provided the offsets
// belong to the log being read. Assign() checks that first: when the
// broker's log is not the one the offsets were stored for (the embedded
// broker starts empty at every start), or a partition's stored offset is
// past the end of its log (topic recreated), those offsets are discarded and
// the log is read from its start; events already stored are recognised by
// id and not applied twice.
#ifndef CFREC_INGEST_INGESTOR_H_
#define CFREC_INGEST_INGESTOR_H_

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/ingest/kafka.h"
#include "cfrec/state/event_store.h"

namespace cfrec::ingest {

struct IngestorOptions {
  std::string topic = std::string(kDefaultTopic);
  size_t max_batch = 2000;  // messages per WriteBatch; default 2,000
  std::chrono::milliseconds poll_timeout{50};  // default 50 ms
  // Backoff after a storage failure before the batch is re-read. Default 1 s.
  std::chrono::milliseconds retry_backoff{1000};
  // Identity of the log read, kept with the stored offsets. Empty (default):
  // the source's (Kafka's cluster id and the topic). For the embedded broker
  // EmbeddedBroker::log_id(), which is new at every start.
  std::string log_id;
  // Whether offsets stored without a log id are from another log and must
  // be discarded. Set for the embedded broker, whose log never outlives the
  // process. Default false: they are taken to be this log's (a store written
  // before log ids were recorded) and the id is recorded for them.
  bool discard_unidentified_offsets = false;
  // Poll and build the next batch while the previous one is written
  // (EventStore::SubmitBatch). Default true; false waits for each write.
  bool pipeline = true;
};

struct IngestStats {
  uint64_t batches = 0;
  uint64_t messages = 0;
  uint64_t impressions = 0;
  uint64_t clicks_joined = 0;
  uint64_t clicks_pending = 0;
  uint64_t duplicates = 0;
  uint64_t redelivered = 0;
  uint64_t dead_letters = 0;
  uint64_t storage_errors = 0;
  uint64_t gap_messages = 0;
  // Times the stored offsets were discarded because the broker serves
  // another log than the one they were stored for (the embedded broker at
  // every start over a store that already has offsets).
  uint64_t log_changes = 0;
  // Partitions whose stored offset was past the end of their log (the log
  // restarted: topic recreated); read again from their start, not lost.
  uint64_t partition_restarts = 0;
  // High watermark - next offset, summed over partitions, each at least 0,
  // as of the last UpdateLag (from the consumer's cached watermarks when
  // the broker could not be asked).
  int64_t consumer_lag = 0;
  // The source's brokers (MessageSource::Health), read by Stats(): brokers
  // connected (-1 unknown), seconds since none is reachable (0 while one
  // is), and how many times none was.
  int brokers_up = -1;
  double broker_outage_seconds = 0;
  uint64_t broker_outages = 0;
  double poll_seconds = 0;    // time in MessageSource::Poll
  double apply_seconds = 0;   // time in SubmitBatch and CompleteBatch
  double idle_seconds = 0;    // time in polls that returned nothing
  state::ApplyPhases phases;  // apply_seconds by phase
};

class Ingestor {
 public:
  using AppliedCallback =
      std::function<void(std::vector<state::AppliedEvent>&& events)>;

  // `source` is owned; `store` is not and must outlive the Ingestor.
  // `on_applied` runs on the ingest thread after each durable batch (may be
  // empty).
  Ingestor(const IngestorOptions& options,
           std::unique_ptr<MessageSource> source, state::EventStore* store,
           AppliedCallback on_applied);
  ~Ingestor();

  // Assigns the source at the stored offsets (the durable resume point).
  Status Assign();
  // Assign(), then starts the ingest thread.
  Status Start();
  // Runs one poll/apply step on the caller's thread, after Assign() and
  // without a running thread (tools, tests): polls a batch and submits it,
  // which finishes the batch submitted before it. A step that polls nothing
  // finishes the batch in flight, so stepping until 0 applies everything
  // read. Returns the number of messages consumed.
  Result<size_t> RunOnce();
  // Stops the thread after the batch in progress is applied.
  void Stop();

  // Thread-safe.
  IngestStats Stats() const;
  // Refreshes consumer_lag from the broker's high watermarks. Waits a
  // bounded time (MessageSource::HighWatermarks); when the broker cannot
  // answer, the lag is computed from the watermarks the consumer last saw
  // and the broker's error is returned. Thread-safe.
  Status UpdateLag();
  // Why ingest cannot make progress, for GET /readyz ("kafka unreachable
  // for 12 s: ..."); empty when it can. Thread-safe, never blocks.
  std::string NotReadyReason() const;

 private:
  void Loop();
  // Binds the store's offsets of the topic to the log read (see the file
  // comment); discards them when they belong to another log.
  Status CheckLogId();
  // Discards stored offsets past the end of their partition's log.
  Status CheckOffsetsWithinLog();
  // Discards the stored offsets of partitions the source found restarted.
  Status HandleRestartedPartitions();
  // Waits for the batch in flight, if any, and hands it on.
  Status CompleteInFlight();
  // Counts an applied batch and hands its events to the callback.
  void Account(state::ApplyOutcome&& outcome);
  // After a failed apply: completes the batch still in flight, rewinds the
  // source to the stored offsets and returns `failure`.
  Status StorageFailed(const Status& failure);

  IngestorOptions options_;
  std::unique_ptr<MessageSource> source_;
  state::EventStore* store_;
  AppliedCallback on_applied_;
  // The batch being polled and the one in flight, in turn.
  std::array<std::vector<SourceMessage>, 2> buffers_;
  size_t turn_ = 0;
  bool in_flight_ = false;          // a batch was submitted and not completed
  std::vector<int32_t> restarted_;  // offsets still to discard

  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex stats_mu_;
  IngestStats stats_;
};

}  // namespace cfrec::ingest

#endif  // CFREC_INGEST_INGESTOR_H_
