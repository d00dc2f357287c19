// RocksDB implementation of EventStore. See event_store.h for the layout and
// the exactly-once argument.
#include "cfrec/state/event_store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/options_util.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "coding.h"
#include "id_dictionary.h"

namespace cfrec::state {
namespace {

// Column family indexes; kCfNames[i] is the name of family i.
enum Cf : size_t {
  kMeta = 0,  // RocksDB's "default" family
  kImpressions,
  kClicks,
  kPendingClicks,
  kUserLog,
  kTimeIndex,
  kItemStats,
  kDictionary,
  kOffsets,
  kAppliedLog,
  kCheckpoints,
  kDeadLetters,
  kNumCfs,
};
constexpr std::array<const char*, kNumCfs> kCfNames = {
    "default",  "impressions", "clicks",      "pending_clicks",
    "user_log", "time_index",  "item_stats",  "dictionary",
    "offsets",  "applied_log", "checkpoints", "dead_letters",
};

constexpr char kSep = '\0';  // ids never contain control characters
constexpr std::string_view kCountersKey = "counters";
constexpr std::string_view kStatsSeqKey = "item_stats_seq";
constexpr int kStatsFlushBatches = 64;
constexpr std::string_view kLogIdKey = "log_id";  // + kSep + topic
constexpr std::string_view kFormatKey = "format";
constexpr std::string_view kFormatVersion = "cfrec-state-1";

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string m(what);
  m += ": ";
  m += s.ToString();
  if (s.IsNotFound()) return Status::NotFound(std::move(m));
  if (s.IsCorruption()) return Status::Corruption(std::move(m));
  if (s.IsInvalidArgument()) return Status::InvalidArgument(std::move(m));
  return Status::IOError(std::move(m));
}

// item_stats values: impressions, clicks and last impression time as three
// little-endian u64. Item stats are a pure function of the applied log: they
// are kept in memory, written for the items touched since the last flush
// every kStatsFlushBatches batches (with the applied seq they cover, in that
// batch's WriteBatch), and brought up to date at open by folding in the
// applied log after that seq. Per-batch read-modify-write or merge operands
// for every shown item cost more than the rest of ingest together.
std::string EncodeItemStats(const ItemStats& s) {
  std::string out;
  coding::PutFixed64(&out, s.impressions);
  coding::PutFixed64(&out, s.clicks);
  coding::PutFixed64(&out, static_cast<uint64_t>(s.last_impression_ms));
  return out;
}

bool DecodeItemStats(std::string_view v, ItemStats* s) {
  if (v.size() != 24) return false;
  s->impressions = coding::GetFixed64(v.data());
  s->clicks = coding::GetFixed64(v.data() + 8);
  s->last_impression_ms =
      static_cast<int64_t>(coding::GetFixed64(v.data() + 16));
  return true;
}

void AddStats(const ItemStats& d, ItemStats* s) {
  s->impressions += d.impressions;
  s->clicks += d.clicks;
  s->last_impression_ms = std::max(s->last_impression_ms, d.last_impression_ms);
}

// Item stat deltas, dense by item, with the list of items touched: a hash
// map of deltas cost as much as the rest of the bookkeeping per batch.
// Reused across batches (Clear keeps the capacity).
class StatsDelta {
 public:
  ItemStats& At(ItemIndex item) {
    if (item >= by_item_.size()) {
      by_item_.resize(std::max<size_t>(item + 1, by_item_.size() * 2));
      seen_.resize(by_item_.size(), 0);
    }
    if (!seen_[item]) {
      seen_[item] = 1;
      touched_.push_back(item);
    }
    return by_item_[item];
  }
  // The delta of `item`; zero when untouched.
  ItemStats Get(ItemIndex item) const {
    return item < by_item_.size() ? by_item_[item] : ItemStats{};
  }
  const std::vector<ItemIndex>& touched() const { return touched_; }
  void Clear() {
    for (ItemIndex item : touched_) {
      by_item_[item] = ItemStats{};
      seen_[item] = 0;
    }
    touched_.clear();
  }

