#include "cfrec/ingest/kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>

#include "broker_watch.h"
#include "cfrec/schemas/log.h"

namespace cfrec::ingest {
namespace {

Status SetAll(RdKafka::Conf* conf,
              const std::map<std::string, std::string>& props) {
  std::string err;
  for (const auto& [k, v] : props) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("Kafka property '" + k + "': " + err);
    }
  }
  return Status::Ok();
}

// librdkafka backs off exponentially between attempts to reconnect to a
// broker, by default up to 10 s: after a 3 s outage ingest and POST
// /v1/events stayed stalled up to 10 s longer. A broker that is back is
// reconnected within a second.
constexpr int kReconnectBackoffMaxMs = 1000;

}  // namespace

// ---------------------------------------------------------------- broker

struct EmbeddedBroker::Impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  Options options;
  ~Impl() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
    if (rk != nullptr) rd_kafka_destroy(rk);
  }
};

namespace {

// "embedded:" and 64 random bits in hex. The mock cluster's own id is
// derived from its address in memory, which a later start may reuse.
std::string NewEmbeddedLogId() {
  std::random_device device;
  const uint64_t bits = (static_cast<uint64_t>(device()) << 32) ^ device();
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016" PRIx64, bits);
  return std::string("embedded:") + hex;
}

}  // namespace

EmbeddedBroker::EmbeddedBroker(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)),
      bootstraps_(rd_kafka_mock_cluster_bootstraps(impl_->cluster)),
      log_id_(NewEmbeddedLogId()) {}

EmbeddedBroker::~EmbeddedBroker() = default;

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(
    const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the mock cluster; it never produces.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  impl->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (impl->rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::Internal(std::string("creating mock host: ") + err);
  }
  impl->cluster = rd_kafka_mock_cluster_new(impl->rk, options.brokers);
  if (impl->cluster == nullptr) {
    return Status::Unavailable("could not start the embedded Kafka cluster");
  }
  return std::unique_ptr<EmbeddedBroker>(new EmbeddedBroker(std::move(impl)));
}

Status EmbeddedBroker::CreateTopic(std::string_view topic, int partitions) {
  const std::string t(topic);
  auto err =
      rd_kafka_mock_topic_create(impl_->cluster, t.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Internal("creating topic '" + t +
                            "': " + rd_kafka_err2str(err));
  }
  return Status::Ok();
}

Status EmbeddedBroker::SetBrokerDown(int32_t broker_id) {
  auto err = rd_kafka_mock_broker_set_down(impl_->cluster, broker_id);
  return err == RD_KAFKA_RESP_ERR_NO_ERROR
             ? Status::Ok()
             : Status::Internal(rd_kafka_err2str(err));
}

Status EmbeddedBroker::SetBrokerUp(int32_t broker_id) {
  auto err = rd_kafka_mock_broker_set_up(impl_->cluster, broker_id);
  return err == RD_KAFKA_RESP_ERR_NO_ERROR
             ? Status::Ok()
             : Status::Internal(rd_kafka_err2str(err));
}

Status EmbeddedBroker::SetPartitionLeader(std::string_view topic,
                                          int32_t partition,
                                          int32_t broker_id) {
  const std::string t(topic);
  auto err = rd_kafka_mock_partition_set_leader(impl_->cluster, t.c_str(),
                                                partition, broker_id);
  return err == RD_KAFKA_RESP_ERR_NO_ERROR
             ? Status::Ok()
             : Status::Internal(rd_kafka_err2str(err));
}

Status EmbeddedBroker::PushRequestErrors(int16_t api_key,
                                         const std::vector<int>& errors) {
  std::vector<rd_kafka_resp_err_t> codes;
  for (int e : errors) codes.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, api_key, codes.size(),
                                          codes.data());
  return Status::Ok();
}

// -------------------------------------------------------------- producer

namespace {
// The outcome of the messages of one SendDurable call: each message carries
// a reference (its opaque) that its delivery report settles and drops.
class DurableAck {
 public:
  explicit DurableAck(size_t pending) : pending_(pending) {}
  void Settle(RdKafka::ErrorCode err, const std::string& error) {
    std::lock_guard lock(mu_);
    if (err != RdKafka::ERR_NO_ERROR && failure_.empty()) failure_ = error;
    --pending_;
  }
  // Messages not queued after all (produce refused them).
  void Forget(size_t n) {
    std::lock_guard lock(mu_);
    pending_ -= n;
  }
  bool done() const {
    std::lock_guard lock(mu_);
    return pending_ == 0;
  }
  size_t pending() const {
    std::lock_guard lock(mu_);
    return pending_;
  }
  std::string failure() const {
    std::lock_guard lock(mu_);
    return failure_;
  }

