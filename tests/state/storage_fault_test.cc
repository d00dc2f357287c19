// Storage faults: a full disk, a read-only file system and a failing device
// under the store. Each failed write gives an error naming its cause, the
// store reports itself unhealthy, applies nothing of the failed batch, and
// once the fault clears it writes again by itself; replaying what was
// consumed then applies every event exactly once, also across a reopen.
//
// Two ways to fail the disk: the store's fault switch (StoreOptions::faults,
// always available) and a real tmpfs that is too small (needs the right to
// mount; skipped without it).
#include <errno.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kTopic = "events";

// Batch `b` of `n` impressions on partition 0 at offsets b*n.., each with a
// history of `history` items (to fill a disk quickly).
struct Batch {
  std::vector<std::string> payloads;
  int64_t first_offset = 0;

  static Batch Make(int b, int n, int history = 0) {
    Batch batch;
    batch.first_offset = static_cast<int64_t>(b) * n;
    for (int i = 0; i < n; ++i) {
      const int id = b * n + i;
      ImpressionEvent e{
          "imp" + std::to_string(id),
          "u" + std::to_string(id % 17),
          1000 + id,
          {"n" + std::to_string(id % 31), "n" + std::to_string(id % 7 + 40)},
          {},
          {}};
      for (int h = 0; h < history; ++h) {
        e.history.push_back("h" + std::to_string(id) + "-" + std::to_string(h));
      }
      batch.payloads.push_back(SerializeEvent(e));
    }
    return batch;
  }
  std::vector<ConsumedMessage> messages() const {
    std::vector<ConsumedMessage> out;
    for (size_t i = 0; i < payloads.size(); ++i) {
      out.push_back(
          {kTopic, 0, first_offset + static_cast<int64_t>(i), "", payloads[i]});
    }
    return out;
  }
};

Result<ApplyOutcome> Apply(EventStore& store, const Batch& b) {
  const auto msgs = b.messages();
  return store.ApplyBatch(msgs);
}

// Applies `b` until it succeeds or `deadline` passes, as the ingest loop
// retries a failed batch: RocksDB may still be recovering from the fault in
// the background when it clears.
Result<ApplyOutcome> ApplyUntilOk(EventStore& store, const Batch& b,
                                  std::chrono::seconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    auto r = Apply(store, b);
    if (r.ok() || std::chrono::steady_clock::now() > end) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::unique_ptr<EventStore> OpenStore(const std::string& dir,
                                      std::shared_ptr<StorageFaults> faults) {
  StoreOptions options;
  options.faults = std::move(faults);
  auto store = EventStore::Open(dir, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

struct FaultCase {
  StorageFault fault;
  std::string_view cause;  // in the error message
};

class StorageFaultTest : public ::testing::TestWithParam<FaultCase> {};

TEST_P(StorageFaultTest, FailedBatchIsNotAppliedAndIsAppliedOnceAfterTheFault) {
  cfrec::testing::TempDir dir;
  auto faults = std::make_shared<StorageFaults>();
  auto store = OpenStore(dir.path(), faults);
  ASSERT_NE(store, nullptr);
  constexpr int kPerBatch = 50;
  {
    auto first = Apply(*store, Batch::Make(0, kPerBatch));
    ASSERT_TRUE(first.ok()) << first.status().ToString();
  }
  ASSERT_TRUE(store->StorageHealth().ok());
  const StoreCounters before = store->Counters();

  faults->Set(GetParam().fault);
  const Batch failing = Batch::Make(1, kPerBatch);
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = Apply(*store, failing);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(GetParam().cause), std::string::npos)
        << r.status().ToString();
    EXPECT_NE(r.status().message().find(dir.path()), std::string::npos);
  }
  EXPECT_GT(faults->failures(), 0u);
  const Status health = store->StorageHealth();
  EXPECT_FALSE(health.ok());
  EXPECT_NE(health.message().find(GetParam().cause), std::string::npos);
  // Nothing of the failed batch is visible: not its events, not its
  // offsets, not its new users or items.
  EXPECT_EQ(store->Counters().impressions, before.impressions);
  EXPECT_EQ(store->Counters().applied_seq, before.applied_seq);
  EXPECT_EQ(store->NextOffsets(kTopic).at(0), kPerBatch);
  EXPECT_FALSE(store->GetImpression("imp" + std::to_string(kPerBatch)).ok());
  // Reads keep working.
  EXPECT_TRUE(store->GetImpression("imp0").ok());

  faults->Clear();
  auto retried = ApplyUntilOk(*store, failing, std::chrono::seconds(20));
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(retried->impressions, static_cast<size_t>(kPerBatch));
  EXPECT_TRUE(store->StorageHealth().ok());
  ASSERT_TRUE(Apply(*store, Batch::Make(2, kPerBatch)).ok());
  EXPECT_EQ(store->Counters().impressions, 3u * kPerBatch);
  EXPECT_EQ(store->Counters().applied_seq, 3u * kPerBatch);

  // Durable and exact: after a reopen the store holds each event once, and
  // every batch delivered again is recognised as applied.
  store.reset();
  store = OpenStore(dir.path(), nullptr);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Counters().impressions, 3u * kPerBatch);
  EXPECT_EQ(store->NextOffsets(kTopic).at(0), 3 * kPerBatch);
  for (int b = 0; b < 3; ++b) {
    auto again = Apply(*store, Batch::Make(b, kPerBatch));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->redelivered, static_cast<size_t>(kPerBatch));
    EXPECT_TRUE(again->events.empty());
  }
  auto applied = store->ReadApplied(1, 1000);
  ASSERT_TRUE(applied.ok());
  ASSERT_EQ(applied->size(), 3u * kPerBatch);
  for (size_t i = 0; i < applied->size(); ++i) {
    EXPECT_EQ((*applied)[i].seq, i + 1);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Faults, StorageFaultTest,
    ::testing::Values(FaultCase{StorageFault::kNoSpace, "is full"},
                      FaultCase{StorageFault::kReadOnly, "read-only"},
                      FaultCase{StorageFault::kIOError, "failed"}),
    [](const auto& info) {
      return std::string(StorageFaultName(info.param.fault));
    });

