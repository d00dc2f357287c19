#include "broker_watch.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cfrec/schemas/log.h"

namespace cfrec::ingest {

using SteadyClock = std::chrono::steady_clock;

void BrokerWatch::event_cb(RdKafka::Event& event) {
  switch (event.type()) {
    case RdKafka::Event::EVENT_ERROR:
      OnError(event);
      break;
    case RdKafka::Event::EVENT_STATS:
      OnStats(event.str());
      break;
    case RdKafka::Event::EVENT_LOG:
      // With an event callback librdkafka no longer prints its log (only
      // levels up to log_level, 3 = errors, reach here).
      Log(event.severity() <= RdKafka::Event::EVENT_SEVERITY_ERROR
              ? LogLevel::kError
              : LogLevel::kWarn,
          "kafka", event.fac() + ": " + event.str());
      break;
    default:
      break;
  }
}

BrokerHealth BrokerWatch::Health() const {
  std::lock_guard lock(mu_);
  return health_;
}

void BrokerWatch::MarkReachable() {
  std::lock_guard lock(mu_);
  if (!health_.unreachable_since.has_value()) return;
  health_.brokers_up = std::max(health_.brokers_up, 1);
  ReachableLocked();
}

void BrokerWatch::OnError(RdKafka::Event& event) {
  const std::string what = RdKafka::err2str(event.err()) +
                           (event.str().empty() ? "" : ": " + event.str());
  std::lock_guard lock(mu_);
  health_.last_error = what;
  if (event.err() == RdKafka::ERR__ALL_BROKERS_DOWN) {
    health_.brokers_up = 0;
    UnreachableLocked(what);
    return;
  }
  // Transport errors, timeouts, ...: librdkafka reconnects by itself; log
  // (rate-limited) and keep going.
  if (event.fatal() || errors_++ % 100 == 0) {
    Log(event.fatal() ? LogLevel::kError : LogLevel::kWarn, "consumer",
        "Kafka: " + what + " (" + std::to_string(errors_) + " so far)");
  }
}

void BrokerWatch::OnStats(const std::string& text) {
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.contains("brokers") ||
      !doc["brokers"].is_object()) {
    return;
  }
  // Learned brokers (nodeid >= 0) are the cluster's; the bootstrap entries
  // ("configured", nodeid -1) are the same servers again, counted only
  // until metadata named the cluster's brokers. The internal and logical
  // (coordinator) entries are no connections of their own.
  int learned = 0, learned_up = 0, configured_up = 0;
  for (const auto& [name, b] : doc["brokers"].items()) {
    const std::string source = b.value("source", "");
    const bool up = b.value("state", "") == "UP";
    if (source == "learned") {
      ++learned;
      learned_up += up;
    } else if (source == "configured") {
      configured_up += up;
    }
  }
  std::lock_guard lock(mu_);
  health_.brokers_up = learned > 0 ? learned_up : configured_up;
  if (learned_up + configured_up > 0) {
    ReachableLocked();
  } else if (learned > 0) {
    UnreachableLocked("no broker connection is up");
  }
}

void BrokerWatch::UnreachableLocked(const std::string& why) {
  if (health_.unreachable_since.has_value()) return;
  health_.unreachable_since = SteadyClock::now();
  ++health_.outages;
  LogError("consumer", "Kafka unreachable: " + why);
}

void BrokerWatch::ReachableLocked() {
  if (!health_.unreachable_since.has_value()) return;
  const double seconds = std::chrono::duration<double>(
                             SteadyClock::now() - *health_.unreachable_since)
                             .count();
  health_.unreachable_since.reset();
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", seconds);
  LogInfo("consumer",
          std::string("Kafka reachable again after ") + text + " s");
}

}  // namespace cfrec::ingest
