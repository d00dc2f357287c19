#include "cfrec/ingest/ingestor.h"

#include <string>

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
  return source_->Assign(store_->NextOffsets(options_.topic));
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

Result<size_t> Ingestor::RunOnce() {
  using Clock = std::chrono::steady_clock;
  buffer_.clear();
  const auto t0 = Clock::now();
  CFREC_RETURN_IF_ERROR(
      source_->Poll(options_.max_batch, options_.poll_timeout, &buffer_));
  const auto t1 = Clock::now();
  if (buffer_.empty()) {
    std::lock_guard lock(stats_mu_);
    stats_.idle_seconds += std::chrono::duration<double>(t1 - t0).count();
    return size_t{0};
  }
  std::vector<state::ConsumedMessage> batch;
  batch.reserve(buffer_.size());
  for (const auto& m : buffer_) {
    batch.push_back({m.topic, m.partition, m.offset, m.key, m.payload});
  }
  auto outcome = store_->ApplyBatch(batch);
  const auto t2 = Clock::now();
  if (!outcome.ok()) {
    {
      std::lock_guard lock(stats_mu_);
      ++stats_.storage_errors;
    }
    // Nothing of the batch was applied: rewind the source to the durable
    // offsets so the same messages are read again.
    CFREC_RETURN_IF_ERROR(source_->Assign(store_->NextOffsets(options_.topic)));
    return outcome.status();
  }
  {
    std::lock_guard lock(stats_mu_);
    ++stats_.batches;
    stats_.poll_seconds += std::chrono::duration<double>(t1 - t0).count();
    stats_.apply_seconds += std::chrono::duration<double>(t2 - t1).count();
    stats_.messages += outcome->messages;
    stats_.impressions += outcome->impressions;
    stats_.clicks_joined += outcome->clicks_joined;
    stats_.clicks_pending += outcome->clicks_pending;
    stats_.duplicates += outcome->duplicates;
    stats_.redelivered += outcome->redelivered;
    stats_.dead_letters += outcome->dead_letters;
    stats_.gap_messages = source_->gap_messages();
  }
  if (outcome->dead_letters > 0 && LogEnabled(LogLevel::kDebug)) {
    Log(LogLevel::kDebug, "ingest",
        std::to_string(outcome->dead_letters) + " dead letters in a batch");
  }
  const size_t n = buffer_.size();
  if (on_applied_ && !outcome->events.empty()) {
    on_applied_(std::move(outcome->events));
  }
  return n;
}

void Ingestor::Loop() {
  while (!stop_.load()) {
    auto n = RunOnce();
    if (!n.ok()) {
      LogError("ingest", n.status().ToString() + "; retrying");
      std::this_thread::sleep_for(options_.retry_backoff);
    }
  }
}

IngestStats Ingestor::Stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

Status Ingestor::UpdateLag() {
  auto high = source_->HighWatermarks();
  if (!high.ok()) return high.status();
  const auto next = store_->NextOffsets(options_.topic);
  int64_t lag = 0;
  for (const auto& [p, h] : *high) {
    auto it = next.find(p);
    lag += h - (it == next.end() ? 0 : it->second);
  }
  std::lock_guard lock(stats_mu_);
  stats_.consumer_lag = lag;
  return Status::Ok();
}

}  // namespace cfrec::ingest