// The impression indexes after failed writes and a crash: a batch whose
// write failed leaves nothing in the user log or the time index, the retry
// adds its impressions once, and a process that dies after a failed write
// (no clean close) reopens with every applied impression indexed once and
// nothing of the failed batch; delivering everything again then indexes the
// rest once. Windows of 60 impressions and batches of 50, so writes that
// fail or crash close a window or add to one.
constexpr int kIndexBatch = 50;
constexpr size_t kIndexWindow = 60;

std::vector<std::string> AllIds(int impressions, int user = -1) {
  std::vector<std::string> ids;
  for (int id = 0; id < impressions; ++id) {
    if (user < 0 || id % 17 == user) ids.push_back("imp" + std::to_string(id));
  }
  return ids;  // ts 1000 + id: time order is id order
}

std::vector<std::string> Ids(const Result<std::vector<StoredImpression>>& r) {
  std::vector<std::string> ids;
  if (r.ok()) {
    for (const auto& imp : *r) ids.push_back(imp.impression_id);
  }
  return ids;
}

void ExpectIndexed(const EventStore& store, int impressions) {
  EXPECT_EQ(store.Counters().impressions, static_cast<uint64_t>(impressions));
  EXPECT_EQ(Ids(store.ImpressionsInWindow(0, 1 << 30, 100000)),
            AllIds(impressions));
  for (int u = 0; u < 17; ++u) {
    const auto user = store.FindUser("u" + std::to_string(u));
    ASSERT_TRUE(user.has_value());
    const std::vector<std::string> all = AllIds(impressions, u);
    EXPECT_EQ(Ids(store.UserImpressions(*user, 0, 1 << 30, 100000)), all)
        << "u" << u;
    EXPECT_EQ(Ids(store.RecentUserImpressions(*user, 4)),
              std::vector<std::string>(all.end() - 4, all.end()))
        << "u" << u;
  }
}

// The child's run: batches 0-5 applied (batch 4 after a failed write), a
// failed write of batch 6, then the process ends without closing the
// store. Returns the exit code: 0, or where it went wrong.
int ApplyThenDieAfterAFailedWrite(const std::string& dir) {
  auto faults = std::make_shared<StorageFaults>();
  StoreOptions options;
  options.faults = faults;
  options.user_log_window = kIndexWindow;
  auto opened = EventStore::Open(dir, options);
  if (!opened.ok()) return 10;
  // Never closed, whatever happens: the process dies with it open.
  EventStore& store = *opened->release();
  for (int b = 0; b < 4; ++b) {
    if (!Apply(store, Batch::Make(b, kIndexBatch)).ok()) return 11;
  }
  faults->Set(StorageFault::kIOError);
  if (Apply(store, Batch::Make(4, kIndexBatch)).ok()) return 12;
  if (Ids(store.ImpressionsInWindow(0, 1 << 30, 100000)) !=
      AllIds(4 * kIndexBatch)) {
    return 13;
  }
  faults->Clear();
  if (!ApplyUntilOk(store, Batch::Make(4, kIndexBatch),
                    std::chrono::seconds(20))
           .ok()) {
    return 14;
  }
  if (!Apply(store, Batch::Make(5, kIndexBatch)).ok()) return 15;
  faults->Set(StorageFault::kIOError);
  if (Apply(store, Batch::Make(6, kIndexBatch)).ok()) return 16;
  if (Ids(store.ImpressionsInWindow(0, 1 << 30, 100000)) !=
      AllIds(6 * kIndexBatch)) {
    return 17;
  }
  return 0;  // and no clean close
}