 private:
  std::vector<ItemStats> by_item_;
  std::vector<uint8_t> seen_;
  std::vector<ItemIndex> touched_;
};

// What one applied event adds to the item stats.
void FoldStats(const AppliedEvent& ev, StatsDelta* out) {
  if (ev.kind == AppliedEvent::Kind::kImpression) {
    for (ItemIndex item : ev.items) {
      auto& s = out->At(item);
      ++s.impressions;
      s.last_impression_ms = std::max(s.last_impression_ms, ev.ts_ms);
    }
  }
  for (uint16_t pos : ev.clicked) {
    if (pos < ev.items.size()) ++out->At(ev.items[pos]).clicks;
  }
}

// impressions value: user, ts, items, history (dense indexes).
struct ImpressionRecord {
  UserIndex user = 0;
  int64_t ts_ms = 0;
  std::vector<ItemIndex> items;
  std::vector<ItemIndex> history;
};

std::string EncodeImpression(const ImpressionRecord& r) {
  std::string out;
  out.reserve(8 + 3 * (r.items.size() + r.history.size()));
  coding::PutVarint(&out, r.user);
  coding::PutVarint(&out, static_cast<uint64_t>(r.ts_ms));
  coding::PutVarint(&out, r.items.size());
  for (auto i : r.items) coding::PutVarint(&out, i);
  coding::PutVarint(&out, r.history.size());
  for (auto h : r.history) coding::PutVarint(&out, h);
  return out;
}

Result<ImpressionRecord> DecodeImpression(std::string_view v) {
  ImpressionRecord r;
  coding::Reader in(v);
  uint64_t ts = 0, n = 0;
  in.VarintAs(&r.user);
  in.Varint(&ts);
  r.ts_ms = static_cast<int64_t>(ts);
  if (in.Varint(&n) && n <= v.size()) {
    r.items.resize(n);
    for (auto& i : r.items) in.VarintAs(&i);
  }
  if (in.Varint(&n) && n <= v.size()) {
    r.history.resize(n);
    for (auto& h : r.history) in.VarintAs(&h);
  }
  if (!in.ok() || !in.done()) return Status::Corruption("impression record");
  return r;
}

std::string EncodeCounters(const StoreCounters& c) {
  std::string out;
  for (uint64_t v : {c.impressions, c.clicks_joined, c.clicks_pending,
                     c.duplicates, c.dead_letters, c.applied_seq}) {
    coding::PutVarint(&out, v);
  }
  return out;
}

bool DecodeCounters(std::string_view v, StoreCounters* c) {
  coding::Reader in(v);
  for (uint64_t* p : {&c->impressions, &c->clicks_joined, &c->clicks_pending,
                      &c->duplicates, &c->dead_letters, &c->applied_seq}) {
    in.Varint(p);
  }
  return in.ok() && in.done();
}

std::string EncodeDeadLetter(const DeadLetter& d) {
  std::string out;
  coding::PutLengthPrefixed(&out, d.reason);
  coding::PutLengthPrefixed(&out, d.topic);
  coding::PutVarint(&out, static_cast<uint32_t>(d.partition));
  coding::PutVarint(&out, static_cast<uint64_t>(d.offset));
  coding::PutLengthPrefixed(&out, d.payload);
  return out;
}

bool DecodeDeadLetter(std::string_view v, DeadLetter* d) {
  coding::Reader in(v);
  std::string_view reason, topic, payload;
  uint32_t partition = 0;
  uint64_t offset = 0;
  in.LengthPrefixed(&reason);
  in.LengthPrefixed(&topic);
  in.VarintAs(&partition);
  in.Varint(&offset);
  in.LengthPrefixed(&payload);
  if (!in.ok() || !in.done()) return false;
  d->reason = reason;
  d->topic = topic;
  d->partition = static_cast<int32_t>(partition);
  d->offset = static_cast<int64_t>(offset);
  d->payload = payload;
  return true;
}

std::string OffsetKey(std::string_view topic, int32_t partition) {
  std::string k(topic);
  k.push_back(kSep);
  coding::PutBE32(&k, static_cast<uint32_t>(partition));
  return k;
}

std::string LogIdKey(std::string_view topic) {
  std::string k(kLogIdKey);
  k.push_back(kSep);
  k.append(topic);
  return k;
}

std::string ClickKey(std::string_view impression_id, ItemIndex item) {
  std::string k(impression_id);
  k.push_back(kSep);
  coding::PutBE32(&k, item);
  return k;
}

std::string PendingKey(std::string_view impression_id,
                       std::string_view item_id) {
  std::string k(impression_id);
  k.push_back(kSep);
  k.append(item_id);
  return k;
}

std::string UserLogKey(UserIndex user, int64_t ts_ms,
                       std::string_view impression_id) {
  std::string k;
  coding::PutBE32(&k, user);
  coding::PutBE64(&k, static_cast<uint64_t>(ts_ms));
  k.append(impression_id);
  return k;
}

std::string TimeKey(int64_t ts_ms, std::string_view impression_id) {
  std::string k;
  coding::PutBE64(&k, static_cast<uint64_t>(ts_ms));
  k.append(impression_id);
  return k;
}

std::string SeqKey(uint64_t seq) {
  std::string k;
  coding::PutBE64(&k, seq);
  return k;
}

std::string DictKey(char kind, std::string_view id) {
  std::string k(1, kind);
  k.append(id);
  return k;
}

std::string DictReverseKey(char kind, uint32_t index) {
  std::string k(1, kind);
  coding::PutBE32(&k, index);
  return k;
}

struct PendingClick {
  std::string item_id;
  std::string user_id;
  int64_t ts_ms = 0;
};

std::string EncodePending(std::string_view user_id, int64_t ts_ms) {
  std::string out;
  coding::PutLengthPrefixed(&out, user_id);
  coding::PutVarint(&out, static_cast<uint64_t>(ts_ms));
  return out;
}

class RocksEventStore final : public EventStore {
 public:
  RocksEventStore(std::unique_ptr<rocksdb::DB> db,
                  std::vector<rocksdb::ColumnFamilyHandle*> handles,
                  const StoreOptions& options)
      : db_(std::move(db)), cf_(std::move(handles)), options_(options) {}

  ~RocksEventStore() override {
    for (auto* h : cf_) db_->DestroyColumnFamilyHandle(h);
    db_->Close().PermitUncheckedError();
  }

  Status Load();

  Result<ApplyOutcome> ApplyBatch(
      std::span<const ConsumedMessage> batch) override;
  Status PutCheckpoint(std::string_view name, std::string_view blob) override;
  Status SetLogId(std::string_view topic, std::string_view log_id,
                  bool discard_offsets) override;
  Status DiscardOffsets(std::string_view topic,
                        std::span<const int32_t> partitions) override;

  std::map<int32_t, int64_t> NextOffsets(std::string_view topic) const override;
  Result<std::string> LogId(std::string_view topic) const override;
  std::optional<UserIndex> FindUser(std::string_view id) const override {
    return users_.Find(id);
  }
  std::optional<ItemIndex> FindItem(std::string_view id) const override {
    return items_.Find(id);
  }
  std::string UserId(UserIndex user) const override {
    return users_.Name(user);
  }
  std::string ItemId(ItemIndex item) const override {
    return items_.Name(item);
  }
  size_t NumUsers() const override { return users_.size(); }
  size_t NumItems() const override { return items_.size(); }
  Result<StoredImpression> GetImpression(
      std::string_view impression_id) const override;
  Result<std::vector<StoredImpression>> UserImpressions(
      UserIndex user, int64_t from_ms, int64_t to_ms,
      size_t limit) const override;
  Result<std::vector<StoredImpression>> ImpressionsInWindow(
      int64_t from_ms, int64_t to_ms, size_t limit) const override;
  Result<ItemStats> GetItemStats(ItemIndex item) const override;
  Result<std::vector<ItemStats>> AllItemStats() const override;
  Result<std::vector<AppliedEvent>> ReadApplied(uint64_t from_seq,
                                                size_t max) const override;
  Result<std::vector<DeadLetter>> ReadDeadLetters(uint64_t from_seq,
                                                  size_t max) const override;
  Result<std::string> GetCheckpoint(std::string_view name) const override;
  StoreCounters Counters() const override {
    std::lock_guard lock(counters_mu_);
    StoreCounters c = counters_;
    c.users = users_.size();
    c.items = items_.size();
    return c;
  }

