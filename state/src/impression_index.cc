#include "impression_index.h"

#include <algorithm>
#include <memory>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "coding.h"
#include "records.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kTailPrefix = "user_log_tail";

// Time order as format 2's keys gave it: ts (as its BE64 bytes), then id.
bool Earlier(uint64_t ts_a, std::string_view id_a, uint64_t ts_b,
             std::string_view id_b) {
  return ts_a != ts_b ? ts_a < ts_b : id_a < id_b;
}

// A tail row: varint count, then per impression varint user, varint ts and
// the length-prefixed id.
void EncodeTail(const std::vector<IndexedImpression>& entries,
                std::string* out) {
  out->clear();
  coding::PutVarint(out, entries.size());
  for (const IndexedImpression& e : entries) {
    coding::PutVarint(out, e.user);
    coding::PutVarint(out, static_cast<uint64_t>(e.ts_ms));
    coding::PutLengthPrefixed(out, e.impression_id);
  }
}

Status DecodeTail(std::string_view v, std::vector<IndexedImpression>* out) {
  coding::Reader r(v);
  uint64_t n = 0;
  if (!r.Varint(&n)) return Status::Corruption("user log tail row");
  for (uint64_t i = 0; i < n; ++i) {
    IndexedImpression e;
    uint64_t ts = 0;
    std::string_view id;
    if (!r.VarintAs(&e.user) || !r.Varint(&ts) || !r.LengthPrefixed(&id)) {
      return Status::Corruption("user log tail row");
    }
    e.ts_ms = static_cast<int64_t>(ts);
    e.impression_id = id;
    out->push_back(std::move(e));
  }
  if (!r.done()) return Status::Corruption("user log tail row");
  return Status::Ok();
}

struct Found {
  uint64_t ts;
  std::string id;
};

// The ids of the first `limit` of `found` by ts, then id, each once.
std::vector<std::string> FirstInTimeOrder(std::vector<Found> found,
                                          size_t limit) {
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return Earlier(a.ts, a.id, b.ts, b.id);
  });
  found.erase(std::unique(found.begin(), found.end(),
                          [](const Found& a, const Found& b) {
                            return a.ts == b.ts && a.id == b.id;
                          }),
              found.end());
  if (found.size() > limit) found.resize(limit);
  std::vector<std::string> ids;
  ids.reserve(found.size());
  for (Found& f : found) ids.push_back(std::move(f.id));
  return ids;
}

}  // namespace

Status ImpressionIndex::Load() {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), db_.cf(kMeta)));
  std::vector<IndexedImpression> entries;
  for (it->Seek(kTailPrefix); it->Valid() && it->key().starts_with(kTailPrefix);
       it->Next()) {
    CFREC_RETURN_IF_ERROR(DecodeTail(it->value().ToStringView(), &entries));
    tail_keys_.push_back(it->key().ToString());
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading user log tail"));
  std::lock_guard lock(mu_);
  window_ = std::move(entries);
  newest_.clear();
  prev_.clear();
  return Status::Ok();
}

void ImpressionIndex::Stage(std::vector<IndexedImpression> entries,
                            uint64_t applied_seq, rocksdb::WriteBatch* wb) {
  const Staged* earlier = staged_count_ > 0 ? &staged_[staged_head_] : nullptr;
  Staged& s = staged_[(staged_head_ + staged_count_) % staged_.size()];
  ++staged_count_;
  s.entries = std::move(entries);
  s.tail_key.clear();
  s.closes = false;

  // The open window as it will be once the earlier batch is published.
  std::vector<const std::vector<IndexedImpression>*> parts;
  if (earlier == nullptr || !earlier->closes) {
    parts.push_back(&window_);
    if (earlier != nullptr) parts.push_back(&earlier->entries);
  }
  parts.push_back(&s.entries);
  size_t open = 0;
  for (const auto* part : parts) open += part->size();

  if (open >= window_impressions_) {
    s.closes = true;
    WriteWindow(parts, applied_seq, wb);
    for (const std::string& key : tail_keys_) {
      wb->Delete(db_.cf(kMeta), key).PermitUncheckedError();
    }
    if (earlier != nullptr && !earlier->tail_key.empty()) {
      wb->Delete(db_.cf(kMeta), earlier->tail_key).PermitUncheckedError();
    }
    return;
  }
  if (s.entries.empty()) return;
  s.tail_key.assign(kTailPrefix);
  coding::PutBE64(&s.tail_key, applied_seq);
  EncodeTail(s.entries, &value_);
  wb->Put(db_.cf(kMeta), s.tail_key, value_).PermitUncheckedError();
}

