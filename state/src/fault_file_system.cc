#include "fault_file_system.h"

#include <rocksdb/file_system.h>

#include <string>
#include <utility>

namespace cfrec::state {
namespace {

using rocksdb::FileOptions;
using rocksdb::FSWritableFile;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// The error a real file system gives for `fault` (OK for kNone). The
// messages carry the errno text, as RocksDB's POSIX file system's do.
IOStatus Injected(StorageFault fault, StorageFaults& faults) {
  switch (fault) {
    case StorageFault::kNone:
      return IOStatus::OK();
    case StorageFault::kNoSpace:
      faults.CountFailure();
      return IOStatus::NoSpace("injected", "No space left on device");
    case StorageFault::kReadOnly:
      faults.CountFailure();
      return IOStatus::IOError("injected", "Read-only file system");
    case StorageFault::kIOError:
      faults.CountFailure();
      return IOStatus::IOError("injected", "Input/output error");
  }
  return IOStatus::OK();
}

class FaultWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<FSWritableFile> file,
                    std::shared_ptr<StorageFaults> faults)
      : FSWritableFileOwnerWrapper(std::move(file)),
        faults_(std::move(faults)) {}

  IOStatus Append(const Slice& data, const IOOptions& options,
                  IODebugContext* dbg) override {
    IOStatus s = Check();
    return s.ok() ? FSWritableFileOwnerWrapper::Append(data, options, dbg) : s;
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    IOStatus s = Check();
    return s.ok() ? FSWritableFileOwnerWrapper::Append(data, options, info, dbg)
                  : s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset,
                            const IOOptions& options,
                            IODebugContext* dbg) override {
    IOStatus s = Check();
    return s.ok() ? FSWritableFileOwnerWrapper::PositionedAppend(data, offset,
                                                                 options, dbg)
                  : s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset,
                            const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    IOStatus s = Check();
    return s.ok() ? FSWritableFileOwnerWrapper::PositionedAppend(
                        data, offset, options, info, dbg)
                  : s;
  }
  IOStatus Flush(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = Check();
    return s.ok() ? FSWritableFileOwnerWrapper::Flush(options, dbg) : s;
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = Check();
    return s.ok() ? FSWritableFileOwnerWrapper::Sync(options, dbg) : s;
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = Check();
    return s.ok() ? FSWritableFileOwnerWrapper::Fsync(options, dbg) : s;
  }
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    IOStatus s = Check();
    return s.ok() ? FSWritableFileOwnerWrapper::RangeSync(offset, nbytes,
                                                          options, dbg)
                  : s;
  }

 private:
  IOStatus Check() { return Injected(faults_->Get(), *faults_); }

  std::shared_ptr<StorageFaults> faults_;
};

// A file system that hands every writable file it opens (new, reopened or
// reused) to Wrap(), which may fail the open or wrap the file.
class WritableFileHook : public rocksdb::FileSystemWrapper {
 public:
  using FileSystemWrapper::FileSystemWrapper;

  IOStatus NewWritableFile(const std::string& name, const FileOptions& options,
                           std::unique_ptr<FSWritableFile>* result,
                           IODebugContext* dbg) override {
    return Wrap(FileSystemWrapper::NewWritableFile(name, options, result, dbg),
                result);
  }
  IOStatus ReopenWritableFile(const std::string& name,
                              const FileOptions& options,
                              std::unique_ptr<FSWritableFile>* result,
                              IODebugContext* dbg) override {
    return Wrap(
        FileSystemWrapper::ReopenWritableFile(name, options, result, dbg),
        result);
  }
  IOStatus ReuseWritableFile(const std::string& name,
                             const std::string& old_name,
                             const FileOptions& options,
                             std::unique_ptr<FSWritableFile>* result,
                             IODebugContext* dbg) override {
    return Wrap(FileSystemWrapper::ReuseWritableFile(name, old_name, options,
                                                     result, dbg),
                result);
  }

 protected:
  virtual IOStatus Wrap(IOStatus opened,
                        std::unique_ptr<FSWritableFile>* result) = 0;
};

