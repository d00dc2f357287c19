#include "cfrec/replica/follower.h"

#include <atomic>
#include <mutex>
#include <random>
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

// Followers read on their own; the group id is only bookkeeping.
std::string GroupId() {
  std::random_device device;
  return "cfrec-replica-" + std::to_string(device());
}

}  // namespace

struct ModelFollower::Impl {
  FollowerOptions options;
  learner::SnapshotHolder* serve = nullptr;
  std::unique_ptr<ingest::MessageSource> source;
  std::map<int32_t, int64_t> start_high;  // the end at start
  std::map<int32_t, int64_t> next;        // offsets reached
  Assembler assembler;
  std::shared_ptr<const ModelState> state;  // the version served
  // Start-up: the newest complete full image and the deltas after it.
  std::optional<Assembler::Image> pending_full;
  std::vector<Assembler::Image> pending_deltas;
  uint64_t skips_logged = 0;

  std::atomic<bool> stop{false};
  std::thread thread;
  mutable std::mutex mu;
  FollowerStats stats;            // guarded by mu
  std::vector<double> latencies;  // guarded by mu

  void Run() {
    std::vector<ingest::SourceMessage> batch;
    while (!stop.load()) {
      batch.clear();
      Status s = source->Poll(16, std::chrono::milliseconds(100), &batch);
      if (!s.ok()) {
        LogWarn("follower", "reading " + options.topic + ": " + s.ToString());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      for (ingest::SourceMessage& m : batch) {
        next[m.partition] = m.offset + 1;
        auto image = assembler.Add(m.key, m.payload);
        {
          std::lock_guard lock(mu);
          stats.chunks = assembler.stats();
          stats.last_message_unix_ms = UnixMs();
        }
        if (image.has_value()) Take(std::move(*image));
      }
      bool caught_up;
      {
        std::lock_guard lock(mu);
        caught_up = stats.caught_up;
      }
      if (!caught_up &&
          (ReachedAll(start_high, next) || (batch.empty() && ReachedNow()))) {
        FinishStartUp();
      }
    }
  }

  // Whether the topic's current end is reached (after a quiet poll: the
  // start-up end may name offsets compaction removed).
  bool ReachedNow() {
    auto high = source->HighWatermarks();
    return high.ok() && ReachedAll(*high, next);
  }

  bool CaughtUp() {
    std::lock_guard lock(mu);
    return stats.caught_up;
  }

  void Take(Assembler::Image image) {
    if (!CaughtUp()) {
      if (image.header.kind == ImageKind::kFull) {
        pending_full = std::move(image);
        pending_deltas.clear();
      } else if (pending_full.has_value()) {
        pending_deltas.push_back(std::move(image));
      }
      return;
    }
    Apply(image, /*live=*/true);
  }

  void FinishStartUp() {
    if (pending_full.has_value()) {
      Apply(*pending_full, false);
      for (const auto& d : pending_deltas) Apply(d, false);
    }
    pending_full.reset();
    pending_deltas.clear();
    std::lock_guard lock(mu);
    stats.caught_up = true;
    LogInfo("follower",
            "read " + options.topic + " to its end: " +
                (state != nullptr
                     ? "serving version " + std::to_string(state->version)
                     : std::string("no complete model yet")));
  }

  void Apply(const Assembler::Image& image, bool live) {
    const ChunkHeader& h = image.header;
    const uint64_t held = state != nullptr ? state->version : 0;
    if (h.kind == ImageKind::kFull && state != nullptr && h.version <= held) {
      return;  // older than what is served
    }
    if (h.kind == ImageKind::kDelta &&
        (state == nullptr || h.base_version != held)) {
      if (state == nullptr || h.version > held) {
        std::lock_guard lock(mu);
        ++stats.deltas_skipped;
        if (skips_logged++ % 30 == 0) {
          LogWarn("follower",
                  "delta to version " + std::to_string(h.version) +
                      " is on version " + std::to_string(h.base_version) +
                      ", not the one held (" + std::to_string(held) +
                      "); waiting for the next full image");
        }
      }
      return;
    }
    const auto start = Clock::now();
    auto next_state =
        ApplyImage(h.kind == ImageKind::kFull ? nullptr : state, image.bytes);
    if (!next_state.ok()) {
      std::lock_guard lock(mu);
      ++stats.apply_failures;
      LogError("follower",
               "version " + std::to_string(h.version) +
                   " not applied: " + next_state.status().ToString());
      return;
    }
    state = std::move(next_state).value();
    serve->Publish(MakeReplicaSnapshot(state));
    const int64_t served_ms = UnixMs();
    std::lock_guard lock(mu);
    ++(h.kind == ImageKind::kFull ? stats.fulls_applied : stats.deltas_applied);
    stats.version = state->version;
    stats.last_apply_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    stats.last_latency_ms = double(served_ms - state->published_unix_ms);
    if (live) latencies.push_back(stats.last_latency_ms);
  }
};

ModelFollower::ModelFollower(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

ModelFollower::~ModelFollower() { Stop(); }

Result<std::unique_ptr<ModelFollower>> ModelFollower::Start(
    const FollowerOptions& options, learner::SnapshotHolder* serve) {
  if (options.brokers.empty()) {
    return Status::InvalidArgument("follower: no bootstrap servers given");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->serve = serve;
  auto source = OpenModelsTopic(options.brokers, options.topic, GroupId(),
                                options.consumer_extra);
  if (!source.ok()) {
    return source.status().WithContext("opening the models topic " +
                                       options.topic);
  }
  impl->source = std::move(source).value();
  auto high = impl->source->HighWatermarks();
  if (!high.ok()) return high.status().WithContext("models topic watermarks");
  impl->start_high = *high;
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<ModelFollower>(new ModelFollower(std::move(impl)));
}

void ModelFollower::Stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->stop = true;
  impl_->thread.join();
}

FollowerStats ModelFollower::Stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

std::vector<double> ModelFollower::Latencies() const {
  std::lock_guard lock(impl_->mu);
  return impl_->latencies;
}

}  // namespace cfrec::replica
