#include "serving_window.h"

#include <algorithm>
#include <cstring>

namespace cfrec::learner {
namespace {

template <typename T>
void Put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

template <typename T>
bool Get(std::string_view& in, T& value) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(&value, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}

}  // namespace

int64_t ServingWindow::Cutoff() const {
  // Saturating: a newest time near the int64 limits (only a damaged
  // checkpoint holds one; the event parser bounds timestamps) must not
  // overflow.
  int64_t cutoff = 0;
  if (__builtin_sub_overflow(newest_ms_, window_ms_, &cutoff)) {
    return window_ms_ > 0 ? std::numeric_limits<int64_t>::min()
                          : std::numeric_limits<int64_t>::max();
  }
  return cutoff;
}

void ServingWindow::Observe(std::span<const state::AppliedEvent> events) {
  for (const state::AppliedEvent& e : events) {
    newest_ms_ = std::max(newest_ms_, e.ts_ms);
    uint32_t max_item = 0;
    for (uint32_t i : e.items) max_item = std::max(max_item, i);
    if (!e.items.empty() && max_item >= last_impression_ms_.size()) {
      last_impression_ms_.resize(max_item + 1, kNever);
      click_count_.resize(max_item + 1, 0);
    }
    if (e.kind == state::AppliedEvent::Kind::kImpression) {
      for (uint32_t i : e.items) {
        last_impression_ms_[i] = std::max(last_impression_ms_[i], e.ts_ms);
      }
    }
    for (uint16_t p : e.clicked) {
      if (p >= e.items.size()) continue;
      clicks_.emplace_back(e.ts_ms, e.items[p]);
      ++click_count_[e.items[p]];
    }
  }
  Expire();
}

void ServingWindow::Expire() {
  if (newest_ms_ == kNever) return;
  const int64_t cutoff = Cutoff();
  while (!clicks_.empty() && clicks_.front().first < cutoff) {
    --click_count_[clicks_.front().second];
    clicks_.pop_front();
  }
}

std::vector<uint32_t> ServingWindow::Candidates() const {
  std::vector<uint32_t> out;
  if (newest_ms_ == kNever) return out;
  const int64_t cutoff = Cutoff();
  for (size_t i = 0; i < last_impression_ms_.size(); ++i) {
    if (last_impression_ms_[i] != kNever && last_impression_ms_[i] >= cutoff) {
      out.push_back(static_cast<uint32_t>(i));
    }
  }
  return out;
}

std::vector<uint32_t> ServingWindow::Popular() const {
  std::vector<uint32_t> out = Candidates();
  std::stable_sort(out.begin(), out.end(), [&](uint32_t a, uint32_t b) {
    return click_count_[a] > click_count_[b];
  });
  return out;
}

std::string ServingWindow::Serialize() const {
  std::string out;
  Put<int64_t>(out, window_ms_);
  Put<int64_t>(out, newest_ms_);
  Put<uint64_t>(out, last_impression_ms_.size());
  for (int64_t t : last_impression_ms_) Put<int64_t>(out, t);
  Put<uint64_t>(out, clicks_.size());
  for (const auto& [ts, item] : clicks_) {
    Put<int64_t>(out, ts);
    Put<uint32_t>(out, item);
  }
  return out;
}

Status ServingWindow::Deserialize(std::string_view in) {
  int64_t window = 0, newest = 0;
  uint64_t items = 0, clicks = 0;
  if (!Get(in, window) || !Get(in, newest) || !Get(in, items) ||
      items > in.size() / sizeof(int64_t)) {
    return Status::Corruption("serving window state truncated");
  }
  std::vector<int64_t> last(items);
  for (auto& t : last) Get(in, t);
  if (!Get(in, clicks) || clicks > in.size() / 12) {
    return Status::Corruption("serving window state truncated");
  }
  std::deque<std::pair<int64_t, uint32_t>> log;
  std::vector<uint32_t> counts(items, 0);
  for (uint64_t k = 0; k < clicks; ++k) {
    int64_t ts = 0;
    uint32_t item = 0;
    Get(in, ts);
    Get(in, item);
    if (item >= items) return Status::Corruption("serving window click item");
    log.emplace_back(ts, item);
    ++counts[item];
  }
  // The configured window wins over the saved one (it may have changed).
  newest_ms_ = newest;
  last_impression_ms_ = std::move(last);
  clicks_ = std::move(log);
  click_count_ = std::move(counts);
  Expire();
  return Status::Ok();
}

}  // namespace cfrec::learner
