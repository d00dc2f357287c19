#include "cfrec/replica/publisher.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "cfrec/schemas/log.h"
#include "models_topic.h"

namespace cfrec::replica {
namespace {

using Clock = std::chrono::steady_clock;

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

Result<TopicScan> ScanModelsTopic(
    const std::string& brokers, const std::string& topic,
    std::chrono::milliseconds timeout,
    const std::map<std::string, std::string>& consumer_extra) {
  auto source =
      OpenModelsTopic(brokers, topic, "cfrec-models-scan", consumer_extra);
  if (!source.ok()) return source.status();
  auto high = (*source)->HighWatermarks();
  if (!high.ok()) return high.status();
  TopicScan scan;
  std::map<int32_t, int64_t> next;
  Assembler assembler;
  const auto deadline = Clock::now() + timeout;
  std::vector<ingest::SourceMessage> batch;
  while (!ReachedAll(*high, next)) {
    if (Clock::now() >= deadline) {
      return Status::Unavailable("reading " + topic + " took over " +
                                 std::to_string(timeout.count()) + " ms");
    }
    batch.clear();
    CFREC_RETURN_IF_ERROR(
        (*source)->Poll(64, std::chrono::milliseconds(100), &batch));
    for (const ingest::SourceMessage& m : batch) {
      next[m.partition] = m.offset + 1;
      ++scan.messages;
      std::string_view payload;
      auto h = ParseChunk(m.key, m.payload, &payload);
      if (h.ok()) scan.max_version = std::max(scan.max_version, h->version);
      auto image = assembler.Add(m.key, m.payload);
      if (image.has_value() && image->header.kind == ImageKind::kFull &&
          image->header.version >= scan.newest_full_version) {
        scan.newest_full_slot = image->header.slot;
        scan.newest_full_version = image->header.version;
      }
    }
  }
  return scan;
}

struct ModelPublisher::Impl {
  PublisherOptions options;
  const learner::SnapshotHolder* source = nullptr;
  learner::SnapshotHolder* served = nullptr;
  std::function<IdSource()> ids;
  std::unique_ptr<ModelsProducer> producer;

  // Publisher thread only.
  EncodedBase base;
  uint64_t base_published_version = 0;
  uint64_t last_internal = 0;
  uint8_t current_slot = 0;    // slot of the newest published full image
  uint8_t next_full_slot = 0;  // where the next full image goes
  uint32_t delta_number = 0;
  Clock::time_point next_full;
  uint64_t failures_logged = 0;
  uint64_t topic_max_version = 0;  // read at Start
  bool offset_chosen = false;      // guarded by mu

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  PublisherStats stats;  // guarded by mu
  std::thread thread;

  void Run() {
    next_full = Clock::now();
    while (true) {
      bool stopping = false;
      {
        std::unique_lock lock(mu);
        cv.wait_for(lock, options.delta_interval, [&] { return stop; });
        stopping = stop;
      }
      PublishOnce();
      if (stopping) break;
    }
  }