 private:
  // The state of one ApplyBatch call.
  struct BatchState;

  Status ApplyImpression(BatchState& b, const EventView& e);
  Status ApplyClick(BatchState& b, const EventView& e,
                    const ConsumedMessage& msg);
  // The impression applied earlier (in this batch or before), or nullptr.
  // `scratch` holds a record read from the store.
  Result<const ImpressionRecord*> LookupImpression(
      BatchState& b, std::string_view impression_id, ImpressionRecord* scratch);
  void AddDeadLetter(BatchState& b, std::string reason,
                     const ConsumedMessage& msg);
  Result<StoredImpression> ReadStoredImpression(std::string_view id,
                                                std::string_view value) const;
  // Deletes the offsets of `partitions` of `topic` (and, when `log_id` is
  // set, records it) in one write.
  Status WriteOffsetReset(std::string_view topic,
                          std::span<const int32_t> partitions,
                          const std::string* log_id);

  rocksdb::ColumnFamilyHandle* cf(Cf c) const { return cf_[c]; }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cf_;
  StoreOptions options_;

  IdDictionary users_;
  IdDictionary items_;

  mutable std::mutex offsets_mu_;
  std::map<std::pair<std::string, int32_t>, int64_t> offsets_;

  mutable std::mutex counters_mu_;
  StoreCounters counters_;
  uint64_t next_dead_letter_seq_ = 1;  // apply thread only

  void ApplyStatsLocked(const StatsDelta& d) {
    for (ItemIndex item : d.touched()) {
      if (item >= item_stats_.size()) {
        item_stats_.resize(std::max<size_t>(item + 1, item_stats_.size() * 2));
      }
      AddStats(d.Get(item), &item_stats_[item]);
    }
  }
  void MarkDirty(const StatsDelta& d) {
    for (ItemIndex item : d.touched()) {
      if (item >= stats_dirty_flag_.size()) {
        stats_dirty_flag_.resize(
            std::max<size_t>(item + 1, stats_dirty_flag_.size() * 2), 0);
      }
      if (!stats_dirty_flag_[item]) {
        stats_dirty_flag_[item] = 1;
        stats_dirty_.push_back(item);
      }
    }
  }
  void ClearDirty() {
    for (ItemIndex item : stats_dirty_) stats_dirty_flag_[item] = 0;
    stats_dirty_.clear();
  }
  mutable std::mutex stats_mu_;
  // By ItemIndex; may be longer than the published dictionary.
  std::vector<ItemStats> item_stats_;
  std::vector<ItemIndex> stats_dirty_;     // touched since last flush
  std::vector<uint8_t> stats_dirty_flag_;  // by ItemIndex
  int batches_since_stats_flush_ = 0;      // apply thread only
  StatsDelta deltas_;                      // apply thread only

  // Impression ids with held clicks (apply thread only). Lets an arriving
  // impression skip the pending-clicks scan in the common case.
  std::unordered_set<std::string, StringHash, std::equal_to<>>
      pending_impressions_;

  // The parsed messages of the batch being applied (apply thread only);
  // kept across batches so that their vectors keep their capacity.
  std::vector<EventView> views_;
};

struct RocksEventStore::BatchState {
  rocksdb::WriteBatch wb;
  ApplyOutcome outcome;
  StoreCounters counters;  // copy, committed on success
  uint64_t next_dead_letter_seq = 0;
  std::map<std::pair<std::string, int32_t>, int64_t> next_offsets;
  // Impressions applied in this batch, with their clicked positions. The
  // keys view the batch's parsed messages, which outlive the BatchState.
  struct Overlay {
    ImpressionRecord record;
    std::vector<uint16_t> clicked;
  };
  std::unordered_map<std::string_view, Overlay> impressions;
  // Clicks held in this batch, by impression id.
  std::unordered_map<std::string, std::vector<PendingClick>, StringHash,
                     std::equal_to<>>
      pending;
  std::unordered_set<std::string> clicks_written;  // ClickKey()s
  std::unordered_set<std::string> new_pending_impressions;
  std::unordered_set<std::string> resolved_pending_impressions;
};

Status RocksEventStore::Load() {
  rocksdb::ReadOptions ro;
  std::string value;
  auto s = db_->Get(ro, cf(kMeta), std::string(kFormatKey), &value);
  if (s.IsNotFound()) {
    CFREC_RETURN_IF_ERROR(FromRocks(
        db_->Put(rocksdb::WriteOptions(), cf(kMeta), std::string(kFormatKey),
                 std::string(kFormatVersion)),
        "writing format version"));
  } else if (!s.ok()) {
    return FromRocks(s, "reading format version");
  } else if (value != kFormatVersion) {
    return Status::FailedPrecondition("data directory has format '" + value +
                                      "', this build reads '" +
                                      std::string(kFormatVersion) + "'");
  }
  s = db_->Get(ro, cf(kMeta), std::string(kCountersKey), &value);
  if (s.ok()) {
    if (!DecodeCounters(value, &counters_)) {
      return Status::Corruption("meta counters");
    }
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "reading counters");
  }
  next_dead_letter_seq_ = counters_.dead_letters + 1;

