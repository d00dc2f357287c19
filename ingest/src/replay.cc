#include "cfrec/ingest/replay.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

namespace cfrec::ingest {

std::vector<ReplayEvent> ReplaySchedule(const std::vector<MindRow>& rows,
                                        int64_t click_delay_ms) {
  std::vector<ReplayEvent> events;
  events.reserve(rows.size() * 2);
  for (uint32_t r = 0; r < rows.size(); ++r) {
    events.push_back({rows[r].ts_ms, r, -1});
    for (size_t i = 0; i < rows[r].items.size(); ++i) {
      if (rows[r].clicked[i]) {
        events.push_back(
            {rows[r].ts_ms + click_delay_ms, r, static_cast<int32_t>(i)});
      }
    }
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const ReplayEvent& a, const ReplayEvent& b) {
                     return a.ts_ms < b.ts_ms;
                   });
  return events;
}

namespace {

void DrawBar(size_t done, size_t total, double seconds) {
  const int width = 40;
  const double frac = total ? static_cast<double>(done) / total : 1.0;
  const int fill = static_cast<int>(frac * width);
  std::fprintf(stderr, "\rreplay [%.*s%*s] %5.1f%% %zu/%zu events %.0f/s ",
               fill, "########################################", width - fill,
               "", frac * 100, done, total, seconds > 0 ? done / seconds : 0.0);
}

}  // namespace

Result<ReplaySummary> Replay(const std::vector<MindRow>& rows, EventSink* sink,
                             const ReplayOptions& options) {
  using Clock = std::chrono::steady_clock;
  const auto events = ReplaySchedule(rows, options.click_delay_ms);
  ReplaySummary summary;
  summary.rows = rows.size();
  const auto start = Clock::now();
  const int64_t t0 = events.empty() ? 0 : events.front().ts_ms;
  auto last_bar = start;
  std::string payload;
  auto stop = [&] { return options.stop && options.stop(); };
  for (size_t k = 0; k < events.size(); ++k) {
    const ReplayEvent& ev = events[k];
    if (stop()) {
      summary.stopped = true;
      break;
    }
    if (options.speed > 0) {
      const auto due = start + std::chrono::microseconds(static_cast<int64_t>(
                                   (ev.ts_ms - t0) * 1000.0 / options.speed));
      // In slices, so a stop request is seen within 100 ms.
      while (Clock::now() < due && !stop()) {
        std::this_thread::sleep_until(
            std::min(due, Clock::now() + std::chrono::milliseconds(100)));
      }
    }
    // The backlog is a few map lookups under locks: checked every 64
    // events, which bounds it to within 64 of max_backlog.
    if (options.backlog && (k & 63) == 0) {
      while (options.backlog() > options.max_backlog && !stop()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    if (stop()) {
      summary.stopped = true;
      break;
    }
    const MindRow& row = rows[ev.row];
    if (ev.item < 0) {
      payload = SerializeEvent(MindRowToImpression(row, false));
      ++summary.impressions;
    } else {
      payload = SerializeEvent(ClickEvent{row.impression_id, row.user_id,
                                          row.items[ev.item], ev.ts_ms});
      ++summary.clicks;
    }
    Status s = sink->Send(row.user_id, payload);
    while (s.code() == StatusCode::kResourceExhausted) {
      // The sink's queue is full: let deliveries drain, then try again.
      static_cast<void>(sink->Flush(std::chrono::milliseconds(10)));
      s = sink->Send(row.user_id, payload);
    }
    CFREC_RETURN_IF_ERROR(s);
    if (options.progress_bar && (k & 1023) == 0) {
      const auto now = Clock::now();
      if (now - last_bar > std::chrono::milliseconds(100)) {
        DrawBar(k, events.size(),
                std::chrono::duration<double>(now - start).count());
        last_bar = now;
      }
    }
  }
  CFREC_RETURN_IF_ERROR(sink->Flush(std::chrono::minutes(2)));
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (options.progress_bar) {
    DrawBar(events.size(), events.size(), summary.seconds);
    std::fputc('\n', stderr);
  }
  return summary;
}

}  // namespace cfrec::ingest
