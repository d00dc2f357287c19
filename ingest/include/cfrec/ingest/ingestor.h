// Ingestor: the consume -> apply -> hand-off loop.
//
// It reads batches from a MessageSource, applies each with one
// EventStore::ApplyBatch (events + offsets in one WriteBatch), and passes the
// applied events to a callback (the learner's bounded queue). On Start it
// assigns the source at the store's stored offsets, so a restart after a
// crash resumes exactly where the durable state ends.
#ifndef CFREC_INGEST_INGESTOR_H_
#define CFREC_INGEST_INGESTOR_H_

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
  int64_t consumer_lag = 0;  // high watermark - next offset, summed
  double poll_seconds = 0;   // time in MessageSource::Poll
  double apply_seconds = 0;  // time in EventStore::ApplyBatch
  double idle_seconds = 0;   // time in polls that returned nothing
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
  // without a running thread (tools, tests).
  // Returns the number of messages consumed.
  Result<size_t> RunOnce();
  // Stops the thread after the batch in progress is applied.
  void Stop();

  IngestStats Stats() const;
  // Refreshes consumer_lag from the broker's high watermarks.
  Status UpdateLag();

 private:
  void Loop();

  IngestorOptions options_;
  std::unique_ptr<MessageSource> source_;
  state::EventStore* store_;
  AppliedCallback on_applied_;
  std::vector<SourceMessage> buffer_;

  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex stats_mu_;
  IngestStats stats_;
};

}  // namespace cfrec::ingest

#endif  // CFREC_INGEST_INGESTOR_H_
