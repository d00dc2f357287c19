// LowerThisThreadTo lowers the calling thread's policy and nice value, only
// the calling thread's, and never raises them.
#include "cfrec/schemas/thread_sched.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

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

// Runs `raise` from the test's thread on a new thread lowered to `low`, and
// returns its status and the new thread's sched after it.
template <typename Raise>
std::pair<Status, ThreadSched> RaisedFromAnotherThread(const ThreadSched& low,
                                                       Raise raise) {
  std::mutex mu;
  std::condition_variable cv;
  int64_t tid = 0;
  bool raised = false;
  ThreadSched after;
  std::thread t([&] {
    EXPECT_TRUE(LowerThisThreadTo(low).ok());
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
    s = raise(tid);
    raised = true;
  }
  cv.notify_all();
  t.join();
  return {s, after};
}

// Another thread puts a thread lowered to SCHED_BATCH back under
// SCHED_OTHER, its nice value kept (no privilege needed).
TEST(ThreadSched, RaisesABatchThreadFromAnotherThread) {
  const ThreadSched before = ThisThreadSched();
  const auto [s, after] = RaisedFromAnotherThread(
      {SchedPolicy::kBatch, 12},
      [&](int64_t tid) { return RaiseThreadTo(tid, before.policy); });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(after.policy, before.policy);
  EXPECT_EQ(after.nice, std::max(12, before.nice));
}

// Leaving SCHED_IDLE needs CAP_SYS_NICE (or a high RLIMIT_NICE): with it the
// thread is raised, without it the refusal is reported and nothing changes.
TEST(ThreadSched, RaisesAnIdleThreadOrSaysWhyNot) {
  const auto [s, after] = RaisedFromAnotherThread(
      {SchedPolicy::kIdle, 12},
      [](int64_t tid) { return RaiseThreadTo(tid, SchedPolicy::kNormal); });
  if (!s.ok()) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_NE(s.ToString().find("Operation not permitted"), std::string::npos)
        << s.ToString();
    EXPECT_EQ(after.policy, SchedPolicy::kIdle);
    return;
  }
  EXPECT_EQ(after.policy, SchedPolicy::kNormal);
  EXPECT_EQ(after.nice, std::max(12, ThisThreadSched().nice));
}

TEST(ThreadSched, PolicyOrder) {
  EXPECT_TRUE(IsBelow(SchedPolicy::kIdle, SchedPolicy::kBatch));
  EXPECT_TRUE(IsBelow(SchedPolicy::kBatch, SchedPolicy::kNormal));
  EXPECT_FALSE(IsBelow(SchedPolicy::kNormal, SchedPolicy::kNormal));
  EXPECT_FALSE(IsBelow(SchedPolicy::kNormal, SchedPolicy::kIdle));
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
