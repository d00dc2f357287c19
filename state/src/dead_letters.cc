#include "dead_letters.h"

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "coding.h"

namespace cfrec::state {
namespace {

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

}  // namespace

void DeadLetterLog::Stage(const DeadLetter& d, rocksdb::WriteBatch* wb) const {
  wb->Put(db_.cf(kDeadLetters), SeqKey(d.seq), EncodeDeadLetter(d))
      .PermitUncheckedError();
}

Result<std::vector<DeadLetter>> DeadLetterLog::Read(uint64_t from_seq,
                                                    size_t max) const {
  std::vector<DeadLetter> out;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), db_.cf(kDeadLetters)));
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

}  // namespace cfrec::state
