#include "batch_applier.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <utility>

#include "coding.h"

namespace cfrec::state {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Adds the time of its scope to `*seconds`.
class ScopeTimer {
 public:
  explicit ScopeTimer(double* seconds)
      : seconds_(seconds), start_(Clock::now()) {}
  ~ScopeTimer() { *seconds_ += Since(start_); }
  ScopeTimer(const ScopeTimer&) = delete;
  ScopeTimer& operator=(const ScopeTimer&) = delete;

 private:
  double* seconds_;
  Clock::time_point start_;
};

}  // namespace

ImpressionRecord BatchState::Overlay::Materialized() const {
  ImpressionRecord r = record;
  if (event != nullptr) {
    r.items = event->items;
    r.history = event->history;
  }
  return r;
}

Status BatchApplier::Load() {
  std::unique_ptr<rocksdb::Iterator> pend(
      db_->NewIterator(rocksdb::ReadOptions(), db_.cf(kPendingClicks)));
  for (pend->SeekToFirst(); pend->Valid(); pend->Next()) {
    const auto key = pend->key().ToStringView();
    pending_impressions_.emplace(key.substr(0, key.find(kSep)));
  }
  return FromRocks(pend->status(), "reading pending clicks");
}

Status BatchApplier::Apply(std::span<const ConsumedMessage> batch,
                           BatchState& b, const BatchState* earlier) {
  earlier_ = earlier;
  std::vector<EventView>& views = views_[views_turn_];
  views_turn_ = (views_turn_ + 1) % views_.size();
  b.outcome.messages = batch.size();
  b.outcome.events.reserve(batch.size());
  b.impressions.reserve(batch.size());
  b.log.Start(db_, &b.wb);
  const OffsetTable::NextOffsetMap* earlier_offsets =
      earlier != nullptr ? &earlier->next_offsets : nullptr;
  admitted_.clear();
  for (const ConsumedMessage& msg : batch) {
    if (!offsets_.Admit(msg, &b.next_offsets, earlier_offsets)) {
      ++b.outcome.redelivered;
      continue;
    }
    admitted_.push_back(&msg);
  }

  // Every new message is parsed first, in one timed pass (timing each parse
  // took two clock reads per message, 2-3% of the apply thread's time). One
  // EventView per message: the batch state keeps views into them.
  const size_t n = admitted_.size();
  if (views.size() < n) views.resize(n);
  if (parsed_.size() < n) parsed_.resize(n);
  const auto parse_start = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    parsed_[i] = ParseEventView(admitted_[i]->payload, limits_, &views[i]);
  }
  b.outcome.phases.parse_seconds += Since(parse_start);

  // Then applied in the order consumed.
  for (size_t i = 0; i < n; ++i) {
    const ConsumedMessage& msg = *admitted_[i];
    const EventView& event = views[i];
    if (!parsed_[i].ok()) {
      AddDeadLetter(b, parsed_[i].message(), msg);
      continue;
    }
    Status s;
    if (event.kind == EventView::Kind::kImpression) {
      s = ApplyImpression(b, event);
    } else {
      s = ApplyClick(b, event, msg);
    }
    if (!s.ok()) return s;
  }
  Finish(b);
  return Status::Ok();
}

void BatchApplier::Finish(BatchState& b) {
  // In key order within each family: RocksDB inserts a batch's keys into a
  // memtable's skiplist starting from where the previous insert ended, so a
  // family's keys in order need a short search each instead of one from the
  // top (the skiplist search was three quarters of the write). The order
  // within the WriteBatch changes nothing else: every key here is written
  // once per batch, and the batch is applied atomically.
  rows_.clear();
  for (const auto& entry : b.impressions) {
    if (entry.second.dirty) rows_.push_back(&entry);
  }
  std::sort(rows_.begin(), rows_.end(),
            [](const auto* x, const auto* y) { return x->first < y->first; });
  for (const auto* row : rows_) {
    const BatchState::Overlay& o = row->second;
    EncodeImpression(o.record.user, o.record.ts_ms, o.record.seq, o.items(),
                     o.history(), o.record.clicked, &value_);
    b.wb.Put(db_.cf(kImpressions), row->first, value_).PermitUncheckedError();
  }
  // The indexes by user and by time keep the new ones in memory and write
  // them per window (impression_index.h).
  b.new_impressions.reserve(b.new_impressions.size() + rows_.size());
  for (const auto* row : rows_) {
    if (!row->second.fresh) continue;
    b.new_impressions.push_back(IndexedImpression{row->second.record.user,
                                                  row->second.record.ts_ms,
                                                  std::string(row->first)});
  }
  b.log.Finish();
}

