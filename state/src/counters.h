// The store's running counters (meta key "counters"): read at open, written
// with every batch, published once that batch is durable.
//
// Thread-safety: Get from any thread; Load, Stage and Publish from the apply
// thread.
#ifndef CFREC_STATE_SRC_COUNTERS_H_
#define CFREC_STATE_SRC_COUNTERS_H_

#include <rocksdb/write_batch.h>

#include <mutex>

#include "cfrec/schemas/status.h"
#include "cfrec/state/store_types.h"
#include "layout.h"

namespace cfrec::state {

class RunningCounters {
 public:
  explicit RunningCounters(DbRef db) : db_(db) {}

  Status Load();
  // The counters of every durable batch (users and items are left 0).
  StoreCounters Get() const {
    std::lock_guard lock(mu_);
    return counters_;
  }
  // Adds `counters`, a batch's result, to its WriteBatch.
  void Stage(const StoreCounters& counters, rocksdb::WriteBatch* wb) const;
  // After that batch's write: readers see `counters` from now on.
  void Publish(const StoreCounters& counters) {
    std::lock_guard lock(mu_);
    counters_ = counters;
  }

 private:
  DbRef db_;
  mutable std::mutex mu_;
  StoreCounters counters_;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_COUNTERS_H_
