// The file system under the store: write errors marked retryable, and the
// fault switch of cfrec/state/storage_faults.h when StoreOptions::faults is
// given.
#ifndef CFREC_STATE_SRC_FAULT_FILE_SYSTEM_H_
#define CFREC_STATE_SRC_FAULT_FILE_SYSTEM_H_

#include <rocksdb/env.h>

#include <memory>

#include "cfrec/state/storage_faults.h"

namespace cfrec::state {

// The store's Env: the default file system, with every failed write marked
// retryable (RocksDB then stops writes after a failed WAL write and resumes
// them by itself once a write succeeds again, rather than declaring the
// error fatal, which only a reopen clears). With `faults` (shared; may be
// null), creating a writable file and every append, sync and flush of one
// fail with the fault's IOStatus while one is set.
std::unique_ptr<rocksdb::Env> NewStoreEnv(
    std::shared_ptr<StorageFaults> faults);

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_FAULT_FILE_SYSTEM_H_
