#include "cfrec/state/applied_event.h"

#include "coding.h"

namespace cfrec::state {

std::string EncodeAppliedEvent(const AppliedEvent& e) {
  std::string out;
  out.reserve(16 + 3 * (e.items.size() + e.history.size()));
  coding::PutVarint(&out, e.seq);
  coding::PutVarint(&out, static_cast<uint8_t>(e.kind));
  coding::PutVarint(&out, e.user);
  coding::PutVarint(&out, static_cast<uint64_t>(e.ts_ms));
  coding::PutVarint(&out, e.items.size());
  for (auto i : e.items) coding::PutVarint(&out, i);
  coding::PutVarint(&out, e.clicked.size());
  for (auto p : e.clicked) coding::PutVarint(&out, p);
  coding::PutVarint(&out, e.history.size());
  for (auto h : e.history) coding::PutVarint(&out, h);
  return out;
}

Result<AppliedEvent> DecodeAppliedEvent(std::string_view bytes) {
  AppliedEvent e;
  coding::Reader r(bytes);
  uint64_t n = 0;
  uint8_t kind = 0;
  r.Varint(&e.seq);
  r.VarintAs(&kind);
  if (kind > 1) return Status::Corruption("applied event: bad kind");
  e.kind = static_cast<AppliedEvent::Kind>(kind);
  r.VarintAs(&e.user);
  uint64_t ts = 0;
  r.Varint(&ts);
  e.ts_ms = static_cast<int64_t>(ts);
  if (r.Varint(&n) && n <= bytes.size()) {
    e.items.resize(n);
    for (auto& i : e.items) r.VarintAs(&i);
  }
  if (r.Varint(&n) && n <= bytes.size()) {
    e.clicked.resize(n);
    for (auto& p : e.clicked) r.VarintAs(&p);
  }
  if (r.Varint(&n) && n <= bytes.size()) {
    e.history.resize(n);
    for (auto& h : e.history) r.VarintAs(&h);
  }
  if (!r.ok() || !r.done()) return Status::Corruption("applied event");
  return e;
}

}  // namespace cfrec::state
