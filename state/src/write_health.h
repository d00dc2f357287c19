// WriteHealth: whether the store can write, and the way back after a write
// failed.
//
// RocksDB answers a failed write (the disk is full, the file system was
// remounted read-only, the device fails) by entering a background-error
// state in which every later write fails at once. The store's file system
// marks write errors retryable (fault_file_system.h), so RocksDB keeps the
// error resumable and retries in the background; DB::Resume() flushes the
// memtables to new files and switches to a new WAL, so it succeeds only once
// the disk takes writes again. The store routes each write through here:
//   - BeforeWrite(): after a failure, calls DB::Resume(); until it succeeds
//     the write is refused with the standing error. A write that failed was
//     not applied (its offsets went with it, nothing was published), so the
//     caller re-reads it and applies it once.
//   - AfterWrite(): records the result; an error becomes a message that
//     names the cause (disk full, read-only, I/O error) and the directory.
// Should RocksDB still declare an error fatal (Resume cannot clear it), the
// message says so: the store stays unwritable until the service restarts,
// and reopening recovers from the WAL (the stored offsets are those of the
// last applied batch, so a restart applies nothing twice either).
//
// Thread-safety: every method may be called from any thread (the ingest
// thread writes batches, the learner checkpoints, /readyz reads Get()).
#ifndef CFREC_STATE_SRC_WRITE_HEALTH_H_
#define CFREC_STATE_SRC_WRITE_HEALTH_H_

#include <rocksdb/db.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "cfrec/schemas/status.h"

namespace cfrec::state {

// The cause of a failed storage operation in plain words ("the disk holding
// the data directory D is full"), followed by RocksDB's own text.
std::string DescribeStorageError(const rocksdb::Status& s,
                                 std::string_view dir);

class WriteHealth {
 public:
  // `db` is not owned and must outlive this object; `dir` names the data
  // directory in messages.
  WriteHealth(rocksdb::DB* db, std::string dir);

  // OK when the last write succeeded (or none failed); otherwise tries to
  // leave RocksDB's error state and returns the error that still stands.
  Status BeforeWrite();
  // Records the result of a write described by `what` ("applying batch")
  // and returns it as a Status with a message naming the cause.
  Status AfterWrite(const rocksdb::Status& s, std::string_view what);

  // OK, or the error of the last failed write while it stands.
  Status Get() const;
  // Writes that failed since the store was opened.
  uint64_t failures() const;

 private:
  rocksdb::DB* const db_;
  const std::string dir_;
  mutable std::mutex mu_;
  Status error_;           // guarded by mu_
  uint64_t failures_ = 0;  // guarded by mu_
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_WRITE_HEALTH_H_
