#include "counters.h"

#include <string>
#include <string_view>

#include "coding.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kCountersKey = "counters";

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

}  // namespace

Status RunningCounters::Load() {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), db_.cf(kMeta),
                    std::string(kCountersKey), &value);
  if (s.ok()) {
    if (!DecodeCounters(value, &counters_)) {
      return Status::Corruption("meta counters");
    }
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "reading counters");
  }
  return Status::Ok();
}

void RunningCounters::Stage(const StoreCounters& counters,
                            rocksdb::WriteBatch* wb) const {
  wb->Put(db_.cf(kMeta), std::string(kCountersKey), EncodeCounters(counters))
      .PermitUncheckedError();
}

}  // namespace cfrec::state