void BatchApplier::Publish(const BatchState& b) {
  for (const auto& id : b.resolved_pending_impressions) {
    pending_impressions_.erase(id);
  }
  for (const auto& id : b.new_pending_impressions) {
    if (!b.impressions.contains(id) || b.pending.contains(id)) {
      pending_impressions_.insert(id);
    }
  }
}

void BatchApplier::AddDeadLetter(BatchState& b, std::string reason,
                                 const ConsumedMessage& msg) {
  DeadLetter d;
  d.seq = b.next_dead_letter_seq++;
  d.reason = std::move(reason);
  d.topic = msg.topic;
  d.partition = msg.partition;
  d.offset = msg.offset;
  d.payload = msg.payload;
  dead_letters_.Stage(d, &b.wb);
  ++b.outcome.dead_letters;
  ++b.counters.dead_letters;
}

Result<BatchState::Overlay*> BatchApplier::LookupImpression(
    BatchState& b, std::string_view impression_id) {
  if (auto it = b.impressions.find(impression_id); it != b.impressions.end()) {
    return &it->second;
  }
  if (earlier_ != nullptr) {
    // Its write may or may not have reached the memtables: its overlay is
    // what the store holds after it.
    if (auto it = earlier_->impressions.find(impression_id);
        it != earlier_->impressions.end()) {
      return &b.impressions
                  .emplace(
                      impression_id,
                      BatchState::Overlay{it->second.Materialized(), false})
                  .first->second;
    }
  }
  ScopeTimer timer(&b.outcome.phases.lookup_seconds);
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), db_.cf(kImpressions), impression_id,
                    &value);
  if (s.IsNotFound()) return static_cast<BatchState::Overlay*>(nullptr);
  CFREC_RETURN_IF_ERROR(FromRocks(s, "reading impression"));
  auto rec = DecodeImpression(value);
  if (!rec.ok()) return rec.status();
  return &b.impressions
              .emplace(impression_id,
                       BatchState::Overlay{std::move(rec).value(), false})
              .first->second;
}

Status BatchApplier::ApplyImpression(BatchState& b, const EventView& e) {
  auto existing = LookupImpression(b, e.impression_id);
  if (!existing.ok()) return existing.status();
  if (*existing != nullptr) {
    ++b.outcome.duplicates;
    ++b.counters.duplicates;
    return Status::Ok();
  }
  // The event owns the list and the history; the overlay refers to them.
  AppliedEvent ev;
  ImpressionRecord rec;
  bool is_new = false;
  rec.user = users_.Stage(e.user_id, &is_new);
  rec.ts_ms = e.ts_ms;
  ev.items.resize(e.items.size());
  items_.StageAll(e.items, ev.items, &is_new);
  // Clicks are few: a linear search of the list beats building an index.
  const auto position = [&e](std::string_view item) -> std::optional<uint16_t> {
    auto it = std::find(e.items.begin(), e.items.end(), item);
    if (it == e.items.end()) return std::nullopt;
    return static_cast<uint16_t>(it - e.items.begin());
  };
  ev.history.resize(e.history.size());
  items_.StageAll(e.history, ev.history, &is_new);

  std::vector<uint16_t> clicked;
  for (const auto& c : e.clicks) {
    clicked.push_back(*position(c));  // ParseEvent: clicks within items
  }

  // Clicks that arrived before this impression: held in this batch or in
  // the pending_clicks family.
  std::vector<PendingClick> held;
  if (auto it = b.pending.find(e.impression_id); it != b.pending.end()) {
    held = std::move(it->second);
    b.pending.erase(it);
    // Held earlier in this batch: undo their pending_clicks puts.
    for (const auto& p : held) {
      b.wb.Delete(db_.cf(kPendingClicks),
                  PendingKey(e.impression_id, p.item_id))
          .PermitUncheckedError();
      --b.counters.clicks_pending;
    }
  }
  // Held by the batch being written: their rows may or may not be in the
  // store yet, so they come from its state and the scan below skips them.
  const std::vector<PendingClick>* held_earlier = nullptr;
  const size_t held_in_batch = held.size();
  if (earlier_ != nullptr) {
    if (auto it = earlier_->pending.find(e.impression_id);
        it != earlier_->pending.end()) {
      held_earlier = &it->second;
      for (const auto& p : *held_earlier) {
        held.push_back(p);
        b.wb.Delete(db_.cf(kPendingClicks),
                    PendingKey(e.impression_id, p.item_id))
            .PermitUncheckedError();
        --b.counters.clicks_pending;
      }
      b.resolved_pending_impressions.emplace(e.impression_id);
    }
  }
  const auto held_by_earlier = [held_earlier](std::string_view item) {
    return held_earlier != nullptr &&
           std::any_of(held_earlier->begin(), held_earlier->end(),
                       [item](const auto& p) { return p.item_id == item; });
  };
  if (pending_impressions_.contains(e.impression_id)) {
    std::string prefix(e.impression_id);
    prefix.push_back(kSep);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), db_.cf(kPendingClicks)));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      PendingClick p;
      p.item_id = it->key().ToString().substr(prefix.size());
      if (held_by_earlier(p.item_id)) continue;
      if (!DecodePending(it->value().ToStringView(), &p)) {
        return Status::Corruption("pending click");
      }
      held.push_back(std::move(p));
      b.wb.Delete(db_.cf(kPendingClicks), it->key()).PermitUncheckedError();
      --b.counters.clicks_pending;
    }
    CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading pending clicks"));
    b.resolved_pending_impressions.emplace(e.impression_id);
  }
  if (held_earlier != nullptr) {
    // In the order the store would give them once the earlier batch is
    // written (by item id), so that what follows does not depend on
    // whether it was.
    std::sort(held.begin() + static_cast<ptrdiff_t>(held_in_batch), held.end(),
              [](const PendingClick& x, const PendingClick& y) {
                return x.item_id < y.item_id;
              });
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
    ++b.outcome.clicks_joined;
    ++b.counters.clicks_joined;
  }

  // Its row and index rows are written when the batch ends (Finish).
  const std::string_view id = e.impression_id;
  std::sort(clicked.begin(), clicked.end());

  ev.seq = ++b.counters.applied_seq;
  ev.kind = AppliedEvent::Kind::kImpression;
  ev.user = rec.user;
  ev.ts_ms = rec.ts_ms;
  ev.clicked = clicked;
  b.log.AddImpression(ev);
  // Apply reserved one event per message, so the overlay's pointer stays
  // valid while the batch is built and written.
  const AppliedEvent& stored = b.outcome.events.emplace_back(std::move(ev));
  ++b.outcome.impressions;
  ++b.counters.impressions;
  rec.seq = b.counters.applied_seq;
  rec.clicked = std::move(clicked);
  b.impressions.emplace(
      id, BatchState::Overlay{std::move(rec), true, true, &stored});
  return Status::Ok();
}

