#include "applied_log.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>

#include "coding.h"

namespace cfrec::state {
namespace {

constexpr uint8_t kImpressionTag = 0;
constexpr uint8_t kClickTag = 1;

template <typename T>
void PutList(std::string* out, const std::vector<T>& list) {
  coding::PutVarintList(out, std::span<const T>(list));
}

template <typename T>
bool GetList(coding::Reader& in, size_t limit, std::vector<T>* out) {
  uint64_t n = 0;
  if (!in.Varint(&n) || n > limit) return false;
  out->resize(n);
  for (auto& v : *out) in.VarintAs(&v);
  return in.ok();
}

// A decoded segment: events in full form except that clicks still name
// their impression (refs[i], 0 for impressions).
struct Segment {
  uint64_t first_seq = 0;
  std::vector<AppliedEvent> events;
  std::vector<uint64_t> refs;
};

Status DecodeSegment(std::string_view key, std::string_view value,
                     Segment* out) {
  if (key.size() != 8) return Status::Corruption("applied log key");
  out->first_seq = coding::GetBE64(key.data());
  out->events.clear();
  out->refs.clear();
  coding::Reader in(value);
  uint64_t count = 0;
  if (!in.Varint(&count) || count > kSegmentEvents || count == 0) {
    return Status::Corruption("applied log segment: bad count");
  }
  out->events.resize(count);
  out->refs.assign(count, 0);
  for (size_t i = 0; i < count; ++i) {
    AppliedEvent& e = out->events[i];
    e.seq = out->first_seq + i;
    uint8_t tag = 0;
    uint64_t ts = 0;
    in.VarintAs(&tag);
    if (tag == kImpressionTag) {
      e.kind = AppliedEvent::Kind::kImpression;
      in.VarintAs(&e.user);
      in.Varint(&ts);
      if (!GetList(in, value.size(), &e.items) ||
          !GetList(in, value.size(), &e.clicked) ||
          !GetList(in, value.size(), &e.history)) {
        return Status::Corruption("applied log segment: impression");
      }
    } else if (tag == kClickTag) {
      e.kind = AppliedEvent::Kind::kClick;
      uint64_t back = 0;
      uint16_t position = 0;
      in.Varint(&back);
      in.VarintAs(&position);
      in.Varint(&ts);
      if (back == 0 || back > e.seq) {
        return Status::Corruption("applied log segment: click reference");
      }
      out->refs[i] = e.seq - back;
      e.clicked = {position};
    } else {
      return Status::Corruption("applied log segment: bad kind");
    }
    e.ts_ms = static_cast<int64_t>(ts);
    if (!in.ok()) return Status::Corruption("applied log segment");
  }
  if (!in.done()) return Status::Corruption("applied log segment: trailing");
  return Status::Ok();
}

// Reads segments by the sequence number of an event they hold, keeping the
// last one read (clicks mostly name impressions of the same or the previous
// segment).
class SegmentLookup {
 public:
  explicit SegmentLookup(DbRef db)
      : it_(db->NewIterator(rocksdb::ReadOptions(), db.cf(kAppliedLog))) {}

  // The impression numbered `seq`, or an error.
  Result<const AppliedEvent*> Impression(uint64_t seq) {
    if (!Holds(seq)) {
      it_->SeekForPrev(SeqKey(seq));
      if (!it_->Valid()) {
        CFREC_RETURN_IF_ERROR(FromRocks(it_->status(), "reading applied log"));
        return Status::Corruption("applied log: click names a missing event");
      }
      CFREC_RETURN_IF_ERROR(DecodeSegment(
          it_->key().ToStringView(), it_->value().ToStringView(), &segment_));
      if (!Holds(seq)) {
        return Status::Corruption("applied log: click names a missing event");
      }
    }
    const AppliedEvent& e = segment_.events[seq - segment_.first_seq];
    if (e.kind != AppliedEvent::Kind::kImpression) {
      return Status::Corruption("applied log: click names a click");
    }
    return &e;
  }

