#include "cfrec/stream/item_counters.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "coding.h"

namespace cfrec::stream {
namespace {

constexpr double kMsPerHour = 3.6e6;

void DecayTo(ItemCounts& c, int64_t now_ms) {
  if (now_ms <= c.updated_ms) return;
  const double hours = double(now_ms - c.updated_ms) / kMsPerHour;
  for (int h = 0; h < kHalfLives; ++h) {
    const float f = static_cast<float>(std::exp2(-hours / kHalfLifeHours[h]));
    c.shows[h] *= f;
    c.clicks[h] *= f;
  }
  c.updated_ms = now_ms;
}

}  // namespace

ItemCounts ItemCounts::At(int64_t now_ms) const {
  ItemCounts c = *this;
  DecayTo(c, now_ms);
  return c;
}

ItemCounts& ItemCounters::Touch(uint32_t item, int64_t ts_ms) {
  if (ts_ms > now_ms_) now_ms_ = ts_ms;
  auto [it, inserted] = items_.try_emplace(item);
  ItemCounts& c = it->second;
  if (inserted) c.updated_ms = now_ms_;
  DecayTo(c, now_ms_);
  DecayTo(global_, now_ms_);
  c.touched_ms = now_ms_;
  return c;
}

void ItemCounters::AddShown(uint32_t item, int64_t ts_ms) {
  ItemCounts& c = Touch(item, ts_ms);
  if (c.first_shown_ms < 0) c.first_shown_ms = now_ms_;
  for (int h = 0; h < kHalfLives; ++h) {
    c.shows[h] += 1;
    global_.shows[h] += 1;
  }
  c.total_shows += 1;
  global_.total_shows += 1;
}

void ItemCounters::AddClick(uint32_t item, int64_t ts_ms) {
  ItemCounts& c = Touch(item, ts_ms);
  c.last_clicked_ms = now_ms_;
  for (int h = 0; h < kHalfLives; ++h) {
    c.clicks[h] += 1;
    global_.clicks[h] += 1;
  }
  c.total_clicks += 1;
  global_.total_clicks += 1;
}

void ItemCounters::AddHistory(uint32_t item, int64_t ts_ms) {
  ItemCounts& c = Touch(item, ts_ms);
  c.history_users += 1;
}

const ItemCounts* ItemCounters::Find(uint32_t item) const {
  auto it = items_.find(item);
  return it == items_.end() ? nullptr : &it->second;
}

size_t ItemCounters::Evict() {
  if (evict_after_ms_ <= 0 || now_ms_ == INT64_MIN) return 0;
  const int64_t cutoff = now_ms_ - evict_after_ms_;
  return std::erase_if(
      items_, [&](const auto& kv) { return kv.second.touched_ms < cutoff; });
}

namespace {

void PutCounts(std::string* out, const ItemCounts& c) {
  using coding::Put;
  Put(out, c.updated_ms);
  for (int h = 0; h < kHalfLives; ++h) Put(out, c.shows[h]);
  for (int h = 0; h < kHalfLives; ++h) Put(out, c.clicks[h]);
  Put(out, c.total_shows);
  Put(out, c.total_clicks);
  Put(out, c.history_users);
  Put(out, c.first_shown_ms);
  Put(out, c.last_clicked_ms);
  Put(out, c.touched_ms);
}

// Times AppendTo can have written: event times lie in [0, 9999-12-31] (the
// event parser's bound) and -1 means "never". Anything else is a damaged
// blob, and would overflow the decay's `now - updated`.
constexpr int64_t kMaxEventMs = 253402300799999;
bool ValidTime(int64_t ms) { return ms >= -1 && ms <= kMaxEventMs; }
bool ValidTimes(const ItemCounts& c) {
  return ValidTime(c.updated_ms) && ValidTime(c.first_shown_ms) &&
         ValidTime(c.last_clicked_ms) && ValidTime(c.touched_ms);
}

bool GetCounts(std::string_view* in, ItemCounts* c) {
  using coding::Get;
  bool ok = Get(in, &c->updated_ms);
  for (int h = 0; h < kHalfLives; ++h) ok = ok && Get(in, &c->shows[h]);
  for (int h = 0; h < kHalfLives; ++h) ok = ok && Get(in, &c->clicks[h]);
  return ok && Get(in, &c->total_shows) && Get(in, &c->total_clicks) &&
         Get(in, &c->history_users) && Get(in, &c->first_shown_ms) &&
         Get(in, &c->last_clicked_ms) && Get(in, &c->touched_ms);
}

}  // namespace

void ItemCounters::AppendTo(std::string* out) const {
  coding::Put(out, now_ms_);
  PutCounts(out, global_);
  coding::Put(out, static_cast<uint64_t>(items_.size()));
  // Sorted by item, so equal states give equal bytes.
  std::vector<uint32_t> keys;
  keys.reserve(items_.size());
  for (const auto& kv : items_) keys.push_back(kv.first);
  std::sort(keys.begin(), keys.end());
  for (uint32_t k : keys) {
    coding::Put(out, k);
    PutCounts(out, items_.at(k));
  }
}

Status ItemCounters::ReadFrom(std::string_view* in) {
  int64_t now = 0;
  ItemCounts global;
  uint64_t n = 0;
  if (!coding::Get(in, &now) || !GetCounts(in, &global) ||
      !coding::Get(in, &n) || n > in->size()) {
    return Status::Corruption("stream item counters: truncated header");
  }
  // INT64_MIN: a clock no event has started.
  if ((now != INT64_MIN && !ValidTime(now)) || !ValidTimes(global)) {
    return Status::Corruption("stream item counters: time out of range");
  }
  std::unordered_map<uint32_t, ItemCounts> items;
  items.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t k = 0;
    ItemCounts c;
    if (!coding::Get(in, &k) || !GetCounts(in, &c)) {
      return Status::Corruption("stream item counters: truncated item " +
                                std::to_string(i));
    }
    if (!ValidTimes(c)) {
      return Status::Corruption("stream item counters: time out of range");
    }
    items.emplace(k, c);
  }
  now_ms_ = now;
  global_ = global;
  items_ = std::move(items);
  return Status::Ok();
}

}  // namespace cfrec::stream
