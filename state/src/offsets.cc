#include "offsets.h"

#include <memory>
#include <vector>

#include "coding.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kLogIdKey = "log_id";  // + kSep + topic

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

}  // namespace

Status OffsetTable::Load() {
  std::unique_ptr<rocksdb::Iterator> off(
      db_->NewIterator(rocksdb::ReadOptions(), db_.cf(kOffsets)));
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
  return FromRocks(off->status(), "reading offsets");
}

bool OffsetTable::Admit(const ConsumedMessage& msg, NextOffsetMap* batch_next,
                        const NextOffsetMap* earlier) const {
  std::pair<std::string, int32_t> part{std::string(msg.topic), msg.partition};
  auto next_it = batch_next->find(part);
  int64_t next = -1;
  if (next_it != batch_next->end()) {
    next = next_it->second;
  } else if (earlier != nullptr && earlier->contains(part)) {
    next = earlier->at(part);
  } else {
    std::lock_guard lock(mu_);
    auto it = offsets_.find(part);
    if (it != offsets_.end()) next = it->second;
  }
  if (msg.offset < next) return false;
  (*batch_next)[part] = msg.offset + 1;
  return true;
}

void OffsetTable::Stage(const NextOffsetMap& batch_next,
                        rocksdb::WriteBatch* wb) const {
  for (const auto& [part, next] : batch_next) {
    std::string v;
    coding::PutBE64(&v, static_cast<uint64_t>(next));
    wb->Put(db_.cf(kOffsets), OffsetKey(part.first, part.second), v)
        .PermitUncheckedError();
  }
}

void OffsetTable::Publish(const NextOffsetMap& batch_next) {
  std::lock_guard lock(mu_);
  for (const auto& [part, next] : batch_next) offsets_[part] = next;
}

Status OffsetTable::WriteOffsetReset(std::string_view topic,
                                     std::span<const int32_t> partitions,
                                     const std::string* log_id) {
  rocksdb::WriteBatch wb;
  for (int32_t p : partitions) {
    wb.Delete(db_.cf(kOffsets), OffsetKey(topic, p)).PermitUncheckedError();
  }
  if (log_id != nullptr) {
    wb.Put(db_.cf(kMeta), LogIdKey(topic), *log_id).PermitUncheckedError();
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync_writes_;
  CFREC_RETURN_IF_ERROR(
      FromRocks(db_->Write(wo, &wb), "resetting offsets of a topic"));
  std::lock_guard lock(mu_);
  for (int32_t p : partitions) offsets_.erase({std::string(topic), p});
  return Status::Ok();
}

Status OffsetTable::SetLogId(std::string_view topic, std::string_view log_id,
                             bool discard_offsets) {
  std::vector<int32_t> partitions;
  if (discard_offsets) {
    for (const auto& [p, next] : NextOffsets(topic)) partitions.push_back(p);
  }
  const std::string id(log_id);
  return WriteOffsetReset(topic, partitions, &id);
}

Status OffsetTable::DiscardOffsets(std::string_view topic,
                                   std::span<const int32_t> partitions) {
  return WriteOffsetReset(topic, partitions, nullptr);
}

Result<std::string> OffsetTable::LogId(std::string_view topic) const {
  std::string value;
  auto s =
      db_->Get(rocksdb::ReadOptions(), db_.cf(kMeta), LogIdKey(topic), &value);
  if (s.IsNotFound()) return std::string();
  CFREC_RETURN_IF_ERROR(FromRocks(s, "reading the log id"));
  return value;
}

std::map<int32_t, int64_t> OffsetTable::NextOffsets(
    std::string_view topic) const {
  std::map<int32_t, int64_t> out;
  std::lock_guard lock(mu_);
  for (const auto& [part, next] : offsets_) {
    if (part.first == topic) out[part.second] = next;
  }
  return out;
}

}  // namespace cfrec::state
