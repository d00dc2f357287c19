// ModelFollower: the replica's side of model distribution. It reads the
// models topic from its start, reassembles images from their chunks
// (Assembler: sequence and CRC32C checked), and rebuilds the model: the
// newest complete full image, then each delta whose base is the version it
// holds. Only a complete, checked, fully applied version is handed to the
// SnapshotHolder, so a replica never serves part of a version; when the
// trainer stops publishing it keeps serving the last one, and it follows
// again when publishing resumes (a restarted trainer starts with a full
// image of a higher version).
//
// Start-up: until it has read up to the end the topic had at start, it only
// keeps the newest complete full image and the deltas after it (bytes, not
// decoded); then it builds that version once and serves it.
//
// A delta whose base is not the version held (one was lost or damaged) is
// skipped and counted; the replica stays on its version until the next
// full image.
//
// Thread-safety: Start/Stop from one thread; Stats and Latencies from any.
#ifndef CFREC_REPLICA_FOLLOWER_H_
#define CFREC_REPLICA_FOLLOWER_H_

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cfrec/learner/snapshot.h"
#include "cfrec/replica/chunks.h"
#include "cfrec/replica/publisher.h"
#include "cfrec/schemas/status.h"

namespace cfrec::replica {

struct FollowerOptions {
  std::string brokers;  // required
  std::string topic = std::string(kDefaultModelsTopic);
  std::map<std::string, std::string> consumer_extra;
};

struct FollowerStats {
  bool caught_up = false;  // has read the topic's start-up end
  uint64_t version = 0;    // version served (0: none yet)
  uint64_t fulls_applied = 0;
  uint64_t deltas_applied = 0;
  uint64_t deltas_skipped = 0;  // base not the version held
  uint64_t apply_failures = 0;  // images that failed to decode or validate
  Assembler::Stats chunks;
  double last_apply_ms = 0;          // decode + build + index of the last one
  double last_latency_ms = 0;        // its publish-to-serve time
  int64_t last_message_unix_ms = 0;  // wall clock of the last chunk read
};

class ModelFollower {
 public:
  // Publishes each version built into `serve` (not owned; must outlive
  // the follower).
  static Result<std::unique_ptr<ModelFollower>> Start(
      const FollowerOptions& options, learner::SnapshotHolder* serve);
  ~ModelFollower();  // Stops.
  void Stop();

  FollowerStats Stats() const;
  // Publish-to-serve times (ms) of the versions served after start-up, in
  // order: the trainer's publish stamp to the moment the version was
  // handed to the holder (same machine: the wall clocks agree).
  std::vector<double> Latencies() const;

 private:
  struct Impl;
  explicit ModelFollower(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cfrec::replica

#endif  // CFREC_REPLICA_FOLLOWER_H_
