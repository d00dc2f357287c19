#include "event_reader.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "applied_log.h"
#include "coding.h"
#include "records.h"

namespace cfrec::state {

Result<StoredImpression> EventReader::ReadStoredImpression(
    std::string_view id, std::string_view value) const {
  auto rec = DecodeImpression(value);
  if (!rec.ok()) return rec.status();
  StoredImpression out;
  out.impression_id = id;
  out.user = rec->user;
  out.ts_ms = rec->ts_ms;
  out.items = std::move(rec->items);
  out.history = std::move(rec->history);
  out.clicked = std::move(rec->clicked);
  return out;
}

Result<StoredImpression> EventReader::GetImpression(
    std::string_view impression_id) const {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), db_.cf(kImpressions), impression_id,
                    &value);
  if (s.IsNotFound()) {
    return Status::NotFound("no impression '" + std::string(impression_id) +
                            "'");
  }
  CFREC_RETURN_IF_ERROR(FromRocks(s, "reading impression"));
  return ReadStoredImpression(impression_id, value);
}

Result<std::vector<StoredImpression>> EventReader::GetImpressions(
    std::span<const std::string> ids) const {
  std::vector<StoredImpression> out;
  out.reserve(ids.size());
  for (const std::string& id : ids) {
    auto imp = GetImpression(id);
    if (!imp.ok()) return imp.status();
    out.push_back(std::move(imp).value());
  }
  return out;
}

Result<std::vector<AppliedEvent>> EventReader::ReadApplied(uint64_t from_seq,
                                                           size_t max) const {
  return ReadAppliedLog(db_, from_seq, max);
}

}  // namespace cfrec::state