 private:
  mutable std::mutex mu_;
  size_t pending_;
  std::string failure_;  // the first failed delivery's error
};

class DeliveryCounter : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    if (void* opaque = message.msg_opaque()) {
      auto* ack = static_cast<std::shared_ptr<DurableAck>*>(opaque);
      (*ack)->Settle(message.err(), message.errstr());
      delete ack;
    }
    if (message.err() != RdKafka::ERR_NO_ERROR) {
      if (failures.fetch_add(1) < 10) {
        LogWarn("producer", "delivery failed: " + message.errstr());
      }
    } else {
      delivered.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard lock(mu);
      int64_t& next = next_offsets[message.partition()];
      next = std::max(next, message.offset() + 1);
    }
  }
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> delivered{0};
  mutable std::mutex mu;
  std::map<int32_t, int64_t> next_offsets;  // guarded by mu
};
}  // namespace

struct KafkaProducer::Impl {
  ProducerOptions options;
  DeliveryCounter reports;
  std::unique_ptr<RdKafka::Producer> producer;
  // Declared after `producer`: destroyed before it.
  std::unique_ptr<RdKafka::Topic> topic;
};

KafkaProducer::KafkaProducer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

KafkaProducer::~KafkaProducer() {
  if (impl_ && impl_->producer) {
    impl_->producer->flush(5000);
  }
}

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::Create(
    const ProducerOptions& options) {
  if (options.brokers.empty()) {
    return Status::InvalidArgument("producer: no bootstrap servers given");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::unique_ptr<RdKafka::Conf> conf(
      RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  CFREC_RETURN_IF_ERROR(SetAll(
      conf.get(),
      {{"bootstrap.servers", options.brokers},
       {"linger.ms", std::to_string(options.linger_ms)},
       {"queue.buffering.max.messages",
        std::to_string(options.queue_max_messages)},
       {"queue.buffering.max.kbytes", "1048576"},
       {"batch.num.messages", "10000"},
       {"compression.codec", "none"},
       {"reconnect.backoff.max.ms", std::to_string(kReconnectBackoffMaxMs)},
       {"log_level", "3"}}));
  CFREC_RETURN_IF_ERROR(SetAll(conf.get(), options.extra));
  if (conf->set("dr_cb", &impl->reports, err) != RdKafka::Conf::CONF_OK) {
    return Status::Internal(err);
  }
  impl->producer.reset(RdKafka::Producer::create(conf.get(), err));
  if (!impl->producer) {
    return Status::Unavailable("creating Kafka producer: " + err);
  }
  // Learn the topic's partitions now. Otherwise librdkafka (2.0) asks for
  // them only on its once-a-second topic scan, and holds the first messages
  // back until then: a second lost at every start of `serve --replay`,
  // `cfrec replay` and the ingest benchmark. On failure (broker unreachable,
  // topic not created yet) the scan still fills them in later.
  impl->topic.reset(RdKafka::Topic::create(impl->producer.get(), options.topic,
                                           nullptr, err));
  if (impl->topic) {
    RdKafka::Metadata* metadata = nullptr;
    if (impl->producer->metadata(false, impl->topic.get(), &metadata, 2000) ==
        RdKafka::ERR_NO_ERROR) {
      delete metadata;
    }
  }
  return std::unique_ptr<KafkaProducer>(new KafkaProducer(std::move(impl)));
}

Status KafkaProducer::Send(std::string_view key, std::string_view payload) {
  auto err = impl_->producer->produce(
      impl_->options.topic, RdKafka::Topic::PARTITION_UA,
      RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(payload.data()),
      payload.size(), key.data(), key.size(), 0, nullptr);
  impl_->producer->poll(0);
  if (err == RdKafka::ERR_NO_ERROR) return Status::Ok();
  if (err == RdKafka::ERR__QUEUE_FULL) {
    return Status::ResourceExhausted("producer queue is full");
  }
  return Status::Unavailable("produce: " + RdKafka::err2str(err));
}

Status KafkaProducer::SendBlocking(std::string_view key,
                                   std::string_view payload) {
  while (true) {
    Status s = Send(key, payload);
    if (s.code() != StatusCode::kResourceExhausted) return s;
    impl_->producer->poll(10);  // serve delivery reports to make room
  }
}

Status KafkaProducer::Flush(std::chrono::milliseconds timeout) {
  auto err = impl_->producer->flush(static_cast<int>(timeout.count()));
  if (err == RdKafka::ERR_NO_ERROR) return Status::Ok();
  return Status::Unavailable("flush: " + RdKafka::err2str(err) + " (" +
                             std::to_string(impl_->producer->outq_len()) +
                             " messages outstanding)");
}

Status KafkaProducer::SendDurable(std::span<const SinkMessage> messages,
                                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto ack = std::make_shared<DurableAck>(messages.size());
  Status refused = Status::Ok();
  for (size_t i = 0; i < messages.size(); ++i) {
    const SinkMessage& m = messages[i];
    auto* reference = new std::shared_ptr<DurableAck>(ack);
    auto err = impl_->producer->produce(
        impl_->options.topic, RdKafka::Topic::PARTITION_UA,
        RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(m.payload.data()),
        m.payload.size(), m.key.data(), m.key.size(), 0, reference);
    if (err != RdKafka::ERR_NO_ERROR) {
      delete reference;  // not queued: no delivery report will come
      ack->Forget(messages.size() - i);
      refused = err == RdKafka::ERR__QUEUE_FULL
                    ? Status::ResourceExhausted("producer queue is full")
                    : Status::Unavailable("produce: " + RdKafka::err2str(err));
      break;
    }
  }
  // Serve delivery reports until ours are in. Another thread's poll may
  // serve them instead, so wait in short steps and look again.
  while (!ack->done()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Status::Unavailable(
          "the log did not confirm " + std::to_string(ack->pending()) + " of " +
          std::to_string(messages.size()) + " messages within " +
          std::to_string(timeout.count()) + " ms");
    }
    impl_->producer->poll(static_cast<int>(std::min<int64_t>(left.count(), 2)));
  }
  if (!refused.ok()) return refused;
  if (std::string failure = ack->failure(); !failure.empty()) {
    return Status::Unavailable("delivery failed: " + failure);
  }
  return Status::Ok();
}

uint64_t KafkaProducer::delivery_failures() const {
  return impl_->reports.failures.load();
}
uint64_t KafkaProducer::delivered() const {
  return impl_->reports.delivered.load();
}
std::map<int32_t, int64_t> KafkaProducer::DeliveredNextOffsets() const {
  impl_->producer->poll(0);
  std::lock_guard lock(impl_->reports.mu);
  return impl_->reports.next_offsets;
}
size_t KafkaProducer::outstanding() const {
  return static_cast<size_t>(std::max(0, impl_->producer->outq_len()));
}

// -------------------------------------------------------------- consumer

namespace {

// A bound on each request HighWatermarks() makes: the status line and the
// drain ask for the lag every second or so, and must not hang on a broker
// that does not answer.
constexpr int kWatermarkTimeoutMs = 2000;

// Forwards librdkafka's rebalance callback (set on the configuration before
// the consumer exists) to the source once it does.
class GroupRebalance : public RdKafka::RebalanceCb {
 public:
  using Handler =
      std::function<void(RdKafka::KafkaConsumer*, RdKafka::ErrorCode,
                         std::vector<RdKafka::TopicPartition*>&)>;
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& parts) override {
    if (handler) {
      handler(consumer, err, parts);
    } else if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      consumer->assign(parts);
    } else {
      consumer->unassign();
    }
  }
  Handler handler;
};