TEST(StorageFault, ImpressionIndexIsExactAfterAFailedWriteAndACrash) {
  cfrec::testing::TempDir dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0) << std::strerror(errno);
  if (child == 0) {
    // A fork copies only this thread: should the child wait on a thread
    // pool the parent had started, the alarm ends it instead of the test
    // hanging.
    ::alarm(30);
    ::_exit(ApplyThenDieAfterAFailedWrite(dir.path()));
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_FALSE(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
      << "the child did not finish within 30 s";
  ASSERT_TRUE(WIFEXITED(status)) << status;
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the child's step that failed";

  StoreOptions options;
  options.user_log_window = kIndexWindow;
  auto store = EventStore::Open(dir.path(), options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ExpectIndexed(**store, 6 * kIndexBatch);
  // Everything delivered again: batches 0-5 are recognised, 6 is applied.
  for (int b = 0; b <= 6; ++b) {
    auto again = Apply(**store, Batch::Make(b, kIndexBatch));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again->redelivered, b < 6 ? size_t{kIndexBatch} : 0u) << b;
  }
  ExpectIndexed(**store, 7 * kIndexBatch);
  store->reset();
  store = EventStore::Open(dir.path(), options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ExpectIndexed(**store, 7 * kIndexBatch);
}

TEST(StorageFault, CheckpointWriteFailsClearlyAndTheOldOneStays) {
  cfrec::testing::TempDir dir;
  auto faults = std::make_shared<StorageFaults>();
  auto store = OpenStore(dir.path(), faults);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->PutCheckpoint("model", "v1").ok());
  faults->Set(StorageFault::kNoSpace);
  Status s = store->PutCheckpoint("model", "v2");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("writing checkpoint"), std::string::npos);
  EXPECT_NE(s.message().find("is full"), std::string::npos);
  EXPECT_EQ(store->GetCheckpoint("model").value(), "v1");
  faults->Clear();
  // As the learner does at its next checkpoint: try again (RocksDB may
  // still be resuming in the background).
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!s.ok() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    s = store->PutCheckpoint("model", "v2");
  }
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(store->GetCheckpoint("model").value(), "v2");
  EXPECT_TRUE(store->StorageHealth().ok());
}

// A tmpfs mounted at a temporary directory, unmounted at scope exit.
class Tmpfs {
 public:
  explicit Tmpfs(const std::string& options, unsigned long flags = 0) {
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", flags,
                options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return dir_.path(); }
  bool Remount(const std::string& options, unsigned long flags = 0) {
    return ::mount("tmpfs", dir_.path().c_str(), "tmpfs", MS_REMOUNT | flags,
                   options.c_str()) == 0;
  }

 private:
  cfrec::testing::TempDir dir_;
  bool mounted_ = false;
  std::string error_;
};

TEST(StorageFault, ReadOnlyDataDirectoryIsAClearErrorAtOpen) {
  Tmpfs fs("size=4m,mode=755", MS_RDONLY);
  if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs: " << fs.error();
  auto store = EventStore::Open(fs.path(), StoreOptions{});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("read-only file system"),
            std::string::npos)
      << store.status().ToString();
  EXPECT_NE(store.status().message().find(fs.path()), std::string::npos);
}

// A real full disk: batches go into a small tmpfs until one fails; the
// tmpfs is then grown (the operator freed space) and ingest goes on.
TEST(StorageFault, FullTmpfsStopsWritesAndGrowingItResumesThem) {
  Tmpfs fs("size=3m");
  if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs: " << fs.error();
  auto store = OpenStore(fs.path(), nullptr);
  ASSERT_NE(store, nullptr);
  constexpr int kPerBatch = 20;
  constexpr int kHistory = 60;  // about 1 KiB per impression
  int applied_batches = 0;
  Status failure;
  while (applied_batches < 1000) {
    auto r = Apply(*store, Batch::Make(applied_batches, kPerBatch, kHistory));
    if (!r.ok()) {
      failure = r.status();
      break;
    }
    ++applied_batches;
  }
  ASSERT_FALSE(failure.ok()) << "the 3 MiB tmpfs never filled";
  EXPECT_NE(failure.message().find("is full"), std::string::npos)
      << failure.ToString();
  EXPECT_FALSE(store->StorageHealth().ok());
  EXPECT_EQ(store->Counters().impressions,
            static_cast<uint64_t>(applied_batches) * kPerBatch);
  const Batch failed = Batch::Make(applied_batches, kPerBatch, kHistory);
  EXPECT_FALSE(Apply(*store, failed).ok());  // still full

  ASSERT_TRUE(fs.Remount("size=256m"));
  auto retried = ApplyUntilOk(*store, failed, std::chrono::seconds(20));
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  ++applied_batches;
  ASSERT_TRUE(
      Apply(*store, Batch::Make(applied_batches, kPerBatch, kHistory)).ok());
  ++applied_batches;
  EXPECT_TRUE(store->StorageHealth().ok());

  store.reset();
  store = OpenStore(fs.path(), nullptr);
  ASSERT_NE(store, nullptr);
  const uint64_t expected = static_cast<uint64_t>(applied_batches) * kPerBatch;
  EXPECT_EQ(store->Counters().impressions, expected);
  EXPECT_EQ(store->Counters().applied_seq, expected);
  for (int b = 0; b < applied_batches; ++b) {
    auto again = Apply(*store, Batch::Make(b, kPerBatch, kHistory));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->redelivered, static_cast<size_t>(kPerBatch));
  }
  EXPECT_EQ(store->Counters().impressions, expected);
}

}  // namespace
}  // namespace cfrec::state
