// The dictionary family and its in-memory mirrors: users and items, each an
// external id <-> dense index. Keys: 'u'/'i' + external id -> index (BE32),
// and 'U'/'I' + index (BE32) -> external id.
//
// Thread-safety: as IdDictionary's. Ids staged while a batch is applied are
// written with it (Stage) and published only after its write (Publish).
#ifndef CFREC_STATE_SRC_DICTIONARIES_H_
#define CFREC_STATE_SRC_DICTIONARIES_H_

#include <rocksdb/write_batch.h>

#include "cfrec/schemas/status.h"
#include "id_dictionary.h"
#include "layout.h"

namespace cfrec::state {

class Dictionaries {
 public:
  explicit Dictionaries(DbRef db) : db_(db) {}

  // At open, before any reader exists.
  Status Load();

  IdDictionary& users() { return users_; }
  IdDictionary& items() { return items_; }
  const IdDictionary& users() const { return users_; }
  const IdDictionary& items() const { return items_; }

  // Writer only: adds the ids staged by the batch to its WriteBatch.
  void Stage(rocksdb::WriteBatch* wb) const;
  // Writer only: after the batch's write, readers see its ids; Discard
  // forgets them when the batch failed.
  void Publish();
  void Discard();

 private:
  DbRef db_;
  IdDictionary users_;
  IdDictionary items_;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_DICTIONARIES_H_