class KafkaSource final : public MessageSource {
 public:
  KafkaSource(ConsumerOptions options, std::unique_ptr<BrokerWatch> watch,
              std::unique_ptr<GroupRebalance> rebalance,
              std::unique_ptr<RdKafka::KafkaConsumer> consumer)
      : options_(std::move(options)),
        watch_(std::move(watch)),
        rebalance_(std::move(rebalance)),
        consumer_(std::move(consumer)) {
    if (rebalance_) {
      rebalance_->handler = [this](RdKafka::KafkaConsumer* c,
                                   RdKafka::ErrorCode err,
                                   auto& parts) { OnRebalance(c, err, parts); };
    }
  }

  ~KafkaSource() override { consumer_->close(); }

  Status Assign(const std::map<int32_t, int64_t>& next_offsets) override {
    if (assigned_) return Rewind(next_offsets);
    CFREC_RETURN_IF_ERROR(LoadPartitions());
    if (options_.join_group) {
      // Partitions arrive through OnRebalance, inside Poll.
      initial_offsets_ = next_offsets;
      auto err = consumer_->subscribe({options_.topic});
      if (err != RdKafka::ERR_NO_ERROR) {
        return Status::Unavailable("subscribe: " + RdKafka::err2str(err));
      }
      assigned_ = true;
      return Status::Ok();
    }
    next_ = {};
    for (int32_t p : partitions_) {
      auto it = next_offsets.find(p);
      next_[p] = it == next_offsets.end() ? RdKafka::Topic::OFFSET_BEGINNING
                                          : it->second;
    }
    std::vector<RdKafka::TopicPartition*> parts;
    for (const auto& [p, off] : next_) {
      parts.push_back(RdKafka::TopicPartition::create(options_.topic, p, off));
    }
    auto err = consumer_->assign(parts);
    RdKafka::TopicPartition::destroy(parts);
    if (err != RdKafka::ERR_NO_ERROR) {
      return Status::Unavailable("assign: " + RdKafka::err2str(err));
    }
    assigned_ = true;
    return Status::Ok();
  }

