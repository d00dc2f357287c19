#include "cfrec/ingest/ingestor.h"

#include <algorithm>
#include <string>

#include "cfrec/schemas/failpoint.h"
#include "cfrec/schemas/log.h"

namespace cfrec::ingest {

Ingestor::Ingestor(const IngestorOptions& options,
                   std::unique_ptr<MessageSource> source,
                   state::EventStore* store, AppliedCallback on_applied)
    : options_(options),
      source_(std::move(source)),
      store_(store),
      on_applied_(std::move(on_applied)) {}

Ingestor::~Ingestor() { Stop(); }

Status Ingestor::Assign() {
  CFREC_RETURN_IF_ERROR(CheckLogId());
  CFREC_RETURN_IF_ERROR(CheckOffsetsWithinLog());
  return source_->Assign(store_->NextOffsets(options_.topic));
}

namespace {

std::string DescribeOffsets(const std::map<int32_t, int64_t>& next) {
  int64_t sum = 0;
  for (const auto& [p, n] : next) sum += n;
  return std::to_string(next.size()) + " partitions, next offsets summing to " +
         std::to_string(sum);
}

}  // namespace

Status Ingestor::CheckLogId() {
  std::string log_id = options_.log_id;
  if (log_id.empty()) {
    auto from_source = source_->LogId();
    if (!from_source.ok()) return from_source.status();
    log_id = std::move(from_source).value();
  }
  const std::string& topic = options_.topic;
  if (log_id.empty()) {
    LogWarn("ingest",
            "the broker does not identify its log (no cluster id); "
            "the stored offsets of " +
                topic + " are used as they are");
    return Status::Ok();
  }
  auto stored = store_->LogId(topic);
  if (!stored.ok()) return stored.status();
  if (*stored == log_id) return Status::Ok();
  const auto next = store_->NextOffsets(topic);
  if (next.empty()) {
    return store_->SetLogId(topic, log_id, /*discard_offsets=*/false);
  }
  if (stored->empty() && !options_.discard_unidentified_offsets) {
    LogInfo("ingest", "topic " + topic + ": recording log " + log_id +
                          " for the stored offsets (" + DescribeOffsets(next) +
                          ")");
    return store_->SetLogId(topic, log_id, /*discard_offsets=*/false);
  }
  const std::string old =
      stored->empty() ? std::string("a log before this one (no id recorded)")
                      : "log " + *stored;
  CFREC_RETURN_IF_ERROR(store_->SetLogId(topic, log_id,
                                         /*discard_offsets=*/true));
  LogWarn("ingest",
          "topic " + topic + ": the stored offsets (" + DescribeOffsets(next) +
              ") belong to " + old + ", not to log " + log_id +
              " that the broker serves; discarded them: the new log is read "
              "from its start, events already stored are recognised by id "
              "and not applied twice");
  std::lock_guard lock(stats_mu_);
  ++stats_.log_changes;
  return Status::Ok();
}

Status Ingestor::CheckOffsetsWithinLog() {
  const auto next = store_->NextOffsets(options_.topic);
  if (next.empty()) return Status::Ok();
  auto high = source_->HighWatermarks();
  if (!high.ok()) {
    LogWarn("ingest", "cannot check the stored offsets against the log: " +
                          high.status().ToString());
    return Status::Ok();
  }
  std::vector<int32_t> restarted;
  for (const auto& [p, n] : next) {
    auto it = high->find(p);
    if (it == high->end() || n <= it->second) continue;
    restarted.push_back(p);
    LogError("ingest",
             "topic " + options_.topic + " partition " + std::to_string(p) +
                 ": the stored next offset " + std::to_string(n) +
                 " is past the end of the log (high watermark " +
                 std::to_string(it->second) +
                 "): the log restarted (topic recreated?); reading it again "
                 "from its start; nothing is lost, events already stored are "
                 "not applied twice");
  }
  if (restarted.empty()) return Status::Ok();
  CFREC_RETURN_IF_ERROR(store_->DiscardOffsets(options_.topic, restarted));
  std::lock_guard lock(stats_mu_);
  stats_.partition_restarts += restarted.size();
  return Status::Ok();
}

Status Ingestor::HandleRestartedPartitions() {
  for (int32_t p : source_->TakeRestartedPartitions()) {
    if (std::find(restarted_.begin(), restarted_.end(), p) ==
        restarted_.end()) {
      restarted_.push_back(p);
    }
  }
  if (restarted_.empty()) return Status::Ok();
  // The batch being written carries offsets of these partitions: it goes
  // first.
  CFREC_RETURN_IF_ERROR(CompleteInFlight());
  // Kept until discarded: a failure is retried before the next batch.
  CFREC_RETURN_IF_ERROR(store_->DiscardOffsets(options_.topic, restarted_));
  std::lock_guard lock(stats_mu_);
  stats_.partition_restarts += restarted_.size();
  restarted_.clear();
  return Status::Ok();
}

Status Ingestor::Start() {
  CFREC_RETURN_IF_ERROR(Assign());
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void Ingestor::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Ingestor::Account(state::ApplyOutcome&& outcome) {
  {
    std::lock_guard lock(stats_mu_);
    ++stats_.batches;
    stats_.phases += outcome.phases;
    stats_.messages += outcome.messages;
    stats_.impressions += outcome.impressions;
    stats_.clicks_joined += outcome.clicks_joined;
    stats_.clicks_pending += outcome.clicks_pending;
    stats_.duplicates += outcome.duplicates;
    stats_.redelivered += outcome.redelivered;
    stats_.dead_letters += outcome.dead_letters;
    stats_.gap_messages = source_->gap_messages();
  }
  if (outcome.dead_letters > 0 && LogEnabled(LogLevel::kDebug)) {
    Log(LogLevel::kDebug, "ingest",
        std::to_string(outcome.dead_letters) + " dead letters in a batch");
  }
  if (FailPointsEnabled()) {
    FailPoint("ingest.applied",
              std::to_string(outcome.messages) + " messages, applied seq " +
                  std::to_string(store_->Counters().applied_seq));
  }
  if (on_applied_ && !outcome.events.empty()) {
    on_applied_(std::move(outcome.events));
  }
}

Status Ingestor::CompleteInFlight() {
  if (!in_flight_) return Status::Ok();
  const auto t0 = std::chrono::steady_clock::now();
  auto done = store_->CompleteBatch();
  in_flight_ = false;
  {
    std::lock_guard lock(stats_mu_);
    stats_.apply_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
  }
  if (!done.ok()) return StorageFailed(done.status());
  if (done->has_value()) Account(std::move(**done));
  return Status::Ok();
}

Status Ingestor::StorageFailed(const Status& failure) {
  {
    std::lock_guard lock(stats_mu_);
    ++stats_.storage_errors;
  }
  // What was not applied is read again: rewind the source to the durable
  // offsets (after the batch still being written, if any, is).
  if (in_flight_) {
    auto done = store_->CompleteBatch();
    in_flight_ = false;
    if (done.ok() && done->has_value()) Account(std::move(**done));
  }
  CFREC_RETURN_IF_ERROR(source_->Assign(store_->NextOffsets(options_.topic)));
  return failure;
}

Result<size_t> Ingestor::RunOnce() {
  using Clock = std::chrono::steady_clock;
  // The batch being written (if any) is in the other buffer.
  std::vector<SourceMessage>& buffer = buffers_[turn_];
  buffer.clear();
  const auto t0 = Clock::now();
  CFREC_RETURN_IF_ERROR(HandleRestartedPartitions());
  // While a batch is being written, take what the consumer holds without
  // waiting: when nothing is there, finishing that batch comes first.
  CFREC_RETURN_IF_ERROR(source_->Poll(
      options_.max_batch,
      in_flight_ ? std::chrono::milliseconds(0) : options_.poll_timeout,
      &buffer));
  if (Status s = HandleRestartedPartitions(); !s.ok()) {
    // Re-read the batch once the offsets are discarded.
    return StorageFailed(s);
  }
  const auto t1 = Clock::now();
  {
    std::lock_guard lock(stats_mu_);
    const double seconds = std::chrono::duration<double>(t1 - t0).count();
    if (buffer.empty()) {
      stats_.idle_seconds += seconds;
    } else {
      stats_.poll_seconds += seconds;
    }
  }
  if (buffer.empty()) {
    CFREC_RETURN_IF_ERROR(CompleteInFlight());
    return size_t{0};
  }
  std::vector<state::ConsumedMessage> batch;
  batch.reserve(buffer.size());
  for (const auto& m : buffer) {
    batch.push_back({m.topic, m.partition, m.offset, m.key, m.payload});
  }
  Result<std::optional<state::ApplyOutcome>> done =
      std::optional<state::ApplyOutcome>();
  if (options_.pipeline) {
    done = store_->SubmitBatch(batch);
  } else if (auto applied = store_->ApplyBatch(batch); applied.ok()) {
    done = std::optional<state::ApplyOutcome>(std::move(applied).value());
  } else {
    done = applied.status();
  }
  const auto t2 = Clock::now();
  {
    std::lock_guard lock(stats_mu_);
    stats_.apply_seconds += std::chrono::duration<double>(t2 - t1).count();
  }
  // A failed write took the batch before this one with it; a failed build
  // left that one in flight (StorageFailed completes it).
  if (!done.ok()) return StorageFailed(done.status());
  // The store holds this batch now (in flight, or applied at once without
  // the pipeline or by a store that does not pipeline); the one before it
  // is done.
  in_flight_ = options_.pipeline;
  turn_ = (turn_ + 1) % buffers_.size();
  if (done->has_value()) Account(std::move(**done));
  return buffer.size();
}

void Ingestor::Loop() {
  while (!stop_.load()) {
    auto n = RunOnce();
    if (!n.ok()) {
      LogError("ingest", n.status().ToString() + "; retrying");
      std::this_thread::sleep_for(options_.retry_backoff);
    }
  }
  // The last batch submitted is applied before the thread ends.
  if (Status s = CompleteInFlight(); !s.ok()) {
    LogError("ingest", "the last batch was not applied: " + s.ToString());
  }
}

namespace {

double SecondsSince(
    const std::optional<std::chrono::steady_clock::time_point>& since) {
  if (!since.has_value()) return 0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       *since)
      .count();
}

}  // namespace

IngestStats Ingestor::Stats() const {
  const BrokerHealth health = source_->Health();
  std::lock_guard lock(stats_mu_);
  IngestStats stats = stats_;
  stats.brokers_up = health.brokers_up;
  stats.broker_outage_seconds = SecondsSince(health.unreachable_since);
  stats.broker_outages = health.outages;
  return stats;
}

std::string Ingestor::NotReadyReason() const {
  const BrokerHealth health = source_->Health();
  if (!health.unreachable_since.has_value()) return std::string();
  return "kafka unreachable for " +
         std::to_string(
             static_cast<int64_t>(SecondsSince(health.unreachable_since))) +
         " s" + (health.last_error.empty() ? "" : ": " + health.last_error);
}

Status Ingestor::UpdateLag() {
  auto asked = source_->HighWatermarks();
  const std::map<int32_t, int64_t> high =
      asked.ok() ? *asked : source_->CachedHighWatermarks();
  if (high.empty()) return asked.status();
  const auto next = store_->NextOffsets(options_.topic);
  int64_t lag = 0;
  for (const auto& [p, h] : high) {
    auto it = next.find(p);
    // A stored offset past the high watermark is not negative lag: it
    // belongs to another log (see CheckOffsetsWithinLog).
    lag += std::max<int64_t>(0, h - (it == next.end() ? 0 : it->second));
  }
  std::lock_guard lock(stats_mu_);
  stats_.consumer_lag = lag;
  return asked.status();
}

}  // namespace cfrec::ingest
