// CandidateIndexCache while its publisher builds the next snapshot's index
// on another thread.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>

#include "cfrec/server/recommend.h"
#include "cfrec/server/testing/fake_snapshot.h"

namespace cfrec::server {
namespace {

using testing::MakeRandomSnapshot;

// A snapshot whose index build blocks until released (the build reads
// CandidateItems).
class SlowToIndexSnapshot : public testing::FakeSnapshot {
 public:
  using FakeSnapshot::FakeSnapshot;
  std::span<const uint32_t> CandidateItems() const override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_; });
    }
    return FakeSnapshot::CandidateItems();
  }
  bool WaitEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10),
                        [&] { return entered_; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool entered_ = false;
  bool released_ = false;
};

// While the next snapshot's index is being built (on the publisher's
// thread), requests holding the current snapshot get its index at once;
// a request for the snapshot being built waits for that build and gets
// the same index.
TEST(CandidateIndexCache, LookupsDoNotWaitForTheNextBuild) {
  auto cache = std::make_shared<CandidateIndexCache>();
  auto first = MakeRandomSnapshot(1, 5, 40, 4, 1, 3);
  const auto first_index = cache->Get(first);
  auto next = std::make_shared<SlowToIndexSnapshot>(2, 4);
  next->AddItem("N0", {1, 0, 0, 0}, 0.0f);
  next->AddUser("U0", {1, 0, 0, 0});
  next->set_candidates({0});
  next->set_popular({0});
  auto publisher =
      std::async(std::launch::async, [&] { cache->Prepare(next); });
  ASSERT_TRUE(next->WaitEntered());
  // The build is under way and blocked: the current index answers.
  auto lookup =
      std::async(std::launch::async, [&] { return cache->Get(first); });
  const bool answered =
      lookup.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!answered) next->Release();  // let the threads finish, then fail
  ASSERT_TRUE(answered) << "a lookup waited for another snapshot's build";
  EXPECT_EQ(lookup.get(), first_index);
  auto waiter =
      std::async(std::launch::async, [&] { return cache->Get(next); });
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(50)),
            std::future_status::timeout);  // waits for the publisher's build
  next->Release();
  ASSERT_EQ(publisher.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  const auto next_index = waiter.get();
  EXPECT_EQ(next_index, cache->Get(next));
  EXPECT_EQ(next_index->items().size(), 1u);
  EXPECT_EQ(cache->Get(first), first_index);  // kept as the previous one
}

}  // namespace
}  // namespace cfrec::server