void ImpressionIndex::WriteWindow(
    const std::vector<const std::vector<IndexedImpression>*>& parts,
    uint64_t applied_seq, rocksdb::WriteBatch* wb) {
  sorted_.clear();
  for (const auto* part : parts) {
    for (const IndexedImpression& e : *part) sorted_.push_back(&e);
  }
  std::sort(sorted_.begin(), sorted_.end(),
            [](const IndexedImpression* a, const IndexedImpression* b) {
              if (a->user != b->user) return a->user < b->user;
              return Earlier(static_cast<uint64_t>(a->ts_ms), a->impression_id,
                             static_cast<uint64_t>(b->ts_ms), b->impression_id);
            });
  // One row per user, in key order.
  for (size_t i = 0; i < sorted_.size();) {
    const UserIndex user = sorted_[i]->user;
    size_t end = i;
    while (end < sorted_.size() && sorted_[end]->user == user) ++end;
    value_.clear();
    coding::PutVarint(&value_, end - i);
    for (; i < end; ++i) {
      coding::PutVarint(&value_, static_cast<uint64_t>(sorted_[i]->ts_ms));
      coding::PutLengthPrefixed(&value_, sorted_[i]->impression_id);
    }
    key_.clear();
    coding::PutBE32(&key_, user);
    coding::PutBE64(&key_, applied_seq);
    wb->Put(db_.cf(kUserLog), key_, value_).PermitUncheckedError();
  }
  // time_index: ts (BE64) · impression id -> user (BE32), in key order.
  std::sort(sorted_.begin(), sorted_.end(),
            [](const IndexedImpression* a, const IndexedImpression* b) {
              return Earlier(static_cast<uint64_t>(a->ts_ms), a->impression_id,
                             static_cast<uint64_t>(b->ts_ms), b->impression_id);
            });
  for (const IndexedImpression* e : sorted_) {
    char user_value[4];
    coding::EncodeBE32(user_value, e->user);
    TimeKey(e->ts_ms, e->impression_id, &key_);
    wb->Put(db_.cf(kTimeIndex), key_,
            rocksdb::Slice(user_value, sizeof(user_value)))
        .PermitUncheckedError();
  }
  sorted_.clear();
}

void ImpressionIndex::Publish() {
  if (staged_count_ == 0) return;
  Staged& s = staged_[staged_head_];
  {
    std::lock_guard lock(mu_);
    if (s.closes) {
      window_.clear();
      newest_.clear();
      prev_.clear();
    } else {
      window_.insert(window_.end(), std::make_move_iterator(s.entries.begin()),
                     std::make_move_iterator(s.entries.end()));
    }
  }
  if (s.closes) {
    tail_keys_.clear();
  } else if (!s.tail_key.empty()) {
    tail_keys_.push_back(s.tail_key);
  }
  s.entries.clear();
  staged_head_ = (staged_head_ + 1) % staged_.size();
  --staged_count_;
}

size_t ImpressionIndex::window_size() const {
  std::lock_guard lock(mu_);
  return window_.size();
}

uint32_t ImpressionIndex::NewestOf(UserIndex user) const {
  for (size_t i = prev_.size(); i < window_.size(); ++i) {
    auto [it, added] =
        newest_.try_emplace(window_[i].user, static_cast<uint32_t>(i));
    prev_.push_back(added ? kNone : it->second);
    it->second = static_cast<uint32_t>(i);
  }
  const auto it = newest_.find(user);
  return it == newest_.end() ? kNone : it->second;
}

namespace {

// Calls `row(ts, id)` for each impression of a user_log row of `user`
// (either format); false on a malformed row.
template <typename F>
bool ForEachInRow(std::string_view key, std::string_view value, F&& row) {
  if (key.size() > 12) {
    // Format 2: one row per impression, ts and id in the key.
    row(coding::GetBE64(key.data() + 4), key.substr(12));
    return true;
  }
  if (key.size() != 12) return false;
  coding::Reader r(value);
  uint64_t n = 0;
  if (!r.Varint(&n)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t ts = 0;
    std::string_view id;
    if (!r.Varint(&ts) || !r.LengthPrefixed(&id)) return false;
    row(ts, id);
  }
  return r.done();
}

}  // namespace

Result<std::vector<std::string>> ImpressionIndex::Find(UserIndex user,
                                                       int64_t from_ms,
                                                       int64_t to_ms,
                                                       size_t limit) const {
  if (from_ms < 0) from_ms = 0;
  if (to_ms <= from_ms || limit == 0) return std::vector<std::string>();
  const auto in_range = [from_ms, to_ms](uint64_t ts) {
    const auto t = static_cast<int64_t>(ts);
    return ts >= static_cast<uint64_t>(from_ms) && t < to_ms;
  };
  std::vector<Found> found;
  // The open window first, then the rows: a window closed in between is
  // seen twice (its impressions are told apart by id below), never missed.
  {
    std::lock_guard lock(mu_);
    for (uint32_t i = NewestOf(user); i != kNone; i = prev_[i]) {
      const IndexedImpression& e = window_[i];
      if (in_range(static_cast<uint64_t>(e.ts_ms))) {
        found.push_back({static_cast<uint64_t>(e.ts_ms), e.impression_id});
      }
    }
  }
  std::string prefix;
  coding::PutBE32(&prefix, user);
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), db_.cf(kUserLog)));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    const bool ok =
        ForEachInRow(it->key().ToStringView(), it->value().ToStringView(),
                     [&](uint64_t ts, std::string_view id) {
                       if (in_range(ts)) found.push_back({ts, std::string(id)});
                     });
    if (!ok) return Status::Corruption("user log row");
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading user log"));
  return FirstInTimeOrder(std::move(found), limit);
}

