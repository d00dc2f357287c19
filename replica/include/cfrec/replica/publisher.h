// ModelPublisher: the trainer's side of model distribution. Every
// `delta_interval` it takes the trainer's latest snapshot and, if it is a
// new one, writes it to the models topic: a full image every
// `full_interval` (and first, and after any failed write), a delta of what
// changed since the previously published version otherwise. Once every
// chunk of a version is delivered, the version is handed to `served`, so
// the trainer's own HTTP answers from exactly the versions replicas can
// have, under the same numbers.
//
// Versions: a published version is the trainer's snapshot version, lifted
// above the highest version on the topic (read at Start) when it is not
// already above it, so numbers keep rising across trainer restarts and a
// new topic; the first full image after a restart goes to the slot that
// does not hold the newest complete one.
//
// Thread-safety: Start/Stop from one thread; Stats from any.
#ifndef CFREC_REPLICA_PUBLISHER_H_
#define CFREC_REPLICA_PUBLISHER_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cfrec/learner/snapshot.h"
#include "cfrec/replica/chunks.h"
#include "cfrec/replica/model_codec.h"
#include "cfrec/schemas/status.h"

namespace cfrec::replica {

inline constexpr std::string_view kDefaultModelsTopic = "cfrec.models";

struct PublisherOptions {
  std::string brokers;  // required
  std::string topic = std::string(kDefaultModelsTopic);
  std::chrono::milliseconds full_interval{60000};
  std::chrono::milliseconds delta_interval{1000};
  size_t chunk_bytes = kDefaultChunkBytes;
  // How long one version's chunks may take to be delivered.
  std::chrono::milliseconds delivery_timeout{10000};
  // How long Start may read the topic for its last version.
  std::chrono::milliseconds scan_timeout{30000};
  std::map<std::string, std::string> producer_extra;
  std::map<std::string, std::string> consumer_extra;
};

struct PublisherStats {
  // Added to the trainer's versions: 0 when they are above every version
  // on the topic already, else what lifts the first one just above.
  uint64_t version_base = 0;
  uint64_t fulls = 0;         // full images published
  uint64_t deltas = 0;        // deltas published
  uint64_t failures = 0;      // versions not published (encode or delivery)
  uint64_t bytes = 0;         // image bytes published (chunk headers excluded)
  uint64_t full_bytes = 0;    // of those, in full images
  uint64_t messages = 0;      // chunks published
  uint64_t last_version = 0;  // newest published version
  size_t last_bytes = 0;      // its image size
  double last_encode_ms = 0;
  double last_send_ms = 0;
  int64_t last_publish_unix_ms = 0;
  EncodeStats last_changes;
};

class ModelPublisher {
 public:
  // `source` is the trainer's holder, `served` what HTTP reads; `ids`
  // reads the dictionaries (the store's) as of the call. None owned; all
  // must outlive the publisher.
  static Result<std::unique_ptr<ModelPublisher>> Start(
      const PublisherOptions& options, const learner::SnapshotHolder* source,
      learner::SnapshotHolder* served, std::function<IdSource()> ids);
  ~ModelPublisher();  // Stops.

  // Publishes the latest snapshot if it is new (the trainer's final one),
  // then stops the thread.
  void Stop();
  PublisherStats Stats() const;

 private:
  struct Impl;
  explicit ModelPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What a read of the models topic from its start found: the highest
// version in any valid chunk, and the slot of the newest complete full
// image (-1: none).
struct TopicScan {
  uint64_t max_version = 0;
  int newest_full_slot = -1;
  uint64_t newest_full_version = 0;
  uint64_t messages = 0;
};
Result<TopicScan> ScanModelsTopic(
    const std::string& brokers, const std::string& topic,
    std::chrono::milliseconds timeout,
    const std::map<std::string, std::string>& consumer_extra = {});

}  // namespace cfrec::replica

#endif  // CFREC_REPLICA_PUBLISHER_H_
