#include "cfrec/stream/stream_model.h"

#include <algorithm>

#include "coding.h"

namespace cfrec::stream {
namespace {

constexpr uint32_t kFormat = 2;         // 2: user exposure
constexpr uint64_t kEvictEvery = 4096;  // events between eviction passes

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

}  // namespace

StreamModel::StreamModel(StreamOptions options)
    : options_(options),
      counters_(options.evict_after_ms),
      exposure_(options.max_user_shown),
      model_(options.model) {}

uint64_t ListKey(uint32_t user, std::span<const uint32_t> items) {
  uint64_t h = Mix(0x12345, user);
  for (uint32_t i : items) h = Mix(h, i);
  return h;
}

void StreamModel::AddUserItem(UserState& u, uint32_t item) {
  auto at = std::lower_bound(u.clicked.begin(), u.clicked.end(), item);
  if (at != u.clicked.end() && *at == item) return;
  u.clicked.insert(at, item);
  u.order.push_back(item);
  while (u.order.size() > options_.max_user_items) {
    const uint32_t old = u.order.front();
    u.order.pop_front();
    auto it = std::lower_bound(u.clicked.begin(), u.clicked.end(), old);
    if (it != u.clicked.end() && *it == old) u.clicked.erase(it);
  }
}

std::span<const uint32_t> StreamModel::UserClicked(uint32_t user) const {
  auto it = users_.find(user);
  if (it == users_.end()) return {};
  return it->second.clicked;
}

void StreamModel::Rows(uint32_t user, std::span<const uint32_t> items,
                       std::span<const float> ranker,
                       const StreamScorer* served,
                       std::vector<FeatureRow>* rows) const {
  const std::span<const uint32_t> clicked = UserClicked(user);
  const int64_t now = counters_.now();
  const ItemCounts global = counters_.global().At(now);  // decayed once
  rows->resize(items.size());
  for (size_t k = 0; k < items.size(); ++k) {
    FeatureRow& row = (*rows)[k];
    if (served != nullptr) {
      const StreamScorer::ItemRow& r = served->ItemFeatureRow(items[k]);
      std::copy(r.begin(), r.end(), row.begin());
    } else {
      ItemFeatures(
          counters_.Find(items[k]), global, now,
          std::span<float, kNumItemFeatures>(row.data(), kNumItemFeatures));
    }
    std::optional<float> r;
    if (k < ranker.size()) r = ranker[k];
    UserItem pair;
    pair.clicked = std::binary_search(clicked.begin(), clicked.end(), items[k]);
    pair.shown = exposure_.Find(user, items[k]).count;
    UserFeatures(pair, r, row);
  }
}

void StreamModel::OnImpression(uint32_t user, int64_t ts_ms,
                               std::span<const uint32_t> items,
                               std::span<const uint16_t> clicked,
                               std::span<const uint32_t> history,
                               std::span<const float> ranker,
                               const StreamScorer* served) {
  ++stats_.impressions;
  // The clock first (features are taken at the list's own moment), then the
  // rows, then the list's own counts.
  counters_.AdvanceTo(ts_ms);
  UserState& u = users_[user];
  u.touched_ms = counters_.now();
  if (!u.history_counted && !history.empty()) {
    u.history_counted = true;
    for (uint32_t h : history) {
      counters_.AddHistory(h, ts_ms);
      AddUserItem(u, h);
    }
  }
  PendingList list;
  list.user = user;
  list.items.assign(items.begin(), items.end());
  Rows(user, items, ranker, served, &list.rows);
  list.clicked.assign(items.size(), 0);
  for (uint16_t p : clicked) {
    if (p < items.size()) list.clicked[p] = 1;
  }
  // Clicks that came with the list: everything is known, train now.
  list.trained = !clicked.empty();
  list.shown_ms = counters_.now();
  if (list.trained && model_.TrainList(list.rows, list.clicked)) {
    ++stats_.lists_trained;
  }
  for (uint32_t item : items) counters_.AddShown(item, ts_ms);
  exposure_.AddList(user, items);
  for (uint16_t p : clicked) {
    if (p >= items.size()) continue;
    counters_.AddClick(items[p], ts_ms);
    AddUserItem(u, items[p]);
    ++stats_.clicks;
  }
  const uint64_t key = ListKey(user, items);
  if (auto old = pending_.find(key); old != pending_.end()) {
    // The same user shown the same list again: the earlier one is done.
    if (!old->second.trained &&
        model_.TrainList(old->second.rows, old->second.clicked)) {
      ++stats_.lists_trained;
    }
    pending_.erase(old);
  }
  list.seq = ++pending_seq_;
  pending_order_.push_back({key, list.seq});
  pending_.emplace(key, std::move(list));
  TrainMatured();
  if (++events_since_evict_ >= kEvictEvery) Evict();
}

void StreamModel::TrainMatured() {
  const int64_t now = counters_.now();
  while (!pending_order_.empty()) {
    auto it = pending_.find(pending_order_.front().first);
    if (it != pending_.end() &&
        it->second.seq != pending_order_.front().second) {
      it = pending_.end();  // the key was shown again since; that is later
    }
    const bool over = pending_order_.size() > options_.max_pending_lists;
    if (it != pending_.end() && !over &&
        it->second.shown_ms + options_.label_window_ms > now) {
      break;  // the oldest list may still get clicks
    }
    if (it != pending_.end()) {
      PendingList& list = it->second;
      // A list whose clicks came later trains once, with all of them.
      if (!list.trained && model_.TrainList(list.rows, list.clicked)) {
        ++stats_.lists_trained;
      }
      pending_.erase(it);
    }
    pending_order_.pop_front();
  }
}

void StreamModel::OnClick(uint32_t user, int64_t ts_ms,
                          std::span<const uint32_t> items, uint16_t pos) {
  if (pos >= items.size()) return;
  ++stats_.clicks;
  auto it = pending_.find(ListKey(user, items));
  if (it != pending_.end() && it->second.user == user &&
      it->second.items.size() == items.size() && !it->second.clicked[pos]) {
    PendingList& list = it->second;
    list.clicked[pos] = 1;
    // A list trained at once (inline clicks) learns a late click alone;
    // others wait for the label window to train with all their clicks.
    if (list.trained && model_.TrainClick(list.rows, list.clicked, pos)) {
      ++stats_.lists_trained;
    }
  } else if (it == pending_.end()) {
    ++stats_.clicks_unmatched;
  }
  counters_.AddClick(items[pos], ts_ms);
  UserState& u = users_[user];
  u.touched_ms = counters_.now();
  AddUserItem(u, items[pos]);
  TrainMatured();
  if (++events_since_evict_ >= kEvictEvery) Evict();
}

void StreamModel::Evict() {
  events_since_evict_ = 0;
  stats_.evicted_items += counters_.Evict();
  if (options_.evict_after_ms <= 0) return;
  const int64_t cutoff = counters_.now() - options_.evict_after_ms;
  std::erase_if(users_, [&](const auto& kv) {
    if (kv.second.touched_ms >= cutoff) return false;
    exposure_.Erase(kv.first);
    return true;
  });
}

std::shared_ptr<const StreamScorer> StreamModel::MakeScorer() const {
  StreamScorer::Source source;
  source.now_ms = counters_.now();
  source.global = counters_.global();
  source.items =
      std::make_shared<const StreamScorer::Counts>(counters_.items());
  return StreamScorer::FromCounts(std::move(source), model_.weights(),
                                  exposure_.MakeSnapshot());
}

StreamStats StreamModel::Stats() const {
  StreamStats s = stats_;
  s.items = counters_.size();
  s.users = users_.size();
  s.pending_lists = pending_.size();
  s.loss = model_.loss();
  return s;
}

std::string StreamModel::Serialize() const {
  std::string out;
  coding::Put(&out, kFormat);
  counters_.AppendTo(&out);
  model_.AppendTo(&out);
  std::vector<uint32_t> keys;
  keys.reserve(users_.size());
  for (const auto& kv : users_) keys.push_back(kv.first);
  std::sort(keys.begin(), keys.end());
  coding::Put(&out, static_cast<uint64_t>(keys.size()));
  for (uint32_t k : keys) {
    const UserState& u = users_.at(k);
    coding::Put(&out, k);
    coding::Put(&out, u.touched_ms);
    coding::Put(&out, static_cast<uint8_t>(u.history_counted));
    coding::Put(&out, static_cast<uint32_t>(u.order.size()));
    for (uint32_t i : u.order) coding::Put(&out, i);
  }
  exposure_.AppendTo(&out);
  coding::Put(&out, stats_.impressions);
  coding::Put(&out, stats_.clicks);
  coding::Put(&out, stats_.lists_trained);
  return out;
}

Status StreamModel::Deserialize(std::string_view in) {
  uint32_t format = 0;
  if (!coding::Get(&in, &format) || format != kFormat) {
    return Status::Corruption("stream model: unknown format");
  }
  ItemCounters counters(options_.evict_after_ms);
  CFREC_RETURN_IF_ERROR(counters.ReadFrom(&in));
  FeatureModel model(options_.model);
  CFREC_RETURN_IF_ERROR(model.ReadFrom(&in));
  uint64_t n = 0;
  if (!coding::Get(&in, &n) || n > in.size()) {
    return Status::Corruption("stream model: truncated users");
  }
  std::unordered_map<uint32_t, UserState> users;
  users.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t key = 0, count = 0;
    uint8_t counted = 0;
    UserState u;
    if (!coding::Get(&in, &key) || !coding::Get(&in, &u.touched_ms) ||
        !coding::Get(&in, &counted) || !coding::Get(&in, &count) ||
        count > in.size() / sizeof(uint32_t)) {
      return Status::Corruption("stream model: truncated user");
    }
    u.history_counted = counted != 0;
    for (uint32_t j = 0; j < count; ++j) {
      uint32_t item = 0;
      coding::Get(&in, &item);
      AddUserItem(u, item);
    }
    users.emplace(key, std::move(u));
  }
  UserExposure exposure(options_.max_user_shown);
  CFREC_RETURN_IF_ERROR(exposure.ReadFrom(&in));
  StreamStats stats;
  if (!coding::Get(&in, &stats.impressions) ||
      !coding::Get(&in, &stats.clicks) ||
      !coding::Get(&in, &stats.lists_trained)) {
    return Status::Corruption("stream model: truncated counters");
  }
  counters_ = std::move(counters);
  exposure_ = std::move(exposure);
  model_ = model;
  users_ = std::move(users);
  pending_.clear();  // soft state: clicks of lists shown before the restart
  pending_order_.clear();  // still count, but train nothing
  stats_ = stats;
  return Status::Ok();
}

}  // namespace cfrec::stream
