#include "cfrec/state/background_priority.h"

#include <rocksdb/env.h>

#include <string>

namespace cfrec::state {

Status SetStorageBackgroundPriority(std::string_view priority) {
  rocksdb::CpuPriority cpu;
  if (priority == "normal") {
    return Status::Ok();  // RocksDB's threads start at the process's nice
  } else if (priority == "low") {
    cpu = rocksdb::CpuPriority::kLow;
  } else if (priority == "idle") {
    cpu = rocksdb::CpuPriority::kIdle;
  } else {
    return Status::InvalidArgument(
        "storage background priority must be "
        "normal, low or idle, not '" +
        std::string(priority) + "'");
  }
  rocksdb::Env* env = rocksdb::Env::Default();
  for (const auto pool :
       {rocksdb::Env::Priority::LOW, rocksdb::Env::Priority::HIGH,
        rocksdb::Env::Priority::BOTTOM}) {
    const rocksdb::Status s = env->LowerThreadPoolCPUPriority(pool, cpu);
    if (!s.ok()) {
      return Status::Unsupported(
          "cannot lower the storage threads' priority: " + s.ToString());
    }
  }
  return Status::Ok();
}

}  // namespace cfrec::state