  void PublishOnce() {
    std::shared_ptr<const learner::ModelSnapshot> snap = source->Get();
    if (snap == nullptr) return;
    if (base.snapshot != nullptr && snap->version() == last_internal) return;
    uint64_t version_base;
    {
      std::lock_guard lock(mu);
      if (!offset_chosen) {
        // The trainer's own numbers when they are above everything on the
        // topic (the learner reserves versions across restarts); else
        // shifted just above the topic's highest.
        stats.version_base = snap->version() > topic_max_version
                                 ? 0
                                 : topic_max_version - snap->version() + 1;
        offset_chosen = true;
      }
      version_base = stats.version_base;
    }
    const uint64_t version = version_base + snap->version();
    bool full = base.snapshot == nullptr || Clock::now() >= next_full;
    const IdSource id_source = ids();
    const int64_t published = UnixMs();
    auto start = Clock::now();
    EncodeStats changes;
    auto image = EncodeModel(*snap, id_source, version, full ? nullptr : &base,
                             base_published_version, published, &changes);
    // A delta of most rows costs about as much as a full image, which
    // also starts a new chain (a replica that lost a delta recovers) and
    // lets compaction drop the old one: send that instead.
    if (!full && image.ok() && 2 * changes.changed_rows > changes.total_rows) {
      full = true;
      image = EncodeModel(*snap, id_source, version, nullptr, 0, published,
                          &changes);
    }
    const double encode_ms = MsSince(start);
    if (!image.ok()) {
      Fail(version, image.status());
      return;
    }
    const uint8_t slot = full ? next_full_slot : current_slot;
    const uint32_t number = full ? 0 : delta_number + 1;
    const auto chunks = MakeChunks(*image, slot, number, options.chunk_bytes);
    start = Clock::now();
    Status sent = producer->SendAll(chunks, options.delivery_timeout);
    const double send_ms = MsSince(start);
    if (!sent.ok()) {
      Fail(version, sent);
      return;
    }
    if (full) {
      current_slot = slot;
      next_full_slot = static_cast<uint8_t>(1 - slot);
      delta_number = 0;
      next_full = Clock::now() + options.full_interval;
    } else {
      delta_number = number;
    }
    base = {snap, id_source.num_users, id_source.num_items};
    base_published_version = version;
    last_internal = snap->version();
    served->Publish(WithVersion(snap, version));
    std::lock_guard lock(mu);
    ++(full ? stats.fulls : stats.deltas);
    stats.bytes += image->size();
    if (full) stats.full_bytes += image->size();
    stats.messages += chunks.size();
    stats.last_version = version;
    stats.last_bytes = image->size();
    stats.last_encode_ms = encode_ms;
    stats.last_send_ms = send_ms;
    stats.last_publish_unix_ms = published;
    stats.last_changes = changes;
  }

  // A version that could not be published: the next one is a full image
  // (replicas may hold part of this one, never all of it).
  void Fail(uint64_t version, const Status& why) {
    base = {};
    {
      std::lock_guard lock(mu);
      ++stats.failures;
    }
    if (failures_logged++ % 30 == 0) {
      LogError("publisher", "version " + std::to_string(version) +
                                " not published: " + why.ToString() +
                                " (the next one is a full image)");
    }
  }
};

ModelPublisher::ModelPublisher(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

ModelPublisher::~ModelPublisher() { Stop(); }

Result<std::unique_ptr<ModelPublisher>> ModelPublisher::Start(
    const PublisherOptions& options, const learner::SnapshotHolder* source,
    learner::SnapshotHolder* served, std::function<IdSource()> ids) {
  if (options.brokers.empty()) {
    return Status::InvalidArgument("publisher: no bootstrap servers given");
  }
  if (options.delta_interval.count() <= 0 ||
      options.full_interval < options.delta_interval) {
    return Status::InvalidArgument(
        "publisher: the full interval must be at least the delta interval, "
        "and both positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->source = source;
  impl->served = served;
  impl->ids = std::move(ids);
  auto scan = ScanModelsTopic(options.brokers, options.topic,
                              options.scan_timeout, options.consumer_extra);
  if (!scan.ok()) {
    return scan.status().WithContext("reading the models topic " +
                                     options.topic);
  }
  impl->topic_max_version = scan->max_version;
  // The newest complete full image stays untouched until the next one is
  // complete in the other slot.
  impl->next_full_slot = scan->newest_full_slot == 0 ? uint8_t{1} : uint8_t{0};
  impl->current_slot = impl->next_full_slot;
  LogInfo("publisher",
          "models topic " + options.topic + ": " +
              std::to_string(scan->messages) + " messages, newest version " +
              std::to_string(scan->max_version) +
              (scan->newest_full_slot >= 0
                   ? ", newest full image v" +
                         std::to_string(scan->newest_full_version) +
                         " in slot " + std::to_string(scan->newest_full_slot)
                   : std::string(", no full image")) +
              "; publishing versions above it");
  auto producer = ModelsProducer::Create(options.brokers, options.topic,
                                         options.producer_extra);
  if (!producer.ok()) return producer.status();
  impl->producer = std::move(producer).value();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<ModelPublisher>(new ModelPublisher(std::move(impl)));
}

void ModelPublisher::Stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

PublisherStats ModelPublisher::Stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

}  // namespace cfrec::replica