 private:
  bool Holds(uint64_t seq) const {
    return !segment_.events.empty() && seq >= segment_.first_seq &&
           seq - segment_.first_seq < segment_.events.size();
  }

  std::unique_ptr<rocksdb::Iterator> it_;
  Segment segment_;
};

// Gives a click of `segment` its impression's user and list.
Status Resolve(const Segment& segment, size_t i, SegmentLookup& lookup,
               AppliedEvent* click) {
  const uint64_t ref = segment.refs[i];
  const AppliedEvent* impression = nullptr;
  if (ref >= segment.first_seq) {
    impression = &segment.events[ref - segment.first_seq];
    if (impression->kind != AppliedEvent::Kind::kImpression) {
      return Status::Corruption("applied log: click names a click");
    }
  } else {
    auto found = lookup.Impression(ref);
    if (!found.ok()) return found.status();
    impression = *found;
  }
  click->user = impression->user;
  click->items = impression->items;
  if (click->clicked.front() >= click->items.size()) {
    return Status::Corruption("applied log: click position past its list");
  }
  return Status::Ok();
}

}  // namespace

// The segment's count is one varint byte, written in front of the events
// when the segment ends (no copy of the events behind it).
static_assert(kSegmentEvents < 0x80);

void AppliedLogWriter::Start(DbRef db, rocksdb::WriteBatch* wb) {
  db_ = db;
  wb_ = wb;
  count_ = 0;
  body_.clear();
}

void AppliedLogWriter::Next(uint64_t seq) {
  if (count_ == kSegmentEvents) Finish();
  if (count_ == 0) {
    first_seq_ = seq;
    body_.assign(1, '\0');  // the count, set by Finish
  }
  ++count_;
}

void AppliedLogWriter::AddImpression(const AppliedEvent& e) {
  Next(e.seq);
  body_.push_back(static_cast<char>(kImpressionTag));
  coding::PutVarint(&body_, e.user);
  coding::PutVarint(&body_, static_cast<uint64_t>(e.ts_ms));
  PutList(&body_, e.items);
  PutList(&body_, e.clicked);
  PutList(&body_, e.history);
}

void AppliedLogWriter::AddClick(uint64_t seq, uint64_t impression_seq,
                                uint16_t position, int64_t ts_ms) {
  Next(seq);
  body_.push_back(static_cast<char>(kClickTag));
  coding::PutVarint(&body_, seq - impression_seq);
  coding::PutVarint(&body_, position);
  coding::PutVarint(&body_, static_cast<uint64_t>(ts_ms));
}

void AppliedLogWriter::Finish() {
  if (count_ == 0) return;
  body_[0] = static_cast<char>(count_);
  wb_->Put(db_.cf(kAppliedLog), SeqKey(first_seq_), body_)
      .PermitUncheckedError();
  count_ = 0;
  body_.clear();
}

Result<std::vector<AppliedEvent>> ReadAppliedLog(DbRef db, uint64_t from_seq,
                                                 size_t max) {
  std::vector<AppliedEvent> out;
  if (max == 0) return out;
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(rocksdb::ReadOptions(), db.cf(kAppliedLog)));
  // The segment holding from_seq starts at or before it.
  it->SeekForPrev(SeqKey(from_seq));
  if (!it->Valid()) it->Seek(SeqKey(from_seq));
  SegmentLookup lookup(db);
  Segment segment;
  for (; it->Valid() && out.size() < max; it->Next()) {
    CFREC_RETURN_IF_ERROR(DecodeSegment(it->key().ToStringView(),
                                        it->value().ToStringView(), &segment));
    for (size_t i = 0; i < segment.events.size() && out.size() < max; ++i) {
      AppliedEvent& e = segment.events[i];
      if (e.seq < from_seq) continue;
      if (e.kind == AppliedEvent::Kind::kClick) {
        CFREC_RETURN_IF_ERROR(Resolve(segment, i, lookup, &e));
      }
      out.push_back(e);
    }
  }
  CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading applied log"));
  return out;
}

}  // namespace cfrec::state