  // Dictionaries: reverse entries iterate in index order.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(kDictionary)));
  for (char kind : {'U', 'I'}) {
    IdDictionary& dict = kind == 'U' ? users_ : items_;
    uint32_t expect = 0;
    for (it->Seek(std::string(1, kind)); it->Valid(); it->Next()) {
      const auto key = it->key();
      if (key.size() != 5 || key[0] != kind) break;
      const uint32_t index = coding::GetBE32(key.data() + 1);
      if (index != expect) {
        return Status::Corruption("dictionary gap at index " +
                                  std::to_string(expect));
      }
      dict.LoadAppend(it->value().ToString());
      ++expect;
    }
    CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading dictionary"));
  }

  std::unique_ptr<rocksdb::Iterator> off(db_->NewIterator(ro, cf(kOffsets)));
  for (off->SeekToFirst(); off->Valid(); off->Next()) {
    const auto key = off->key().ToStringView();
    const size_t sep = key.find(kSep);
    if (sep == std::string_view::npos || key.size() != sep + 5 ||
        off->value().size() != 8) {
      return Status::Corruption("offsets entry");
    }
    offsets_[{std::string(key.substr(0, sep)),
              static_cast<int32_t>(coding::GetBE32(key.data() + sep + 1))}] =
        static_cast<int64_t>(coding::GetBE64(off->value().data()));
  }
  CFREC_RETURN_IF_ERROR(FromRocks(off->status(), "reading offsets"));

  // Item stats: the last flush, then the applied log after it.
  uint64_t stats_seq = 0;
  s = db_->Get(ro, cf(kMeta), std::string(kStatsSeqKey), &value);
  if (s.ok() && value.size() == 8) {
    stats_seq = coding::GetBE64(value.data());
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "reading item stats seq");
  }
  std::unique_ptr<rocksdb::Iterator> st(db_->NewIterator(ro, cf(kItemStats)));
  for (st->SeekToFirst(); st->Valid(); st->Next()) {
    if (st->key().size() != 4) return Status::Corruption("item stats key");
    const ItemIndex item = coding::GetBE32(st->key().data());
    if (item >= item_stats_.size()) item_stats_.resize(item + 1);
    if (!DecodeItemStats(st->value().ToStringView(), &item_stats_[item])) {
      return Status::Corruption("item stats");
    }
  }
  CFREC_RETURN_IF_ERROR(FromRocks(st->status(), "reading item stats"));
  for (uint64_t from = stats_seq + 1; from <= counters_.applied_seq;) {
    auto events = ReadApplied(from, 10000);
    if (!events.ok()) return events.status();
    if (events->empty()) break;
    StatsDelta deltas;
    for (const auto& ev : *events) FoldStats(ev, &deltas);
    MarkDirty(deltas);
    ApplyStatsLocked(deltas);
    from = events->back().seq + 1;
  }

  std::unique_ptr<rocksdb::Iterator> pend(
      db_->NewIterator(ro, cf(kPendingClicks)));
  for (pend->SeekToFirst(); pend->Valid(); pend->Next()) {
    const auto key = pend->key().ToStringView();
    pending_impressions_.emplace(key.substr(0, key.find(kSep)));
  }
  return FromRocks(pend->status(), "reading pending clicks");
}

void RocksEventStore::AddDeadLetter(BatchState& b, std::string reason,
                                    const ConsumedMessage& msg) {
  DeadLetter d;
  d.seq = b.next_dead_letter_seq++;
  d.reason = std::move(reason);
  d.topic = msg.topic;
  d.partition = msg.partition;
  d.offset = msg.offset;
  d.payload = msg.payload;
  b.wb.Put(cf(kDeadLetters), SeqKey(d.seq), EncodeDeadLetter(d))
      .PermitUncheckedError();
  ++b.outcome.dead_letters;
  ++b.counters.dead_letters;
}

Result<const ImpressionRecord*> RocksEventStore::LookupImpression(
    BatchState& b, std::string_view impression_id, ImpressionRecord* scratch) {
  if (auto it = b.impressions.find(impression_id); it != b.impressions.end()) {
    return &it->second.record;
  }
  std::string value;
  auto s =
      db_->Get(rocksdb::ReadOptions(), cf(kImpressions), impression_id, &value);
  if (s.IsNotFound()) return static_cast<const ImpressionRecord*>(nullptr);
  CFREC_RETURN_IF_ERROR(FromRocks(s, "reading impression"));
  auto rec = DecodeImpression(value);
  if (!rec.ok()) return rec.status();
  *scratch = std::move(rec).value();
  return static_cast<const ImpressionRecord*>(scratch);
}

