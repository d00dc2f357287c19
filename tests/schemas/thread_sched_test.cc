// LowerThisThreadTo lowers the calling thread's policy and nice value, only
// the calling thread's, and never raises them.
#include "cfrec/schemas/thread_sched.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace cfrec {
namespace {

// Runs `fn` on a new thread (a thread's priority cannot be raised again,
// so the test's own thread is left alone) and returns what it returned.
template <typename Fn>
auto OnNewThread(Fn fn) {
  decltype(fn()) out{};
  std::thread t([&] { out = fn(); });
  t.join();
  return out;
}

int Lowness(SchedPolicy p) {
  return p == SchedPolicy::kIdle ? 2 : p == SchedPolicy::kBatch ? 1 : 0;
}

// What a thread started like this one ends up with after lowering to
// `want` (the test may itself run at a lowered priority).
ThreadSched Expected(const ThreadSched& start, const ThreadSched& want) {
  return {
      Lowness(want.policy) > Lowness(start.policy) ? want.policy : start.policy,
      std::max(start.nice, want.nice)};
}

TEST(ThreadSched, NamesRoundTrip) {
  for (SchedPolicy p :
       {SchedPolicy::kNormal, SchedPolicy::kBatch, SchedPolicy::kIdle}) {
    auto parsed = ParseSchedPolicy(SchedPolicyName(p));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, p);
  }
  EXPECT_FALSE(ParseSchedPolicy("fifo").ok());
  EXPECT_FALSE(ParseSchedPolicy("").ok());
}

TEST(ThreadSched, LowersThePolicyAndNiceOfTheCallingThreadOnly) {
  const ThreadSched before = ThisThreadSched();
  for (const ThreadSched want : {ThreadSched{SchedPolicy::kBatch, 7},
                                 ThreadSched{SchedPolicy::kIdle, 19},
                                 ThreadSched{SchedPolicy::kNormal, 12}}) {
    SCOPED_TRACE(std::string(SchedPolicyName(want.policy)));
    const ThreadSched got = OnNewThread([&] {
      const Status s = LowerThisThreadTo(want);
      EXPECT_TRUE(s.ok()) << s.ToString();
      return ThisThreadSched();
    });
    EXPECT_EQ(got, Expected(before, want));
    EXPECT_EQ(ThisThreadSched(), before);
  }
}

TEST(ThreadSched, NeverRaises) {
  const ThreadSched before = ThisThreadSched();
  const ThreadSched low{SchedPolicy::kIdle, 15};
  const ThreadSched got = OnNewThread([&] {
    EXPECT_TRUE(LowerThisThreadTo(low).ok());
    // Asking for more than the thread has is not an error; it stays low.
    const Status s = LowerThisThreadTo({SchedPolicy::kNormal, 3});
    EXPECT_TRUE(s.ok()) << s.ToString();
    return ThisThreadSched();
  });
  EXPECT_EQ(got, Expected(before, low));
}

TEST(ThreadSched, NewThreadsInheritTheCreatorsSched) {
  const ThreadSched before = ThisThreadSched();
  const ThreadSched want{SchedPolicy::kBatch, 9};
  const ThreadSched got = OnNewThread([&] {
    EXPECT_TRUE(LowerThisThreadTo(want).ok());
    return OnNewThread([] { return ThisThreadSched(); });
  });
  EXPECT_EQ(got, Expected(before, want));
}

// Another thread puts a thread lowered to SCHED_IDLE back under
// SCHED_OTHER, its nice value kept; without CAP_SYS_NICE the kernel refuses
// and that is reported.
TEST(ThreadSched, RaiseThreadToNormalFromAnotherThread) {
  std::mutex mu;
  std::condition_variable cv;
  int64_t tid = 0;
  bool raised = false;
  ThreadSched after;
  std::thread t([&] {
    EXPECT_TRUE(LowerThisThreadTo({SchedPolicy::kIdle, 12}).ok());
    std::unique_lock<std::mutex> lock(mu);
    tid = ThisThreadKernelId();
    cv.notify_all();
    cv.wait(lock, [&] { return raised; });
    after = ThisThreadSched();
  });
  Status s;
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return tid != 0; });
    s = RaiseThreadToNormal(tid);
    raised = true;
  }
  cv.notify_all();
  t.join();
  if (geteuid() != 0 && !s.ok()) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_EQ(after.policy, SchedPolicy::kIdle);
    return;
  }
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(after.policy, SchedPolicy::kNormal);
  EXPECT_EQ(after.nice, std::max(12, ThisThreadSched().nice));
}

TEST(ThreadSched, RejectsNiceOutOfRange) {
  EXPECT_EQ(OnNewThread([] {
              return LowerThisThreadTo({SchedPolicy::kNormal, 20}).code();
            }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(OnNewThread([] {
              return LowerThisThreadTo({SchedPolicy::kBatch, -1}).code();
            }),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cfrec
