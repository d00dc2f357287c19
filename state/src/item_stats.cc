#include "item_stats.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "coding.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kStatsSeqKey = "item_stats_seq";
constexpr int kStatsFlushBatches = 64;

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

}  // namespace

Status ItemStatsTable::Load(const EventReader& reader, uint64_t applied_seq) {
  rocksdb::ReadOptions ro;
  std::string value;
  // The last flush, then the applied log after it.
  uint64_t stats_seq = 0;
  auto s = db_->Get(ro, db_.cf(kMeta), std::string(kStatsSeqKey), &value);
  if (s.ok() && value.size() == 8) {
    stats_seq = coding::GetBE64(value.data());
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "reading item stats seq");
  }
  std::unique_ptr<rocksdb::Iterator> st(
      db_->NewIterator(ro, db_.cf(kItemStats)));
  for (st->SeekToFirst(); st->Valid(); st->Next()) {
    if (st->key().size() != 4) return Status::Corruption("item stats key");
    const ItemIndex item = coding::GetBE32(st->key().data());
    if (item >= item_stats_.size()) item_stats_.resize(item + 1);
    if (!DecodeItemStats(st->value().ToStringView(), &item_stats_[item])) {
      return Status::Corruption("item stats");
    }
  }
  CFREC_RETURN_IF_ERROR(FromRocks(st->status(), "reading item stats"));
  for (uint64_t from = stats_seq + 1; from <= applied_seq;) {
    auto events = reader.ReadApplied(from, 10000);
    if (!events.ok()) return events.status();
    if (events->empty()) break;
    StatsDelta deltas;
    for (const auto& ev : *events) FoldStats(ev, &deltas);
    MarkDirty(deltas);
    ApplyStatsLocked(deltas);
    from = events->back().seq + 1;
  }
  return Status::Ok();
}

void ItemStatsTable::Stage(std::span<const AppliedEvent> events,
                           uint64_t applied_seq, rocksdb::WriteBatch* wb) {
  const size_t slot = (head_ + staged_) % deltas_.size();
  const StatsDelta* earlier = staged_ > 0 ? &deltas_[head_] : nullptr;
  ++staged_;
  StatsDelta& deltas = deltas_[slot];
  deltas.Clear();
  for (const AppliedEvent& ev : events) FoldStats(ev, &deltas);
  flush_[slot] = ++batches_since_stats_flush_ >= kStatsFlushBatches;
  if (!flush_[slot]) return;
  batches_since_stats_flush_ = 0;
  std::lock_guard lock(stats_mu_);
  if (earlier != nullptr) MarkDirty(*earlier);
  MarkDirty(deltas);
  for (ItemIndex item : stats_dirty_) {
    ItemStats v = item < item_stats_.size() ? item_stats_[item] : ItemStats{};
    if (earlier != nullptr) AddStats(earlier->Get(item), &v);
    AddStats(deltas.Get(item), &v);
    std::string key;
    coding::PutBE32(&key, item);
    wb->Put(db_.cf(kItemStats), key, EncodeItemStats(v)).PermitUncheckedError();
  }
  std::string seq;
  coding::PutBE64(&seq, applied_seq);
  wb->Put(db_.cf(kMeta), std::string(kStatsSeqKey), seq).PermitUncheckedError();
}

void ItemStatsTable::Publish() {
  if (staged_ == 0) return;
  // The oldest staged batch's deltas are not read again once published:
  // added, marked dirty and cleared in one pass.
  StatsDelta& deltas = deltas_[head_];
  const bool flushed = flush_[head_];
  std::lock_guard lock(stats_mu_);
  // A flush wrote every dirty item, the earlier staged batch's included.
  if (flushed) ClearDirty();
  deltas.Drain([this, flushed](ItemIndex item, const ItemStats& d) {
    AddStatsLocked(item, d);
    if (!flushed) MarkDirty(item);
  });
  head_ = (head_ + 1) % deltas_.size();
  --staged_;
}

ItemStats ItemStatsTable::Get(ItemIndex item) const {
  std::lock_guard lock(stats_mu_);
  return item < item_stats_.size() ? item_stats_[item] : ItemStats{};
}

std::vector<ItemStats> ItemStatsTable::All(size_t n) const {
  std::lock_guard lock(stats_mu_);
  std::vector<ItemStats> out(n);
  std::copy_n(item_stats_.begin(), std::min(n, item_stats_.size()),
              out.begin());
  return out;
}

void ItemStatsTable::ApplyStatsLocked(const StatsDelta& d) {
  for (ItemIndex item : d.touched()) AddStatsLocked(item, d.Get(item));
}

void ItemStatsTable::AddStatsLocked(ItemIndex item, const ItemStats& d) {
  if (item >= item_stats_.size()) {
    item_stats_.resize(std::max<size_t>(item + 1, item_stats_.size() * 2));
  }
  AddStats(d, &item_stats_[item]);
}

void ItemStatsTable::MarkDirty(const StatsDelta& d) {
  for (ItemIndex item : d.touched()) MarkDirty(item);
}

void ItemStatsTable::MarkDirty(ItemIndex item) {
  if (item >= stats_dirty_flag_.size()) {
    stats_dirty_flag_.resize(
        std::max<size_t>(item + 1, stats_dirty_flag_.size() * 2), 0);
  }
  if (!stats_dirty_flag_[item]) {
    stats_dirty_flag_[item] = 1;
    stats_dirty_.push_back(item);
  }
}

void ItemStatsTable::ClearDirty() {
  for (ItemIndex item : stats_dirty_) stats_dirty_flag_[item] = 0;
  stats_dirty_.clear();
}

}  // namespace cfrec::state