Status RocksEventStore::ApplyImpression(BatchState& b, const EventView& e) {
  ImpressionRecord scratch;
  auto existing = LookupImpression(b, e.impression_id, &scratch);
  if (!existing.ok()) return existing.status();
  if (*existing != nullptr) {
    ++b.outcome.duplicates;
    ++b.counters.duplicates;
    return Status::Ok();
  }
  ImpressionRecord rec;
  bool is_new = false;
  rec.user = users_.Stage(e.user_id, &is_new);
  rec.ts_ms = e.ts_ms;
  rec.items.reserve(e.items.size());
  for (const auto& item : e.items)
    rec.items.push_back(items_.Stage(item, &is_new));
  // Clicks are few: a linear search of the list beats building an index.
  const auto position = [&e](std::string_view item) -> std::optional<uint16_t> {
    auto it = std::find(e.items.begin(), e.items.end(), item);
    if (it == e.items.end()) return std::nullopt;
    return static_cast<uint16_t>(it - e.items.begin());
  };
  rec.history.reserve(e.history.size());
  for (const auto& h : e.history)
    rec.history.push_back(items_.Stage(h, &is_new));

  std::vector<uint16_t> clicked;
  std::vector<int64_t> click_ts;
  for (const auto& c : e.clicks) {
    clicked.push_back(*position(c));  // ParseEvent: clicks within items
    click_ts.push_back(e.ts_ms);
  }

  // Clicks that arrived before this impression: held in this batch or in
  // the pending_clicks family.
  std::vector<PendingClick> held;
  if (auto it = b.pending.find(e.impression_id); it != b.pending.end()) {
    held = std::move(it->second);
    b.pending.erase(it);
    // Held earlier in this batch: undo their pending_clicks puts.
    for (const auto& p : held) {
      b.wb.Delete(cf(kPendingClicks), PendingKey(e.impression_id, p.item_id))
          .PermitUncheckedError();
      --b.counters.clicks_pending;
    }
  }
  if (pending_impressions_.contains(e.impression_id)) {
    std::string prefix(e.impression_id);
    prefix.push_back(kSep);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf(kPendingClicks)));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      PendingClick p;
      p.item_id = it->key().ToString().substr(prefix.size());
      coding::Reader in(it->value().ToStringView());
      std::string_view user;
      uint64_t ts = 0;
      in.LengthPrefixed(&user);
      in.Varint(&ts);
      if (!in.ok()) return Status::Corruption("pending click");
      p.user_id = user;
      p.ts_ms = static_cast<int64_t>(ts);
      held.push_back(std::move(p));
      b.wb.Delete(cf(kPendingClicks), it->key()).PermitUncheckedError();
      --b.counters.clicks_pending;
    }
    CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading pending clicks"));
    b.resolved_pending_impressions.emplace(e.impression_id);
  }
  // A held click that turns out invalid is recorded as a dead letter in its
  // canonical JSON form (its Kafka origin was consumed batches ago).
  const auto reject_held = [&](const PendingClick& p, std::string reason) {
    const std::string payload = SerializeEvent(ClickEvent{
        std::string(e.impression_id), p.user_id, p.item_id, p.ts_ms});
    ConsumedMessage origin;
    origin.topic = "(held click)";
    origin.partition = -1;
    origin.offset = -1;
    origin.payload = payload;
    AddDeadLetter(b, std::move(reason), origin);
  };
  for (auto& p : held) {
    if (p.user_id != e.user_id) {
      reject_held(p, "click user_id '" + p.user_id +
                         "' differs from its impression's '" +
                         std::string(e.user_id) + "'");
      continue;
    }
    const auto pos = position(p.item_id);
    if (!pos.has_value()) {
      reject_held(p, "clicked item '" + p.item_id + "' is not in impression '" +
                         std::string(e.impression_id) + "'");
      continue;
    }
    if (std::find(clicked.begin(), clicked.end(), *pos) != clicked.end()) {
      ++b.outcome.duplicates;
      ++b.counters.duplicates;
      continue;
    }
    clicked.push_back(*pos);
    click_ts.push_back(p.ts_ms);
    ++b.outcome.clicks_joined;
    ++b.counters.clicks_joined;
  }

  // Writes.
  const std::string_view id = e.impression_id;
  b.wb.Put(cf(kImpressions), id, EncodeImpression(rec)).PermitUncheckedError();
  b.wb.Put(cf(kUserLog), UserLogKey(rec.user, rec.ts_ms, id), "")
      .PermitUncheckedError();
  std::string user_value;
  coding::PutBE32(&user_value, rec.user);
  b.wb.Put(cf(kTimeIndex), TimeKey(rec.ts_ms, id), user_value)
      .PermitUncheckedError();
  for (size_t k = 0; k < clicked.size(); ++k) {
    const ItemIndex item = rec.items[clicked[k]];
    std::string ts;
    coding::PutBE64(&ts, static_cast<uint64_t>(click_ts[k]));
    std::string key = ClickKey(id, item);
    b.wb.Put(cf(kClicks), key, ts).PermitUncheckedError();
    b.clicks_written.insert(std::move(key));
  }
  std::sort(clicked.begin(), clicked.end());

  AppliedEvent ev;
  ev.seq = ++b.counters.applied_seq;
  ev.kind = AppliedEvent::Kind::kImpression;
  ev.user = rec.user;
  ev.ts_ms = rec.ts_ms;
  ev.items = rec.items;
  ev.clicked = clicked;
  ev.history = rec.history;
  b.wb.Put(cf(kAppliedLog), SeqKey(ev.seq), EncodeAppliedEvent(ev))
      .PermitUncheckedError();
  b.outcome.events.push_back(std::move(ev));
  ++b.outcome.impressions;
  ++b.counters.impressions;
  b.impressions.emplace(id, BatchState::Overlay{std::move(rec), clicked});
  return Status::Ok();
}