Result<std::vector<std::string>> ImpressionIndex::FindNewest(
    UserIndex user, size_t limit) const {
  if (limit == 0) return std::vector<std::string>();
  // Each impression with its recency: 0 for the open window, k for the k-th
  // closed window from the newest, then the format-2 rows.
  struct Ranked {
    uint64_t rank;
    uint64_t ts;
    std::string id;
  };
  std::vector<Ranked> found;
  {
    std::lock_guard lock(mu_);
    for (uint32_t i = NewestOf(user); i != kNone; i = prev_[i]) {
      const IndexedImpression& e = window_[i];
      found.push_back({0, static_cast<uint64_t>(e.ts_ms), e.impression_id});
    }
  }
  // The user's rows backwards: format-3 rows (12-byte keys) newest window
  // first until `limit` impressions are found; format-2 rows (longer keys,
  // ts order) sort among them by their ts, so they are passed over, the
  // newest `limit` of them kept in case the format-3 rows are too few.
  std::string prefix;
  coding::PutBE32(&prefix, user);
  std::string upper;
  coding::PutBE32(&upper, user + 1);
  rocksdb::ReadOptions options;
  const rocksdb::Slice lower_bound(prefix);
  options.iterate_lower_bound = &lower_bound;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(options, db_.cf(kUserLog)));
  if (user == UINT32_MAX) {
    it->SeekToLast();
  } else {
    it->SeekForPrev(upper);
  }
  constexpr uint64_t kFormatTwo = UINT64_MAX;
  // The open window's ids: a row of a window closed since is not counted
  // again towards `limit`.
  std::unordered_set<std::string_view> open_ids;
  for (const Ranked& r : found) open_ids.insert(r.id);
  uint64_t window_rank = 0;
  size_t from_rows = 0;
  size_t format_two = 0;
  std::vector<Ranked> rows;
  for (; it->Valid() && it->key().starts_with(prefix) && from_rows < limit;
       it->Prev()) {
    const std::string_view key = it->key().ToStringView();
    const bool old_format = key.size() > 12;
    if (old_format && format_two >= limit) continue;
    const uint64_t rank = old_format ? kFormatTwo : ++window_rank;
    const bool ok = ForEachInRow(key, it->value().ToStringView(),
                                 [&](uint64_t ts, std::string_view id) {
                                   rows.push_back({rank, ts, std::string(id)});
                                   if (old_format) {
                                     ++format_two;
                                   } else if (!open_ids.contains(id)) {
                                     ++from_rows;
                                   }
                                 });
    if (!ok) return Status::Corruption("user log row");
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading user log"));
  open_ids.clear();
  found.insert(found.end(), std::make_move_iterator(rows.begin()),
               std::make_move_iterator(rows.end()));
  // Newest first, each impression once (a window that closed between the
  // two reads is in both; its open-window copy ranks first).
  std::sort(found.begin(), found.end(), [](const Ranked& a, const Ranked& b) {
    if (a.id != b.id) return a.id < b.id;
    return a.rank < b.rank;
  });
  found.erase(std::unique(found.begin(), found.end(),
                          [](const Ranked& a, const Ranked& b) {
                            return a.id == b.id;
                          }),
              found.end());
  std::sort(found.begin(), found.end(), [](const Ranked& a, const Ranked& b) {
    if (a.rank != b.rank) return a.rank < b.rank;
    return Earlier(b.ts, b.id, a.ts, a.id);
  });
  if (found.size() > limit) found.resize(limit);
  std::vector<Found> newest;
  newest.reserve(found.size());
  for (Ranked& r : found) newest.push_back({r.ts, std::move(r.id)});
  return FirstInTimeOrder(std::move(newest), limit);
}

Result<std::vector<std::string>> ImpressionIndex::FindInTime(
    int64_t from_ms, int64_t to_ms, size_t limit) const {
  if (from_ms < 0) from_ms = 0;
  if (to_ms <= from_ms || limit == 0) return std::vector<std::string>();
  std::vector<Found> found;
  {
    std::lock_guard lock(mu_);
    for (const IndexedImpression& e : window_) {
      if (e.ts_ms >= from_ms && e.ts_ms < to_ms) {
        found.push_back({static_cast<uint64_t>(e.ts_ms), e.impression_id});
      }
    }
  }
  // The rows' first `limit` in key order: with the window's they hold the
  // first `limit` of both.
  std::string start;
  coding::PutBE64(&start, static_cast<uint64_t>(from_ms));
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), db_.cf(kTimeIndex)));
  size_t rows = 0;
  for (it->Seek(start); it->Valid() && rows < limit; it->Next(), ++rows) {
    const std::string_view key = it->key().ToStringView();
    if (key.size() < 8) return Status::Corruption("time index key");
    const uint64_t ts = coding::GetBE64(key.data());
    if (static_cast<int64_t>(ts) >= to_ms) break;
    found.push_back({ts, std::string(key.substr(8))});
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading time index"));
  return FirstInTimeOrder(std::move(found), limit);
}

}  // namespace cfrec::state
