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

Result<std::vector<StoredImpression>> EventReader::ImpressionsInWindow(
    int64_t from_ms, int64_t to_ms, size_t limit) const {
  std::vector<StoredImpression> out;
  if (from_ms < 0) from_ms = 0;
  if (to_ms <= from_ms) return out;
  std::string start;
  coding::PutBE64(&start, static_cast<uint64_t>(from_ms));
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), db_.cf(kTimeIndex)));
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

Result<std::vector<AppliedEvent>> EventReader::ReadApplied(uint64_t from_seq,
                                                           size_t max) const {
  return ReadAppliedLog(db_, from_seq, max);
}

}  // namespace cfrec::state