class FaultFileSystem final : public WritableFileHook {
 public:
  FaultFileSystem(const std::shared_ptr<rocksdb::FileSystem>& target,
                  std::shared_ptr<StorageFaults> faults)
      : WritableFileHook(target), faults_(std::move(faults)) {}

  const char* Name() const override { return "CfrecFaultFileSystem"; }

 private:
  // Fails the creation while a fault is set; wraps the file otherwise, so
  // that a file opened before the fault fails its later writes.
  IOStatus Wrap(IOStatus opened,
                std::unique_ptr<FSWritableFile>* result) override {
    if (!opened.ok()) return opened;
    IOStatus s = Injected(faults_->Get(), *faults_);
    if (!s.ok()) {
      result->reset();
      return s;
    }
    *result = std::make_unique<FaultWritableFile>(std::move(*result), faults_);
    return IOStatus::OK();
  }

  std::shared_ptr<StorageFaults> faults_;
};

// Marks every failed write as retryable. RocksDB then treats a failed WAL
// append or sync like a failed flush: it stops writes and resumes by itself
// (flushing the memtables and switching to a new WAL) once writes succeed
// again, instead of declaring the error fatal, which only a reopen clears.
// A full disk too: RocksDB handles a retryable error with the NoSpace
// subcode apart, and may still declare it fatal, so it becomes a plain I/O
// error (its message keeps "No space left on device").
IOStatus Retryable(IOStatus s) {
  if (s.ok() || !s.IsIOError()) return s;
  if (s.IsNoSpace()) {
    s = IOStatus::IOError(s.getState() != nullptr ? s.getState()
                                                  : "No space left on device");
  }
  s.SetRetryable(true);
  return s;
}

class RetryableWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  using FSWritableFileOwnerWrapper::FSWritableFileOwnerWrapper;

  IOStatus Append(const Slice& data, const IOOptions& options,
                  IODebugContext* dbg) override {
    return Retryable(FSWritableFileOwnerWrapper::Append(data, options, dbg));
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    return Retryable(
        FSWritableFileOwnerWrapper::Append(data, options, info, dbg));
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset,
                            const IOOptions& options,
                            IODebugContext* dbg) override {
    return Retryable(FSWritableFileOwnerWrapper::PositionedAppend(
        data, offset, options, dbg));
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset,
                            const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    return Retryable(FSWritableFileOwnerWrapper::PositionedAppend(
        data, offset, options, info, dbg));
  }
  IOStatus Flush(const IOOptions& options, IODebugContext* dbg) override {
    return Retryable(FSWritableFileOwnerWrapper::Flush(options, dbg));
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    return Retryable(FSWritableFileOwnerWrapper::Sync(options, dbg));
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    return Retryable(FSWritableFileOwnerWrapper::Fsync(options, dbg));
  }
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    return Retryable(
        FSWritableFileOwnerWrapper::RangeSync(offset, nbytes, options, dbg));
  }
};

class RetryableFileSystem final : public WritableFileHook {
 public:
  using WritableFileHook::WritableFileHook;
  const char* Name() const override { return "CfrecRetryableFileSystem"; }

 private:
  IOStatus Wrap(IOStatus opened,
                std::unique_ptr<FSWritableFile>* result) override {
    if (!opened.ok()) return Retryable(std::move(opened));
    *result = std::make_unique<RetryableWritableFile>(std::move(*result));
    return opened;
  }
};

}  // namespace

std::string_view StorageFaultName(StorageFault fault) {
  switch (fault) {
    case StorageFault::kNone:
      return "none";
    case StorageFault::kNoSpace:
      return "no_space";
    case StorageFault::kReadOnly:
      return "read_only";
    case StorageFault::kIOError:
      return "io_error";
  }
  return "unknown";
}

std::unique_ptr<rocksdb::Env> NewStoreEnv(
    std::shared_ptr<StorageFaults> faults) {
  std::shared_ptr<rocksdb::FileSystem> fs = rocksdb::FileSystem::Default();
  if (faults != nullptr) {
    fs = std::make_shared<FaultFileSystem>(fs, std::move(faults));
  }
  return rocksdb::NewCompositeEnv(std::make_shared<RetryableFileSystem>(fs));
}

}  // namespace cfrec::state