  Status Poll(size_t max, std::chrono::milliseconds timeout,
              std::vector<SourceMessage>* out) override {
    int wait_ms = static_cast<int>(timeout.count());
    size_t got = 0;
    while (got < max) {
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(wait_ms));
      wait_ms = 0;  // only the first message may wait
      switch (msg->err()) {
        case RdKafka::ERR_NO_ERROR: {
          if (got == 0) watch_->MarkReachable();
          SourceMessage m;
          m.topic = msg->topic_name();
          m.partition = msg->partition();
          m.offset = msg->offset();
          if (msg->key() != nullptr) m.key = *msg->key();
          m.payload.assign(static_cast<const char*>(msg->payload()),
                           msg->len());
          next_[m.partition] = m.offset + 1;
          if (!restarting_.empty()) restarting_.erase(m.partition);
          out->push_back(std::move(m));
          ++got;
          break;
        }
        case RdKafka::ERR__TIMED_OUT:
        case RdKafka::ERR__PARTITION_EOF:
          return Status::Ok();
        case RdKafka::ERR__AUTO_OFFSET_RESET:
        case RdKafka::ERR_OFFSET_OUT_OF_RANGE:
          CFREC_RETURN_IF_ERROR(HandleGap(msg->partition(), msg->offset()));
          return Status::Ok();
        default:
          // Errors of a partition's fetch: librdkafka retries by itself;
          // log (rate-limited) and keep going. Client-wide errors (broker
          // down, transport) go to the BrokerWatch.
          if (errors_++ % 100 == 0) {
            LogWarn("consumer", "Kafka: " + msg->errstr() + " (" +
                                    std::to_string(errors_) + " so far)");
          }
          return Status::Ok();
      }
    }
    return Status::Ok();
  }

  // One ListOffsets request per leader for every partition at once
  // (timestamp -1 asks for the end of the log), bounded in time. Asking
  // partition by partition with query_watermark_offsets waited up to 5 s
  // each, 80 s for 16 partitions while the broker was down, and the status
  // line, the lag gauge and the shutdown waited with it.
  Result<std::map<int32_t, int64_t>> HighWatermarks() override {
    if (partitions_.empty()) CFREC_RETURN_IF_ERROR(LoadPartitions());
    if (const BrokerHealth h = watch_->Health();
        h.unreachable_since.has_value()) {
      return Status::Unavailable("Kafka unreachable (" + h.last_error + ")");
    }
    std::vector<RdKafka::TopicPartition*> parts;
    for (int32_t p : partitions_) {
      parts.push_back(RdKafka::TopicPartition::create(
          options_.topic, p, RdKafka::Topic::OFFSET_END));
    }
    auto err = consumer_->offsetsForTimes(parts, kWatermarkTimeoutMs);
    std::map<int32_t, int64_t> out;
    for (const auto* tp : parts) {
      if (err == RdKafka::ERR_NO_ERROR && tp->err() != RdKafka::ERR_NO_ERROR) {
        err = tp->err();
      }
      out[tp->partition()] = tp->offset();
    }
    RdKafka::TopicPartition::destroy(parts);
    if (err != RdKafka::ERR_NO_ERROR) {
      return Status::Unavailable("high watermarks of " + options_.topic + ": " +
                                 RdKafka::err2str(err));
    }
    return out;
  }

  std::map<int32_t, int64_t> CachedHighWatermarks() const override {
    std::map<int32_t, int64_t> out;
    for (int32_t p : partitions_) {
      int64_t low = RdKafka::Topic::OFFSET_INVALID;
      int64_t high = RdKafka::Topic::OFFSET_INVALID;
      if (consumer_->get_watermark_offsets(options_.topic, p, &low, &high) ==
              RdKafka::ERR_NO_ERROR &&
          high >= 0) {
        out[p] = high;
      }
    }
    return out;
  }

  BrokerHealth Health() const override { return watch_->Health(); }

  uint64_t gap_messages() const override { return gap_messages_; }

  Result<std::string> LogId() override {
    // The metadata request of LoadPartitions caches the cluster id.
    if (partitions_.empty()) CFREC_RETURN_IF_ERROR(LoadPartitions());
    const std::string cluster = consumer_->clusterid(5000);
    if (cluster.empty()) return std::string();
    return "kafka:" + cluster + "/" + options_.topic;
  }

  std::vector<int32_t> TakeRestartedPartitions() override {
    return std::exchange(restarted_, {});
  }

 private:
  Status LoadPartitions() {
    // Metadata of the topic; retried because a fresh broker may not know it
    // yet or be briefly unreachable.
    std::string err;
    std::unique_ptr<RdKafka::Topic> topic(
        RdKafka::Topic::create(consumer_.get(), options_.topic, nullptr, err));
    if (!topic) return Status::Internal("topic handle: " + err);
    for (int attempt = 0; attempt < 50; ++attempt) {
      RdKafka::Metadata* raw = nullptr;
      auto e = consumer_->metadata(false, topic.get(), &raw, 2000);
      std::unique_ptr<RdKafka::Metadata> md(raw);
      if (e == RdKafka::ERR_NO_ERROR && md && !md->topics()->empty()) {
        const auto* t = (*md->topics())[0];
        if (t->err() == RdKafka::ERR_NO_ERROR && !t->partitions()->empty()) {
          partitions_.clear();
          for (const auto* p : *t->partitions()) {
            partitions_.push_back(p->id());
          }
          return Status::Ok();
        }
      }
    }
    return Status::Unavailable("topic '" + options_.topic +
                               "' has no partitions at " + options_.brokers);
  }

  // The group's decisions, in the consumer's thread (inside consume()).
  // Assigned partitions start at the store's offsets, so the consumer that
  // gets a partition back resumes exactly where the store is; revoked ones
  // are released (a batch already polled from them is still applied: the
  // store skips what it holds).
  void OnRebalance(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                   std::vector<RdKafka::TopicPartition*>& parts) {
    std::string names;
    for (const auto* tp : parts) {
      names += (names.empty() ? "" : ",") + std::to_string(tp->partition());
    }
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      const std::map<int32_t, int64_t> stored = options_.stored_offsets
                                                    ? options_.stored_offsets()
                                                    : initial_offsets_;
      for (auto* tp : parts) {
        auto it = stored.find(tp->partition());
        const int64_t at =
            it == stored.end() ? RdKafka::Topic::OFFSET_BEGINNING : it->second;
        tp->set_offset(at);
        next_[tp->partition()] = at;
      }
      auto e = consumer->assign(parts);
      LogInfo("consumer",
              "group " + options_.group_id + " assigned partitions [" + names +
                  "] of " + options_.topic + " at the store's offsets" +
                  (e == RdKafka::ERR_NO_ERROR ? std::string()
                                              : ": " + RdKafka::err2str(e)));
    } else {
      for (const auto* tp : parts) {
        next_.erase(tp->partition());
        restarting_.erase(tp->partition());
      }
      consumer->unassign();
      LogInfo("consumer", "group " + options_.group_id +
                              " revoked partitions [" + names + "]" +
                              (err == RdKafka::ERR__REVOKE_PARTITIONS
                                   ? std::string()
                                   : " (" + RdKafka::err2str(err) + ")"));
    }
  }

  // Moves every partition to `next_offsets` (after a failed apply, to
  // re-read what was not stored). seek() keeps the assignment: a second
  // assign() while librdkafka 2.0.2 still stops the fetchers of the first
  // can stop a partition twice and abort the process
  // (rd_kafka_assignment_partition_stopped: assert rktp_started).
  Status Rewind(const std::map<int32_t, int64_t>& next_offsets) {
    for (auto& [p, next] : next_) {
      auto it = next_offsets.find(p);
      const int64_t to = it == next_offsets.end()
                             ? RdKafka::Topic::OFFSET_BEGINNING
                             : it->second;
      std::unique_ptr<RdKafka::TopicPartition> tp(
          RdKafka::TopicPartition::create(options_.topic, p, to));
      auto err = consumer_->seek(*tp, 5000);
      if (err == RdKafka::ERR_NO_ERROR) {
        next = to;
        restarting_.erase(p);
      } else if (err == RdKafka::ERR__STATE ||
                 err == RdKafka::ERR__PREV_IN_PROGRESS) {
        // Being restarted by HandleGap at the oldest offset the log has,
        // which is where a re-read can start at the earliest.
        LogWarn("consumer", "partition " + std::to_string(p) +
                                " is restarting after a gap; not rewound (" +
                                RdKafka::err2str(err) + ")");
      } else {
        return Status::Unavailable("seek of partition " + std::to_string(p) +
                                   ": " + RdKafka::err2str(err));
      }
    }
    return Status::Ok();
  }

  // Restarts the fetcher of one partition at `offset`. After an offset
  // error librdkafka has stopped fetching it (fetch state NONE), where
  // seek() fails with ERR__STATE; only a new assignment restarts it. The
  // incremental calls touch this partition alone: it is started (it just
  // fetched) and no stop of it is outstanding, so it is stopped once.
  // A full assign() here stopped every partition again, also those whose
  // stop from the previous assign() was still in flight; with several
  // partitions out of range at once that aborted the process in
  // rd_kafka_assignment_partition_stopped (assert rktp_started).
  Status RestartPartition(int32_t partition, int64_t offset) {
    std::vector<RdKafka::TopicPartition*> parts = {
        RdKafka::TopicPartition::create(options_.topic, partition, offset)};
    std::unique_ptr<RdKafka::Error> error(
        consumer_->incremental_unassign(parts));
    if (!error) error.reset(consumer_->incremental_assign(parts));
    RdKafka::TopicPartition::destroy(parts);
    if (error) {
      return Status::Unavailable("restarting partition " +
                                 std::to_string(partition) + ": " +
                                 error->str());
    }
    next_[partition] = offset;
    restarting_[partition] = offset;
    return Status::Ok();
  }

  // The offset asked for is not in the log. Either messages were dropped
  // before they were read (a gap: recorded as lost, reading continues at
  // the oldest offset the broker has: losing them silently is not an
  // option, stalling forever is not either), or the offset is past the end
  // of the log: the log restarted (topic recreated), and the partition is
  // read again from its start; nothing is lost.
  Status HandleGap(int32_t partition, int64_t error_offset) {
    if (auto it = restarting_.find(partition);
        it != restarting_.end() && it->second >= 0 && error_offset >= 0 &&
        error_offset != it->second) {
      // About the position before the restart: the restarted fetcher
      // starts at it->second, so its own errors name that offset.
      return Status::Ok();
    }
    // The offset fetched (past control records the consumer never sees).
    const int64_t wanted = error_offset >= 0 ? error_offset : next_[partition];
    int64_t low = 0, high = 0;
    auto err = consumer_->query_watermark_offsets(options_.topic, partition,
                                                  &low, &high, 5000);
    if (err != RdKafka::ERR_NO_ERROR) {
      LogWarn("consumer", "partition " + std::to_string(partition) +
                              ": offset " + std::to_string(wanted) +
                              " is out of range and the watermarks are "
                              "unknown (" +
                              RdKafka::err2str(err) + "); retrying there");
      return RestartPartition(partition, wanted);
    }
    const std::string where = "partition " + std::to_string(partition) + ": ";
    if (wanted > high) {
      restarted_.push_back(partition);
      LogError("consumer",
               where + "offset " + std::to_string(wanted) +
                   " is past the end of the log (high watermark " +
                   std::to_string(high) +
                   "): the log restarted (topic recreated?); reading it "
                   "again from its start (offset " +
                   std::to_string(low) +
                   "); nothing is lost, events already stored are not "
                   "applied twice");
      return RestartPartition(partition, low);
    }
    if (wanted >= 0 && wanted < low) {
      const int64_t lost = low - wanted;
      gap_messages_ += static_cast<uint64_t>(lost);
      LogError("consumer",
               where + "offsets " + std::to_string(wanted) + ".." +
                   std::to_string(low - 1) + " are gone from the log (" +
                   std::to_string(lost) + " messages lost); continuing at " +
                   std::to_string(low));
      return RestartPartition(partition, low);
    }
    // Within [low, high] now (the log moved under the fetch, or a logical
    // start offset): nothing was skipped.
    const int64_t at = wanted >= 0 ? wanted : low;
    LogWarn("consumer", where + "offset " + std::to_string(at) +
                            " was reported out of range but is in the log (" +
                            std::to_string(low) + ".." + std::to_string(high) +
                            "); retrying there");
    return RestartPartition(partition, at);
  }

  ConsumerOptions options_;
  // Declared before consumer_: it outlives the consumer that calls it.
  std::unique_ptr<BrokerWatch> watch_;
  std::unique_ptr<GroupRebalance> rebalance_;  // join_group only; the same
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::map<int32_t, int64_t> initial_offsets_;  // join_group: Assign's
  // Loaded before the first Assign and not changed after (read by the
  // thread-safe methods).
  std::vector<int32_t> partitions_;
  std::map<int32_t, int64_t> next_;
  bool assigned_ = false;
  std::vector<int32_t> restarted_;  // see TakeRestartedPartitions
  // Partitions restarted by RestartPartition at the given offset that have
  // delivered nothing since.
  std::map<int32_t, int64_t> restarting_;
  uint64_t gap_messages_ = 0;
  uint64_t errors_ = 0;
};

}  // namespace

