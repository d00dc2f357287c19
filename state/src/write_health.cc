#include "write_health.h"

#include <utility>

#include "cfrec/schemas/log.h"

namespace cfrec::state {
namespace {

bool Contains(const rocksdb::Status& s, std::string_view text) {
  return s.ToString().find(text) != std::string::npos;
}

}  // namespace

WriteHealth::WriteHealth(rocksdb::DB* db, std::string dir)
    : db_(db), dir_(std::move(dir)) {}

Status WriteHealth::BeforeWrite() {
  {
    std::lock_guard lock(mu_);
    if (error_.ok()) return Status::Ok();
  }
  rocksdb::Status resumed = db_->Resume();
  std::lock_guard lock(mu_);
  if (error_.ok()) return Status::Ok();  // another writer recovered
  if (!resumed.ok()) {
    // Still unwritable (Busy: RocksDB's own recovery is retrying). An error
    // RocksDB declared fatal is one that only a reopen clears.
    if (resumed.severity() >= rocksdb::Status::Severity::kFatalError) {
      return Status::Unavailable(
          error_.message() +
          "; RocksDB cannot resume writing after this error (" +
          resumed.ToString() +
          "): restart the service once the cause is fixed; it recovers from "
          "the WAL and applies nothing twice");
    }
    return error_;
  }
  // Resume wrote (it flushes the memtables), so writes go through again.
  LogInfo("state", "writes to " + dir_ + " succeed again");
  error_ = Status::Ok();
  return Status::Ok();
}

Status WriteHealth::AfterWrite(const rocksdb::Status& s,
                               std::string_view what) {
  if (s.ok()) {
    std::lock_guard lock(mu_);
    if (!error_.ok()) {
      LogInfo("state", "writes to " + dir_ + " succeed again");
      error_ = Status::Ok();
    }
    return Status::Ok();
  }
  Status error = Status::Unavailable(
      std::string(what) + ": " + DescribeStorageError(s, dir_) +
      "; nothing of it was applied, it is retried");
  std::lock_guard lock(mu_);
  ++failures_;
  if (error_.ok()) LogError("state", error.message());
  error_ = error;
  return error;
}

Status WriteHealth::Get() const {
  std::lock_guard lock(mu_);
  return error_;
}

uint64_t WriteHealth::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

std::string DescribeStorageError(const rocksdb::Status& s,
                                 std::string_view dir) {
  const std::string d(dir);
  std::string cause;
  if (s.IsNoSpace() || Contains(s, "No space left on device")) {
    cause = "the disk holding the data directory " + d + " is full";
  } else if (Contains(s, "Read-only file system")) {
    cause = "the data directory " + d + " is on a read-only file system";
  } else if (Contains(s, "Permission denied")) {
    cause = "the data directory " + d + " is not writable";
  } else if (s.IsIOError()) {
    cause = "an I/O operation in the data directory " + d + " failed";
  } else {
    return s.ToString();
  }
  return cause + " (" + s.ToString() + ")";
}

}  // namespace cfrec::state
