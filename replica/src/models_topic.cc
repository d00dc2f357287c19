#include "models_topic.h"

#include <librdkafka/rdkafkacpp.h>

#include <atomic>

#include "cfrec/schemas/log.h"

namespace cfrec::replica {
namespace {

class Reports : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() != RdKafka::ERR_NO_ERROR) {
      failed.fetch_add(1);
      std::lock_guard lock(mu);
      last_error = message.errstr();
    } else {
      delivered.fetch_add(1);
    }
  }
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> failed{0};
  std::mutex mu;
  std::string last_error;
};

}  // namespace

struct ModelsProducer::Impl {
  std::string topic;
  Reports reports;
  std::unique_ptr<RdKafka::Producer> producer;
};

ModelsProducer::ModelsProducer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

ModelsProducer::~ModelsProducer() {
  if (impl_ && impl_->producer) impl_->producer->flush(2000);
}

Result<std::unique_ptr<ModelsProducer>> ModelsProducer::Create(
    const std::string& brokers, const std::string& topic,
    const std::map<std::string, std::string>& extra) {
  auto impl = std::make_unique<Impl>();
  impl->topic = topic;
  std::unique_ptr<RdKafka::Conf> conf(
      RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  std::map<std::string, std::string> props = {
      {"bootstrap.servers", brokers},
      {"linger.ms", "0"},
      // Chunks are at most kDefaultChunkBytes plus a header; a message set
      // of one chunk stays under brokers' default 1 MB.
      {"message.max.bytes", "1000000"},
      {"batch.num.messages", "1"},
      // Order and no duplicates within the partition, whatever retries.
      {"enable.idempotence", "true"},
      {"compression.codec", "none"},
      {"log_level", "3"}};
  for (const auto& [k, v] : extra) props[k] = v;
  for (const auto& [k, v] : props) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("Kafka property '" + k + "': " + err);
    }
  }
  if (conf->set("dr_cb", &impl->reports, err) != RdKafka::Conf::CONF_OK) {
    return Status::Internal(err);
  }
  impl->producer.reset(RdKafka::Producer::create(conf.get(), err));
  if (!impl->producer) {
    return Status::Unavailable("creating the models producer: " + err);
  }
  return std::unique_ptr<ModelsProducer>(new ModelsProducer(std::move(impl)));
}

Status ModelsProducer::SendAll(const std::vector<ChunkMessage>& messages,
                               std::chrono::milliseconds timeout) {
  const uint64_t delivered = impl_->reports.delivered.load();
  const uint64_t failed = impl_->reports.failed.load();
  for (const ChunkMessage& m : messages) {
    while (true) {
      auto err = impl_->producer->produce(
          impl_->topic, 0, RdKafka::Producer::RK_MSG_COPY,
          const_cast<char*>(m.value.data()), m.value.size(), m.key.data(),
          m.key.size(), 0, nullptr);
      if (err == RdKafka::ERR_NO_ERROR) break;
      if (err != RdKafka::ERR__QUEUE_FULL) {
        return Status::Unavailable("producing to " + impl_->topic + ": " +
                                   RdKafka::err2str(err));
      }
      impl_->producer->poll(10);
    }
    impl_->producer->poll(0);
  }
  auto err = impl_->producer->flush(static_cast<int>(timeout.count()));
  const uint64_t now_failed = impl_->reports.failed.load() - failed;
  const uint64_t now_delivered = impl_->reports.delivered.load() - delivered;
  if (now_failed > 0) {
    std::lock_guard lock(impl_->reports.mu);
    return Status::Unavailable(
        "models topic: " + std::to_string(now_failed) +
        " chunks not delivered: " + impl_->reports.last_error);
  }
  if (err != RdKafka::ERR_NO_ERROR || now_delivered < messages.size()) {
    return Status::Unavailable("models topic: delivery not confirmed in " +
                               std::to_string(timeout.count()) + " ms (" +
                               RdKafka::err2str(err) + ")");
  }
  return Status::Ok();
}

Result<std::unique_ptr<ingest::MessageSource>> OpenModelsTopic(
    const std::string& brokers, const std::string& topic,
    const std::string& group_id,
    const std::map<std::string, std::string>& extra) {
  ingest::ConsumerOptions co;
  co.brokers = brokers;
  co.topic = topic;
  co.group_id = group_id;
  co.fetch_wait_max_ms = 50;
  co.extra = {
      // Compaction and retention remove old offsets; the start of what is
      // left is where a replica begins.
      {"auto.offset.reset", "earliest"},
      // Full images are tens of MB at scale.
      {"fetch.max.bytes", "67108864"},
      {"max.partition.fetch.bytes", "8388608"},
      {"queued.min.messages", "64"},
      {"queued.max.messages.kbytes", "131072"},
  };
  for (const auto& [k, v] : extra) co.extra[k] = v;
  auto source = ingest::CreateKafkaSource(co);
  if (!source.ok()) return source.status();
  Status s = (*source)->Assign({});
  if (!s.ok()) return s;
  return source;
}

bool ReachedAll(const std::map<int32_t, int64_t>& high,
                const std::map<int32_t, int64_t>& next) {
  for (const auto& [p, h] : high) {
    if (h <= 0) continue;
    auto it = next.find(p);
    if (it == next.end() || it->second < h) return false;
  }
  return true;
}

}  // namespace cfrec::replica