Result<std::unique_ptr<MessageSource>> CreateKafkaSource(
    const ConsumerOptions& options) {
  if (options.brokers.empty()) {
    return Status::InvalidArgument("consumer: no bootstrap servers given");
  }
  std::unique_ptr<RdKafka::Conf> conf(
      RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  CFREC_RETURN_IF_ERROR(SetAll(
      conf.get(),
      {{"bootstrap.servers", options.brokers},
       {"group.id", options.group_id},
       {"enable.auto.commit", "false"},
       {"enable.auto.offset.store", "false"},
       // A missing offset is a gap to record, never a silent jump.
       {"auto.offset.reset", "error"},
       {"enable.partition.eof", "false"},
       {"fetch.wait.max.ms", std::to_string(options.fetch_wait_max_ms)},
       // Prefetch until the queue holds queued.max.messages.kbytes (64 MiB
       // by default) rather than 100,000 messages: librdkafka 2.0 stops
       // fetching at either limit and looks again only when its broker
       // thread next wakes, up to a second later, so a consumer behind a
       // filled topic sat idle for ~1 s per 100,000 messages (ingest from
       // a filled topic ran at ~114,000 messages/s whatever the store did).
       {"queued.min.messages", "1000000"},
       {"statistics.interval.ms",
        std::to_string(options.statistics_interval_ms)},
       {"reconnect.backoff.max.ms", std::to_string(kReconnectBackoffMaxMs)},
       {"log_level", "3"}}));
  CFREC_RETURN_IF_ERROR(SetAll(conf.get(), options.extra));
  std::string err;
  auto watch = std::make_unique<BrokerWatch>();
  if (conf->set("event_cb", watch.get(), err) != RdKafka::Conf::CONF_OK) {
    return Status::Internal(err);
  }
  std::unique_ptr<GroupRebalance> rebalance;
  if (options.join_group) {
    rebalance = std::make_unique<GroupRebalance>();
    if (conf->set("rebalance_cb", rebalance.get(), err) !=
        RdKafka::Conf::CONF_OK) {
      return Status::Internal(err);
    }
  }
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer) return Status::Unavailable("creating Kafka consumer: " + err);
  return std::unique_ptr<MessageSource>(new KafkaSource(
      options, std::move(watch), std::move(rebalance), std::move(consumer)));
}

}  // namespace cfrec::ingest
