#include "records.h"

#include "coding.h"
#include "layout.h"

namespace cfrec::state {

void EncodeImpression(UserIndex user, int64_t ts_ms, uint64_t seq,
                      std::span<const ItemIndex> items,
                      std::span<const ItemIndex> history,
                      std::span<const uint16_t> clicked, std::string* out) {
  out->clear();
  out->reserve(60 + 5 * (items.size() + history.size()) + 3 * clicked.size());
  coding::PutVarint(out, user);
  coding::PutVarint(out, static_cast<uint64_t>(ts_ms));
  coding::PutVarint(out, seq);
  coding::PutVarintList(out, items);
  coding::PutVarintList(out, history);
  coding::PutVarintList(out, clicked);
}

void EncodeImpression(const ImpressionRecord& r, std::string* out) {
  EncodeImpression(r.user, r.ts_ms, r.seq, r.items, r.history, r.clicked, out);
}

std::string EncodeImpression(const ImpressionRecord& r) {
  std::string out;
  EncodeImpression(r, &out);
  return out;
}

Result<ImpressionRecord> DecodeImpression(std::string_view v) {
  ImpressionRecord r;
  coding::Reader in(v);
  uint64_t ts = 0, n = 0;
  in.VarintAs(&r.user);
  in.Varint(&ts);
  r.ts_ms = static_cast<int64_t>(ts);
  in.Varint(&r.seq);
  if (in.Varint(&n) && n <= v.size()) {
    r.items.resize(n);
    for (auto& i : r.items) in.VarintAs(&i);
  }
  if (in.Varint(&n) && n <= v.size()) {
    r.history.resize(n);
    for (auto& h : r.history) in.VarintAs(&h);
  }
  if (in.Varint(&n) && n <= v.size()) {
    r.clicked.resize(n);
    for (auto& c : r.clicked) in.VarintAs(&c);
  }
  for (auto c : r.clicked) {
    if (c >= r.items.size()) return Status::Corruption("impression record");
  }
  if (!in.ok() || !in.done()) return Status::Corruption("impression record");
  return r;
}

std::string EncodePending(std::string_view user_id, int64_t ts_ms) {
  std::string out;
  coding::PutLengthPrefixed(&out, user_id);
  coding::PutVarint(&out, static_cast<uint64_t>(ts_ms));
  return out;
}

bool DecodePending(std::string_view v, PendingClick* p) {
  coding::Reader in(v);
  std::string_view user;
  uint64_t ts = 0;
  in.LengthPrefixed(&user);
  in.Varint(&ts);
  if (!in.ok()) return false;
  p->user_id = user;
  p->ts_ms = static_cast<int64_t>(ts);
  return true;
}

std::string PendingKey(std::string_view impression_id,
                       std::string_view item_id) {
  std::string k(impression_id);
  k.push_back(kSep);
  k.append(item_id);
  return k;
}

void TimeKey(int64_t ts_ms, std::string_view impression_id, std::string* out) {
  out->clear();
  coding::PutBE64(out, static_cast<uint64_t>(ts_ms));
  out->append(impression_id);
}

std::string TimeKey(int64_t ts_ms, std::string_view impression_id) {
  std::string k;
  TimeKey(ts_ms, impression_id, &k);
  return k;
}

}  // namespace cfrec::state
