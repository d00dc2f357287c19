#include "dictionaries.h"

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

void Dictionaries::Stage(rocksdb::WriteBatch* wb) const {
  for (const IdDictionary* dict : {&users_, &items_}) {
    const char fwd = dict == &users_ ? 'u' : 'i';
    const char rev = dict == &users_ ? 'U' : 'I';
    uint32_t index = dict->staged_base();
    for (const auto& name : dict->staged()) {
      std::string idx;
      coding::PutBE32(&idx, index);
      wb->Put(db_.cf(kDictionary), DictKey(fwd, name), idx)
          .PermitUncheckedError();
      wb->Put(db_.cf(kDictionary), DictReverseKey(rev, index), name)
          .PermitUncheckedError();
      ++index;
    }
  }
}

void Dictionaries::Publish() {
  users_.Publish();
  items_.Publish();
}

void Dictionaries::Discard() {
  users_.Discard();
  items_.Discard();
}

}  // namespace cfrec::state