Status BatchApplier::ApplyClick(BatchState& b, const EventView& e,
                                const ConsumedMessage& msg) {
  auto found = LookupImpression(b, e.impression_id);
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
    const auto has_item = [&e](const std::vector<PendingClick>& clicks) {
      return std::any_of(clicks.begin(), clicks.end(), [&e](const auto& p) {
        return p.item_id == e.item_id;
      });
    };
    bool seen = has_item(held);
    if (!seen && earlier_ != nullptr) {
      auto it = earlier_->pending.find(e.impression_id);
      seen = it != earlier_->pending.end() && has_item(it->second);
    }
    if (!seen && pending_impressions_.contains(e.impression_id)) {
      ScopeTimer timer(&b.outcome.phases.lookup_seconds);
      std::string v;
      auto s =
          db_->Get(rocksdb::ReadOptions(), db_.cf(kPendingClicks), key, &v);
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
    b.wb.Put(db_.cf(kPendingClicks), key, EncodePending(e.user_id, e.ts_ms))
        .PermitUncheckedError();
    b.new_pending_impressions.emplace(e.impression_id);
    ++b.outcome.clicks_pending;
    ++b.counters.clicks_pending;
    return Status::Ok();
  }
  BatchState::Overlay& overlay = **found;
  ImpressionRecord& rec = overlay.record;
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
  const std::vector<ItemIndex>& items = overlay.items();
  const auto pos_it = item_index
                          ? std::find(items.begin(), items.end(), *item_index)
                          : items.end();
  if (pos_it == items.end()) {
    AddDeadLetter(b,
                  "clicked item '" + std::string(e.item_id) +
                      "' is not in impression '" +
                      std::string(e.impression_id) + "'",
                  msg);
    return Status::Ok();
  }
  const auto position = static_cast<uint16_t>(pos_it - items.begin());
  const auto at =
      std::lower_bound(rec.clicked.begin(), rec.clicked.end(), position);
  if (at != rec.clicked.end() && *at == position) {
    ++b.outcome.duplicates;
    ++b.counters.duplicates;
    return Status::Ok();
  }
  rec.clicked.insert(at, position);
  overlay.dirty = true;

  AppliedEvent ev;
  ev.seq = ++b.counters.applied_seq;
  ev.kind = AppliedEvent::Kind::kClick;
  ev.user = rec.user;
  ev.ts_ms = e.ts_ms;
  ev.items = items;
  ev.clicked = {position};
  b.log.AddClick(ev.seq, rec.seq, position, e.ts_ms);
  b.outcome.events.push_back(std::move(ev));
  ++b.outcome.clicks_joined;
  ++b.counters.clicks_joined;
  return Status::Ok();
}

}  // namespace cfrec::state
