#include "dictionaries.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "coding.h"

namespace cfrec::state {
namespace {

std::string DictKey(char kind, std::string_view id) {
  std::string k(1, kind);
  k.append(id);
  return k;
}

std::string DictReverseKey(char kind, uint32_t index) {
  std::string k(1, kind);
  coding::PutBE32(&k, index);
  return k;
}

}  // namespace

Status Dictionaries::Load() {
  // Reverse entries iterate in index order.
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), db_.cf(kDictionary)));
  for (char kind : {'U', 'I'}) {
    IdDictionary& dict = kind == 'U' ? users_ : items_;
    uint32_t expect = 0;
    for (it->Seek(std::string(1, kind)); it->Valid(); it->Next()) {
      const auto key = it->key();
      if (key.size() != 5 || key[0] != kind) break;
      const uint32_t index = coding::GetBE32(key.data() + 1);
      if (index != expect) {
        return Status::Corruption("dictionary gap at index " +
                                  std::to_string(expect));
      }
      dict.LoadAppend(it->value().ToString());
      ++expect;
    }
    CFREC_RETURN_IF_ERROR(FromRocks(it->status(), "reading dictionary"));
  }
  return Status::Ok();
}

Dictionaries::Marks Dictionaries::Stage(const Marks& from,
                                        rocksdb::WriteBatch* wb) const {
  for (const IdDictionary* dict : {&users_, &items_}) {
    const char fwd = dict == &users_ ? 'u' : 'i';
    const char rev = dict == &users_ ? 'U' : 'I';
    const uint32_t base = dict->staged_base();
    uint32_t index = std::max(base, dict == &users_ ? from.users : from.items);
    const auto& staged = dict->staged();
    for (; index < base + staged.size(); ++index) {
      const std::string& name = staged[index - base];
      std::string idx;
      coding::PutBE32(&idx, index);
      wb->Put(db_.cf(kDictionary), DictKey(fwd, name), idx)
          .PermitUncheckedError();
      wb->Put(db_.cf(kDictionary), DictReverseKey(rev, index), name)
          .PermitUncheckedError();
    }
  }
  return StagedEnd();
}

void Dictionaries::Publish(const Marks& through) {
  users_.PublishThrough(through.users);
  items_.PublishThrough(through.items);
}

void Dictionaries::Discard(const Marks& from) {
  users_.DiscardFrom(from.users);
  items_.DiscardFrom(from.items);
}

}  // namespace cfrec::state