Status RocksEventStore::ApplyClick(BatchState& b, const EventView& e,
                                   const ConsumedMessage& msg) {
  ImpressionRecord scratch;
  auto found = LookupImpression(b, e.impression_id, &scratch);
  if (!found.ok()) return found.status();
  if (*found == nullptr) {
    // Hold it until the impression arrives.
    const std::string key = PendingKey(e.impression_id, e.item_id);
    auto pending_it = b.pending.find(e.impression_id);
    if (pending_it == b.pending.end()) {
      pending_it = b.pending
                       .emplace(std::string(e.impression_id),
                                std::vector<PendingClick>{})
                       .first;
    }
    auto& held = pending_it->second;
    bool seen = std::any_of(held.begin(), held.end(), [&](const auto& p) {
      return p.item_id == e.item_id;
    });
    if (!seen && pending_impressions_.contains(e.impression_id)) {
      std::string v;
      auto s = db_->Get(rocksdb::ReadOptions(), cf(kPendingClicks), key, &v);
      if (!s.IsNotFound()) {
        CFREC_RETURN_IF_ERROR(FromRocks(s, "reading pending click"));
        seen = true;
      }
    }
    if (seen) {
      ++b.outcome.duplicates;
      ++b.counters.duplicates;
      return Status::Ok();
    }
    held.push_back(
        PendingClick{std::string(e.item_id), std::string(e.user_id), e.ts_ms});
    b.wb.Put(cf(kPendingClicks), key, EncodePending(e.user_id, e.ts_ms))
        .PermitUncheckedError();
    b.new_pending_impressions.emplace(e.impression_id);
    ++b.outcome.clicks_pending;
    ++b.counters.clicks_pending;
    return Status::Ok();
  }
  const ImpressionRecord& rec = **found;
  const auto click_user = users_.WriterFind(e.user_id);
  if (!click_user.has_value() || *click_user != rec.user) {
    AddDeadLetter(b,
                  "click user_id '" + std::string(e.user_id) +
                      "' differs from the user of impression '" +
                      std::string(e.impression_id) + "'",
                  msg);
    return Status::Ok();
  }
  const auto item_index = items_.WriterFind(e.item_id);
  const auto pos_it =
      item_index ? std::find(rec.items.begin(), rec.items.end(), *item_index)
                 : rec.items.end();
  if (pos_it == rec.items.end()) {
    AddDeadLetter(b,
                  "clicked item '" + std::string(e.item_id) +
                      "' is not in impression '" +
                      std::string(e.impression_id) + "'",
                  msg);
    return Status::Ok();
  }
  const auto position = static_cast<uint16_t>(pos_it - rec.items.begin());
  std::string key = ClickKey(e.impression_id, *item_index);
  bool duplicate = b.clicks_written.contains(key);
  if (!duplicate) {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), cf(kClicks), key, &v);
    if (!s.IsNotFound()) {
      CFREC_RETURN_IF_ERROR(FromRocks(s, "reading click"));
      duplicate = true;
    }
  }
  if (duplicate) {
    ++b.outcome.duplicates;
    ++b.counters.duplicates;
    return Status::Ok();
  }
  std::string ts;
  coding::PutBE64(&ts, static_cast<uint64_t>(e.ts_ms));
  b.wb.Put(cf(kClicks), key, ts).PermitUncheckedError();
  b.clicks_written.insert(std::move(key));
  if (auto overlay = b.impressions.find(e.impression_id);
      overlay != b.impressions.end()) {
    overlay->second.clicked.push_back(position);
  }

  AppliedEvent ev;
  ev.seq = ++b.counters.applied_seq;
  ev.kind = AppliedEvent::Kind::kClick;
  ev.user = rec.user;
  ev.ts_ms = e.ts_ms;
  ev.items = rec.items;
  ev.clicked = {position};
  b.wb.Put(cf(kAppliedLog), SeqKey(ev.seq), EncodeAppliedEvent(ev))
      .PermitUncheckedError();
  b.outcome.events.push_back(std::move(ev));
  ++b.outcome.clicks_joined;
  ++b.counters.clicks_joined;
  return Status::Ok();
}

Result<ApplyOutcome> RocksEventStore::ApplyBatch(
    std::span<const ConsumedMessage> batch) {
  BatchState b;
  {
    std::lock_guard lock(counters_mu_);
    b.counters = counters_;
  }
  b.next_dead_letter_seq = next_dead_letter_seq_;
  b.outcome.messages = batch.size();
  b.outcome.events.reserve(batch.size());

  Status failure;
  size_t parsed = 0;
  for (const ConsumedMessage& msg : batch) {
    std::pair<std::string, int32_t> part{std::string(msg.topic), msg.partition};
    auto next_it = b.next_offsets.find(part);
    int64_t next = -1;
    if (next_it != b.next_offsets.end()) {
      next = next_it->second;
    } else {
      std::lock_guard lock(offsets_mu_);
      auto it = offsets_.find(part);
      if (it != offsets_.end()) next = it->second;
    }
    if (msg.offset < next) {
      ++b.outcome.redelivered;
      continue;
    }
    b.next_offsets[part] = msg.offset + 1;

    // One EventView per message: the batch state keeps views into them.
    if (parsed == views_.size()) views_.emplace_back();
    EventView& event = views_[parsed++];
    Status parse = ParseEventView(msg.payload, options_.limits, &event);
    if (!parse.ok()) {
      AddDeadLetter(b, parse.message(), msg);
      continue;
    }
    Status s;
    if (event.kind == EventView::Kind::kImpression) {
      s = ApplyImpression(b, event);
    } else {
      s = ApplyClick(b, event, msg);
    }
    if (!s.ok()) {
      failure = s;
      break;
    }
  }
  if (!failure.ok()) {
    users_.Discard();
    items_.Discard();
    return failure;
  }

  // Item stats: this batch's deltas; flushed with the dirty set now and then.
  StatsDelta& deltas = deltas_;
  deltas.Clear();
  for (const AppliedEvent& ev : b.outcome.events) FoldStats(ev, &deltas);
  const bool flush_stats = ++batches_since_stats_flush_ >= kStatsFlushBatches;
  if (flush_stats) {
    std::lock_guard lock(stats_mu_);
    MarkDirty(deltas);
    for (ItemIndex item : stats_dirty_) {
      ItemStats v = item < item_stats_.size() ? item_stats_[item] : ItemStats{};
      AddStats(deltas.Get(item), &v);
      std::string key;
      coding::PutBE32(&key, item);
      b.wb.Put(cf(kItemStats), key, EncodeItemStats(v)).PermitUncheckedError();
    }
    std::string seq;
    coding::PutBE64(&seq, b.counters.applied_seq);
    b.wb.Put(cf(kMeta), std::string(kStatsSeqKey), seq).PermitUncheckedError();
  }
  for (IdDictionary* dict : {&users_, &items_}) {
    const char fwd = dict == &users_ ? 'u' : 'i';
    const char rev = dict == &users_ ? 'U' : 'I';
    uint32_t index = dict->staged_base();
    for (const auto& name : dict->staged()) {
      std::string idx;
      coding::PutBE32(&idx, index);
      b.wb.Put(cf(kDictionary), DictKey(fwd, name), idx).PermitUncheckedError();
      b.wb.Put(cf(kDictionary), DictReverseKey(rev, index), name)
          .PermitUncheckedError();
      ++index;
    }
  }
  for (const auto& [part, next] : b.next_offsets) {
    std::string v;
    coding::PutBE64(&v, static_cast<uint64_t>(next));
    b.wb.Put(cf(kOffsets), OffsetKey(part.first, part.second), v)
        .PermitUncheckedError();
  }
  b.wb.Put(cf(kMeta), std::string(kCountersKey), EncodeCounters(b.counters))
      .PermitUncheckedError();

  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  auto s = db_->Write(wo, &b.wb);
  if (!s.ok()) {
    users_.Discard();
    items_.Discard();
    return FromRocks(s, "applying batch");
  }
  // Durable: publish what readers may now see.
  users_.Publish();
  items_.Publish();
  {
    std::lock_guard lock(offsets_mu_);
    for (const auto& [part, next] : b.next_offsets) offsets_[part] = next;
  }
  {
    std::lock_guard lock(counters_mu_);
    counters_ = b.counters;
  }
  next_dead_letter_seq_ = b.next_dead_letter_seq;
  {
    std::lock_guard lock(stats_mu_);
    ApplyStatsLocked(deltas);
    if (flush_stats) {
      ClearDirty();
      batches_since_stats_flush_ = 0;
    } else {
      MarkDirty(deltas);
    }
  }
  for (const auto& id : b.resolved_pending_impressions) {
    pending_impressions_.erase(id);
  }
  for (const auto& id : b.new_pending_impressions) {
    if (!b.impressions.contains(id) || b.pending.contains(id)) {
      pending_impressions_.insert(id);
    }
  }
  return std::move(b.outcome);
}

