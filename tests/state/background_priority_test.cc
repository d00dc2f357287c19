#include "cfrec/state/background_priority.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/temp_dir.h"

namespace cfrec::state {
namespace {

// Nice values of this process's threads whose name starts with `prefix`.
std::vector<int> NiceOfThreads(const std::string& prefix) {
  std::vector<int> nice;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/self/task")) {
    std::string comm;
    std::getline(std::ifstream(task.path() / "comm"), comm);
    if (comm.rfind(prefix, 0) != 0) continue;
    std::string stat;
    std::getline(std::ifstream(task.path() / "stat"), stat);
    // Fields after the parenthesised name: state is field 3, nice field 19.
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 19 && rest >> field; ++i) {
    }
    nice.push_back(std::stoi(field));
  }
  return nice;
}

TEST(StorageBackgroundPriority, RejectsAnUnknownWord) {
  const Status s = SetStorageBackgroundPriority("fast");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_TRUE(SetStorageBackgroundPriority("normal").ok());
}

TEST(StorageBackgroundPriority, LowRunsTheFlushThreadAtNice19) {
  // RocksDB's threads start at the process's nice; at 19 already, the
  // change could not be told apart.
  if (getpriority(PRIO_PROCESS, 0) >= 19) {
    GTEST_SKIP() << "the test process already runs at nice 19";
  }
  ASSERT_TRUE(SetStorageBackgroundPriority("low").ok());
  cfrec::testing::TempDir dir;
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir.path() + "/db", &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "k", "v").ok());
  // A flush job runs on the HIGH pool; its thread takes the new priority
  // before running it, and Flush waits for it.
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<int> nice = NiceOfThreads("rocksdb:high");
  while ((nice.empty() || nice.front() != 19) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    nice = NiceOfThreads("rocksdb:high");
  }
  ASSERT_FALSE(nice.empty());
  for (int n : nice) EXPECT_EQ(n, 19);
}

}  // namespace
}  // namespace cfrec::state
