// StorageFaults: a switch that makes a store's file writes fail, for fault
// tests and drills. StoreOptions::faults shares one with the store; while a
// fault is set, every write RocksDB makes (WAL appends and syncs, new SST,
// MANIFEST and WAL files) fails with that fault's error, as a full disk, a
// file system remounted read-only or a failing device would make it fail.
// Reads are untouched. Clearing the fault is "the operator freed space".
//
// Thread-safety: every method may be called from any thread.
#ifndef CFREC_STATE_STORAGE_FAULTS_H_
#define CFREC_STATE_STORAGE_FAULTS_H_

#include <atomic>
#include <cstdint>
#include <string_view>

namespace cfrec::state {

enum class StorageFault {
  kNone,      // writes go through
  kNoSpace,   // ENOSPC: "No space left on device"
  kReadOnly,  // EROFS: "Read-only file system"
  kIOError,   // EIO: "Input/output error"
};

// "none", "no_space", "read_only", "io_error".
std::string_view StorageFaultName(StorageFault fault);

class StorageFaults {
 public:
  void Set(StorageFault fault) { fault_.store(fault); }
  void Clear() { Set(StorageFault::kNone); }
  StorageFault Get() const { return fault_.load(); }

  // Counts one write refused because of the fault; how many were.
  void CountFailure() { failures_.fetch_add(1); }
  uint64_t failures() const { return failures_.load(); }

 private:
  std::atomic<StorageFault> fault_{StorageFault::kNone};
  std::atomic<uint64_t> failures_{0};
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_STORAGE_FAULTS_H_