Status RocksEventStore::PutCheckpoint(std::string_view name,
                                      std::string_view blob) {
  rocksdb::WriteOptions wo;
  wo.sync = true;  // rare and precious: always durable
  return FromRocks(db_->Put(wo, cf(kCheckpoints), name, blob),
                   "writing checkpoint");
}

Result<std::string> RocksEventStore::GetCheckpoint(
    std::string_view name) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), cf(kCheckpoints), name, &value);
  if (s.IsNotFound()) {
    return Status::NotFound("no checkpoint named '" + std::string(name) + "'");
  }
  CFREC_RETURN_IF_ERROR(FromRocks(s, "reading checkpoint"));
  return value;
}

Status RocksEventStore::WriteOffsetReset(std::string_view topic,
                                         std::span<const int32_t> partitions,
                                         const std::string* log_id) {
  rocksdb::WriteBatch wb;
  for (int32_t p : partitions) {
    wb.Delete(cf(kOffsets), OffsetKey(topic, p)).PermitUncheckedError();
  }
  if (log_id != nullptr) {
    wb.Put(cf(kMeta), LogIdKey(topic), *log_id).PermitUncheckedError();
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  CFREC_RETURN_IF_ERROR(
      FromRocks(db_->Write(wo, &wb), "resetting offsets of a topic"));
  std::lock_guard lock(offsets_mu_);
  for (int32_t p : partitions) offsets_.erase({std::string(topic), p});
  return Status::Ok();
}

Status RocksEventStore::SetLogId(std::string_view topic,
                                 std::string_view log_id,
                                 bool discard_offsets) {
  std::vector<int32_t> partitions;
  if (discard_offsets) {
    for (const auto& [p, next] : NextOffsets(topic)) partitions.push_back(p);
  }
  const std::string id(log_id);
  return WriteOffsetReset(topic, partitions, &id);
}

Status RocksEventStore::DiscardOffsets(std::string_view topic,
                                       std::span<const int32_t> partitions) {
  return WriteOffsetReset(topic, partitions, nullptr);
}

Result<std::string> RocksEventStore::LogId(std::string_view topic) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), cf(kMeta), LogIdKey(topic), &value);
  if (s.IsNotFound()) return std::string();
  CFREC_RETURN_IF_ERROR(FromRocks(s, "reading the log id"));
  return value;
}

std::map<int32_t, int64_t> RocksEventStore::NextOffsets(
    std::string_view topic) const {
  std::map<int32_t, int64_t> out;
  std::lock_guard lock(offsets_mu_);
  for (const auto& [part, next] : offsets_) {
    if (part.first == topic) out[part.second] = next;
  }
  return out;
}

Result<StoredImpression> RocksEventStore::ReadStoredImpression(
    std::string_view id, std::string_view value) const {
  auto rec = DecodeImpression(value);
  if (!rec.ok()) return rec.status();
  StoredImpression out;
  out.impression_id = id;
  out.user = rec->user;
  out.ts_ms = rec->ts_ms;
  out.items = std::move(rec->items);
  out.history = std::move(rec->history);
  std::string prefix(id);
  prefix.push_back(kSep);
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), cf(kClicks)));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    if (it->key().size() != prefix.size() + 4) continue;
    const ItemIndex item = coding::GetBE32(it->key().data() + prefix.size());
    auto pos = std::find(out.items.begin(), out.items.end(), item);
    if (pos != out.items.end()) {
      out.clicked.push_back(static_cast<uint16_t>(pos - out.items.begin()));
    }
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading clicks"));
  std::sort(out.clicked.begin(), out.clicked.end());
  return out;
}

