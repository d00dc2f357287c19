// The models topic on Kafka: a producer that writes chunks to partition 0
// and waits for their delivery, and a reader of the topic from its start.
#ifndef CFREC_REPLICA_SRC_MODELS_TOPIC_H_
#define CFREC_REPLICA_SRC_MODELS_TOPIC_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cfrec/ingest/kafka.h"
#include "cfrec/replica/chunks.h"
#include "cfrec/schemas/status.h"

namespace cfrec::replica {

class ModelsProducer {
 public:
  static Result<std::unique_ptr<ModelsProducer>> Create(
      const std::string& brokers, const std::string& topic,
      const std::map<std::string, std::string>& extra);
  ~ModelsProducer();

  // Produces every message to partition 0, in order, and waits until all
  // are delivered (or `timeout`): OK only when every one was.
  Status SendAll(const std::vector<ChunkMessage>& messages,
                 std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit ModelsProducer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A consumer of every partition of the models topic from its start.
Result<std::unique_ptr<ingest::MessageSource>> OpenModelsTopic(
    const std::string& brokers, const std::string& topic,
    const std::string& group_id,
    const std::map<std::string, std::string>& extra);

// Whether `source` has read up to `high` (the next offsets per partition)
// given the next offsets it has reached.
bool ReachedAll(const std::map<int32_t, int64_t>& high,
                const std::map<int32_t, int64_t>& next);

}  // namespace cfrec::replica

#endif  // CFREC_REPLICA_SRC_MODELS_TOPIC_H_
