// The dictionary family and its in-memory mirrors: users and items, each an
// external id <-> dense index. Keys: 'u'/'i' + external id -> index (BE32),
// and 'U'/'I' + index (BE32) -> external id.
//
// Thread-safety: as IdDictionary's. Ids staged while a batch is applied are
// written with it (Stage) and published only after its write (Publish).
#ifndef CFREC_STATE_SRC_DICTIONARIES_H_
#define CFREC_STATE_SRC_DICTIONARIES_H_

#include <rocksdb/write_batch.h>

#include <cstdint>

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

  // How far the ids of a batch reach: one past the last index of each
  // dictionary when the batch was staged.
  struct Marks {
    uint32_t users = 0;
    uint32_t items = 0;
  };
  // Writer only: where the next batch's ids begin (the end of the batches
  // staged so far).
  Marks StagedEnd() const { return {users_.staged_end(), items_.staged_end()}; }
  // Writer only: adds the ids staged since `from` (the batch's, see
  // StagedEnd) to its WriteBatch; returns the batch's marks.
  Marks Stage(const Marks& from, rocksdb::WriteBatch* wb) const;
  // Writer only: after a batch's write, readers see its ids (those below
  // `through`, the marks Stage returned for it); later batches' stay staged.
  void Publish(const Marks& through);
  // Writer only: forgets the ids staged from `from` on (batches that failed
  // or were never written).
  void Discard(const Marks& from);

 private:
  DbRef db_;
  IdDictionary users_;
  IdDictionary items_;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_DICTIONARIES_H_