Result<StoredImpression> RocksEventStore::GetImpression(
    std::string_view impression_id) const {
  std::string value;
  auto s =
      db_->Get(rocksdb::ReadOptions(), cf(kImpressions), impression_id, &value);
  if (s.IsNotFound()) {
    return Status::NotFound("no impression '" + std::string(impression_id) +
                            "'");
  }
  CFREC_RETURN_IF_ERROR(FromRocks(s, "reading impression"));
  return ReadStoredImpression(impression_id, value);
}

Result<std::vector<StoredImpression>> RocksEventStore::UserImpressions(
    UserIndex user, int64_t from_ms, int64_t to_ms, size_t limit) const {
  std::vector<StoredImpression> out;
  if (from_ms < 0) from_ms = 0;
  if (to_ms <= from_ms) return out;
  std::string start;
  coding::PutBE32(&start, user);
  coding::PutBE64(&start, static_cast<uint64_t>(from_ms));
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), cf(kUserLog)));
  for (it->Seek(start); it->Valid() && out.size() < limit; it->Next()) {
    const auto key = it->key();
    if (key.size() < 12 || coding::GetBE32(key.data()) != user) break;
    const auto ts = static_cast<int64_t>(coding::GetBE64(key.data() + 4));
    if (ts >= to_ms) break;
    auto imp = GetImpression(key.ToStringView().substr(12));
    if (!imp.ok()) return imp.status();
    out.push_back(std::move(imp).value());
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading user log"));
  return out;
}

Result<std::vector<StoredImpression>> RocksEventStore::ImpressionsInWindow(
    int64_t from_ms, int64_t to_ms, size_t limit) const {
  std::vector<StoredImpression> out;
  if (from_ms < 0) from_ms = 0;
  if (to_ms <= from_ms) return out;
  std::string start;
  coding::PutBE64(&start, static_cast<uint64_t>(from_ms));
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), cf(kTimeIndex)));
  for (it->Seek(start); it->Valid() && out.size() < limit; it->Next()) {
    const auto key = it->key();
    if (key.size() < 8) return Status::Corruption("time index key");
    if (static_cast<int64_t>(coding::GetBE64(key.data())) >= to_ms) break;
    auto imp = GetImpression(key.ToStringView().substr(8));
    if (!imp.ok()) return imp.status();
    out.push_back(std::move(imp).value());
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading time index"));
  return out;
}

Result<ItemStats> RocksEventStore::GetItemStats(ItemIndex item) const {
  std::lock_guard lock(stats_mu_);
  return item < item_stats_.size() ? item_stats_[item] : ItemStats{};
}

Result<std::vector<ItemStats>> RocksEventStore::AllItemStats() const {
  const size_t n = items_.size();
  std::lock_guard lock(stats_mu_);
  std::vector<ItemStats> out(n);
  std::copy_n(item_stats_.begin(), std::min(n, item_stats_.size()),
              out.begin());
  return out;
}

Result<std::vector<AppliedEvent>> RocksEventStore::ReadApplied(
    uint64_t from_seq, size_t max) const {
  std::vector<AppliedEvent> out;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), cf(kAppliedLog)));
  for (it->Seek(SeqKey(from_seq)); it->Valid() && out.size() < max;
       it->Next()) {
    auto e = DecodeAppliedEvent(it->value().ToStringView());
    if (!e.ok()) return e.status();
    out.push_back(std::move(e).value());
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading applied log"));
  return out;
}

Result<std::vector<DeadLetter>> RocksEventStore::ReadDeadLetters(
    uint64_t from_seq, size_t max) const {
  std::vector<DeadLetter> out;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), cf(kDeadLetters)));
  for (it->Seek(SeqKey(from_seq)); it->Valid() && out.size() < max;
       it->Next()) {
    DeadLetter d;
    d.seq = coding::GetBE64(it->key().data());
    if (!DecodeDeadLetter(it->value().ToStringView(), &d)) {
      return Status::Corruption("dead letter");
    }
    out.push_back(std::move(d));
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading dead letters"));
  return out;
}

}  // namespace

Status EventStore::SetLogId(std::string_view, std::string_view, bool) {
  return Status::Unsupported("this store keeps no log identities");
}

Status EventStore::DiscardOffsets(std::string_view, std::span<const int32_t>) {
  return Status::Unsupported("this store keeps no log identities");
}

Result<std::string> EventStore::LogId(std::string_view) const {
  return Status::Unsupported("this store keeps no log identities");
}

Result<std::unique_ptr<EventStore>> EventStore::Open(
    const std::string& dir, const StoreOptions& options) {
  std::error_code ec;
  if (options.create_if_missing) std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::IOError("cannot create data directory '" + dir +
                           "': " + ec.message());
  }
  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 5;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_mb << 20);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  auto table_factory = std::shared_ptr<rocksdb::TableFactory>(
      rocksdb::NewBlockBasedTableFactory(table));

  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (size_t i = 0; i < kNumCfs; ++i) {
    rocksdb::ColumnFamilyOptions cf_options(db_options);
    cf_options.table_factory = table_factory;
    cf_options.compression = rocksdb::kLZ4Compression;
    cf_options.write_buffer_size = 32 << 20;
    if (i == kImpressions || i == kClicks || i == kPendingClicks) {
      // Point lookups that usually miss (is this impression or click new?):
      // a memtable bloom filter answers them without a skiplist search.
      cf_options.memtable_prefix_bloom_size_ratio = 0.05;
      cf_options.memtable_whole_key_filtering = true;
    }
    families.emplace_back(kCfNames[i], cf_options);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_options, dir, families, &handles, &raw);
  if (!s.ok()) {
    return FromRocks(s, "opening RocksDB in '" + dir + "'");
  }
  auto store = std::make_unique<RocksEventStore>(
      std::unique_ptr<rocksdb::DB>(raw), std::move(handles), options);
  CFREC_RETURN_IF_ERROR(store->Load());
  return std::unique_ptr<EventStore>(std::move(store));
}

}  // namespace cfrec::state
