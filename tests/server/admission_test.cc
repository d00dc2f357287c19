// AdmissionPool: requests held in a blocking fake handler fill the pool, the
// next one is refused at once; while the oldest queued request is past the
// budget, or the queue would run longer than the budget (on a fixed clock),
// new ones are refused, and what was admitted is still served; Stop sheds
// what is queued.
#include "cfrec/server/admission.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

namespace cfrec::server {
namespace {

using std::chrono::milliseconds;
using Clock = AdmissionPool::Clock;

bool Admitted(std::optional<ShedReason> refused) {
  return !refused.has_value();
}

// Counts calls; Wait(n) blocks until n calls happened (with a deadline).
class CallCounter {
 public:
  void Add() {
    std::lock_guard lock(mu_);
    ++n_;
    cv_.notify_all();
  }
  bool Wait(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10),
                        [&] { return n_ >= n; });
  }
  int value() {
    std::lock_guard lock(mu_);
    return n_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_ = 0;
};

TEST(AdmissionPool, RefusesAtOnceWhenMaxInflightAreHeld) {
  AdmissionOptions options;
  options.threads = 2;
  options.max_inflight = 3;
  options.max_queue_wait = milliseconds(60'000);
  AdmissionPool pool(options);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  CallCounter started, finished, shed;
  auto blocking = [&] {
    started.Add();
    released.wait();
    finished.Add();
  };
  auto on_shed = [&] { shed.Add(); };
  ASSERT_TRUE(Admitted(pool.TrySubmit(blocking, on_shed)));
  ASSERT_TRUE(Admitted(pool.TrySubmit(blocking, on_shed)));
  ASSERT_TRUE(started.Wait(2));  // both threads are held
  ASSERT_TRUE(Admitted(pool.TrySubmit(blocking, on_shed)));  // queued
  EXPECT_EQ(pool.inflight(), 3u);

  // The fourth is refused without waiting for anything.
  EXPECT_EQ(pool.TrySubmit(blocking, on_shed), ShedReason::kQueueFull);
  EXPECT_EQ(pool.shed(ShedReason::kQueueFull), 1u);

  release.set_value();
  ASSERT_TRUE(finished.Wait(3));
  EXPECT_EQ(shed.value(), 0);
  EXPECT_EQ(pool.shed(ShedReason::kQueueTime), 0u);
  // Room again once they are done.
  CallCounter later;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (pool.inflight() != 0 && Clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_TRUE(Admitted(pool.TrySubmit([&] { later.Add(); }, on_shed)));
  EXPECT_TRUE(later.Wait(1));
}

TEST(AdmissionPool, RefusesNewRequestsWhileTheOldestQueuedIsLate) {
  std::atomic<int64_t> now_ms{0};
  AdmissionOptions options;
  options.threads = 1;
  options.max_inflight = 4;
  options.max_queue_wait = milliseconds(20);
  AdmissionPool pool(
      options, [&] { return Clock::time_point(milliseconds(now_ms.load())); });
  std::promise<void> release;
  CallCounter started, ran, shed;
  ASSERT_TRUE(Admitted(pool.TrySubmit(
      [&] {
        started.Add();
        release.get_future().wait();
      },
      [&] { shed.Add(); })));
  ASSERT_TRUE(started.Wait(1));
  // B queued at t=0. At t=20 ms it is not late yet; at t=21 ms it is, and
  // a new request is refused at the door.
  ASSERT_EQ(pool.TrySubmit([&] { ran.Add(); }, [&] { shed.Add(); }),
            std::nullopt);
  now_ms = 20;
  CallCounter c;
  ASSERT_EQ(pool.TrySubmit([&] { c.Add(); }, [&] { shed.Add(); }),
            std::nullopt);
  now_ms = 21;
  EXPECT_EQ(pool.TrySubmit([&] { ran.Add(); }, [&] { shed.Add(); }),
            ShedReason::kQueueTime);
  EXPECT_EQ(pool.shed(ShedReason::kQueueTime), 1u);
  // What was admitted is served, however long it waited.
  release.set_value();
  ASSERT_TRUE(ran.Wait(1));
  ASSERT_TRUE(c.Wait(1));
  EXPECT_EQ(shed.value(), 0);
  // The queue is empty again: admitted.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (pool.inflight() != 0 && Clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(pool.TrySubmit([&] { ran.Add(); }, [&] { shed.Add(); }),
            std::nullopt);
  ASSERT_TRUE(ran.Wait(2));
}

// The queue's run time: once handlers are known to take 4 ms (on the fixed
// clock), a new request is refused when the requests queued ahead of it
// would take longer than max_queue_wait to run, although the oldest queued
// one has not waited at all yet.
TEST(AdmissionPool, RefusesWhenTheQueueWouldRunLongerThanTheBudget) {
  std::atomic<int64_t> now_ms{0};
  AdmissionOptions options;
  options.threads = 1;
  options.max_inflight = 64;
  options.max_queue_wait = milliseconds(10);
  AdmissionPool pool(
      options, [&] { return Clock::time_point(milliseconds(now_ms.load())); });
  CallCounter ran, shed;
  // One request that takes 4 ms: the mean run time is now 4 ms.
  ASSERT_TRUE(Admitted(pool.TrySubmit(
      [&] {
        now_ms += 4;
        ran.Add();
      },
      [&] { shed.Add(); })));
  ASSERT_TRUE(ran.Wait(1));
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (pool.inflight() != 0 && Clock::now() < deadline) {
    std::this_thread::yield();
  }
  // Hold the thread; the clock stands still from here on.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  CallCounter started;
  ASSERT_TRUE(Admitted(pool.TrySubmit(
      [&] {
        started.Add();
        released.wait();
      },
      [&] { shed.Add(); })));
  ASSERT_TRUE(started.Wait(1));
  // Queued ahead: 0, 1, 2 requests (0, 4, 8 ms): admitted. With 3 ahead
  // (12 ms > 10 ms) refused.
  auto quick = [&] { ran.Add(); };
  auto on_shed = [&] { shed.Add(); };
  ASSERT_TRUE(Admitted(pool.TrySubmit(quick, on_shed)));
  ASSERT_TRUE(Admitted(pool.TrySubmit(quick, on_shed)));
  ASSERT_TRUE(Admitted(pool.TrySubmit(quick, on_shed)));
  EXPECT_EQ(pool.TrySubmit(quick, on_shed), ShedReason::kQueueTime);
  EXPECT_EQ(pool.shed(ShedReason::kQueueTime), 1u);
  EXPECT_EQ(pool.shed(ShedReason::kQueueFull), 0u);
  release.set_value();
  ASSERT_TRUE(ran.Wait(4));
  EXPECT_EQ(shed.value(), 0);
}

// Run to completion: the caller may run a request itself only while a
// handler thread would have taken it at once (nothing queued, fewer than
// `threads` running). Its slot counts as in flight and as running, and its
// run time feeds the queue's run-time estimate like a handler thread's.
TEST(AdmissionPool, InlineRunsOnlyWhenAHandlerSlotIsFreeAndCountLikeOthers) {
  std::atomic<int64_t> now_ms{0};
  AdmissionOptions options;
  options.threads = 1;
  options.max_inflight = 64;
  options.max_queue_wait = milliseconds(10);
  AdmissionPool pool(
      options, [&] { return Clock::time_point(milliseconds(now_ms.load())); });
  ASSERT_TRUE(pool.TryStartInline());
  EXPECT_EQ(pool.inflight(), 1u);
  // The one slot is taken (by the inline run): no second inline run.
  EXPECT_FALSE(pool.TryStartInline());
  pool.FinishInline(milliseconds(6));  // mean run time 6 ms
  EXPECT_EQ(pool.inflight(), 0u);
  EXPECT_EQ(pool.inline_runs(), 1u);

  // Hold the handler thread and queue one request behind it.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  CallCounter started, ran, shed;
  auto on_shed = [&] { shed.Add(); };
  ASSERT_TRUE(Admitted(pool.TrySubmit(
      [&] {
        started.Add();
        released.wait();
      },
      on_shed)));
  ASSERT_TRUE(started.Wait(1));
  EXPECT_FALSE(pool.TryStartInline());  // the thread is busy
  ASSERT_TRUE(Admitted(pool.TrySubmit([&] { ran.Add(); }, on_shed)));
  EXPECT_FALSE(pool.TryStartInline());  // a request is queued
  // One queued at 6 ms each (the inline run's time): admitted; two ahead
  // (12 ms > 10 ms): refused, although no handler thread has run anything.
  ASSERT_TRUE(Admitted(pool.TrySubmit([&] { ran.Add(); }, on_shed)));
  EXPECT_EQ(pool.TrySubmit([&] { ran.Add(); }, on_shed),
            ShedReason::kQueueTime);
  release.set_value();
  ASSERT_TRUE(ran.Wait(2));
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (pool.inflight() != 0 && Clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_TRUE(pool.TryStartInline());  // idle again
  pool.FinishInline(milliseconds(1));
  pool.Stop();
  EXPECT_FALSE(pool.TryStartInline());  // stopped
  EXPECT_EQ(pool.inline_runs(), 2u);
  EXPECT_EQ(shed.value(), 0);
}

// A fake clock in microseconds and a pool with a delay target of 2 ms over
// 100 ms intervals, one handler thread, run inline: Request(delay) offers a
// request whose bytes arrived `delay` ago; if admitted it runs inline for
// `run` (the mean run time the load judgement uses), else TrySubmit must
// refuse it as late.
class DelayTargetTest : public ::testing::Test {
 protected:
  DelayTargetTest() {
    options_.threads = 1;
    options_.max_inflight = 64;
    options_.max_queue_wait = milliseconds(20);
    options_.target_delay = milliseconds(2);
    options_.target_interval = milliseconds(100);
    pool_ = std::make_unique<AdmissionPool>(options_, [this] {
      return Clock::time_point(std::chrono::microseconds(now_us_.load()));
    });
  }

  bool Request(std::chrono::microseconds delay,
               std::chrono::microseconds run = std::chrono::microseconds(500)) {
    const Clock::time_point arrived(std::chrono::microseconds(now_us_.load()) -
                                    delay);
    if (pool_->TryStartInline(arrived)) {
      pool_->FinishInline(run);
      return true;
    }
    EXPECT_EQ(pool_->TrySubmit([] {}, [] {}, arrived), ShedReason::kLate);
    return false;
  }

  // Offers `rate` requests per second from now for `ms` milliseconds, each
  // delayed `delay`; returns how many were served.
  int Stream(int rate, int ms, std::chrono::microseconds delay) {
    const int64_t gap_us = 1'000'000 / rate;
    const int64_t end = now_us_ + ms * 1000;
    int served = 0;
    for (; now_us_ < end; now_us_ += gap_us) served += Request(delay) ? 1 : 0;
    return served;
  }

  AdmissionOptions options_;
  std::atomic<int64_t> now_us_{1'000'000};
  std::unique_ptr<AdmissionPool> pool_;
};

// A standing queue at a high rate (2,000/s against one thread at 0.5 ms a
// run: the handler fully busy, every request 5 ms late): the first whole
// interval is absorbed (a burst up to then), then late requests are refused
// and those within the target served, until the queue is gone.
TEST_F(DelayTargetTest, AStandingQueueAtAHighRateIsShed) {
  const std::chrono::microseconds late(5000), on_time(500);
  EXPECT_EQ(Stream(2000, 100, late), 200);  // one interval: a burst
  EXPECT_FALSE(pool_->overloaded());
  EXPECT_EQ(Stream(2000, 100, late), 0);  // overloaded: every one refused
  EXPECT_TRUE(pool_->overloaded());
  EXPECT_TRUE(Request(on_time));  // within the target: served
  EXPECT_EQ(pool_->shed(ShedReason::kLate), 200u);
  // Intervals with more than a quarter late hold the state.
  int served = 0;
  for (int i = 0; i < 200; ++i, now_us_ += 500) {
    served += Request(i % 2 == 0 ? late : on_time) ? 1 : 0;
  }
  EXPECT_EQ(served, 100);
  EXPECT_TRUE(pool_->overloaded());
  // An interval with few late ones (a stall, not a queue) ends it: a late
  // request is served again.
  EXPECT_EQ(Stream(2000, 100, on_time), 200);
  EXPECT_TRUE(Request(late));
  EXPECT_FALSE(pool_->overloaded());
  EXPECT_EQ(pool_->shed(ShedReason::kQueueTime), 0u);
  EXPECT_EQ(pool_->shed(ShedReason::kQueueFull), 0u);
}

// A low-rate stream on a stalled machine: every request waited 50 ms, far
// beyond the target and max_queue_wait, at 50/s and at 125/s (fewer than
// 16 per interval); then a 2 s stall of a 100/s stream read at once (200
// requests in one interval, spread over their arrival times). None is
// refused.
TEST_F(DelayTargetTest, ALowRateStreamIsNeverShedHoweverLongItWaited) {
  const std::chrono::microseconds stalled(50'000);
  EXPECT_EQ(Stream(50, 1000, stalled), 50);
  EXPECT_EQ(Stream(125, 1000, stalled), 125);
  now_us_ += 2'000'000;
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE(Request(std::chrono::microseconds(2'000'000 - i * 10'000)))
        << i;
  }
  EXPECT_EQ(Stream(100, 300, stalled), 30);
  EXPECT_FALSE(pool_->overloaded());
  EXPECT_EQ(pool_->shed(ShedReason::kLate), 0u);
}

// A deep backlog read in order: requests arrive at 4,000/s against a
// handler that serves 2,000/s, and the first one read arrived 2 s ago (a
// stall at the onset). The requests read in an interval arrived close
// together, so the interval is loaded however long they waited: the pool
// becomes overloaded, refuses the late ones (cheaply, 20 us each) until the
// backlog is gone, and from then on serves only requests within the target.
TEST_F(DelayTargetTest, ADeepBacklogReadInOrderIsShed) {
  const int64_t start = now_us_;
  int64_t next_arrival = start - 2'000'000;
  int served = 0, refused = 0;
  int64_t worst_served_late_us = 0;
  while (now_us_ < start + 1'500'000) {
    const int64_t delay = now_us_ - next_arrival;
    if (delay < 0) {
      now_us_ = next_arrival;  // idle until the next one arrives
      continue;
    }
    if (Request(std::chrono::microseconds(delay))) {
      ++served;
      if (now_us_ > start + 500'000) {
        worst_served_late_us = std::max(worst_served_late_us, delay);
      }
      now_us_ += 500;
    } else {
      ++refused;
      now_us_ += 20;
    }
    next_arrival += 250;
  }
  EXPECT_TRUE(pool_->overloaded());
  EXPECT_GT(refused, 5000);
  EXPECT_GT(served, 2000);
  EXPECT_LE(worst_served_late_us, 2000);
}

// Once overloaded, a few very old requests in each interval (held behind a
// slow write, or a step of the real-time clock) neither stretch the
// interval's span nor end the state while the queue stands.
TEST_F(DelayTargetTest, AFewVeryOldRequestsDoNotEndTheOverload) {
  const std::chrono::microseconds late(5000);
  Stream(2000, 100, late);
  Stream(2000, 100, late);
  ASSERT_TRUE(pool_->overloaded());
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(Request(std::chrono::seconds(10)));
    EXPECT_EQ(Stream(2000, 100, late), 0) << i;
    EXPECT_TRUE(pool_->overloaded()) << i;
  }
}

// Once overloaded with half of the requests late (no standing queue, so
// the state holds only while the interval is loaded), one 10 s old request
// per interval is trimmed from the interval's arrival span instead of
// stretching it to 10 s.
TEST_F(DelayTargetTest, AVeryOldRequestIsTrimmedFromTheArrivalSpan) {
  const std::chrono::microseconds late(5000), on_time(500);
  Stream(2000, 100, late);
  Stream(2000, 100, late);
  ASSERT_TRUE(pool_->overloaded());
  for (int interval = 0; interval < 3; ++interval) {
    EXPECT_FALSE(Request(std::chrono::seconds(10)));
    for (int i = 0; i < 200; ++i, now_us_ += 500) {
      Request(i % 2 == 0 ? late : on_time);
    }
    EXPECT_TRUE(pool_->overloaded()) << interval;
  }
}

// A page's burst on a stalled machine (20 requests within 30 ms, each 5 ms
// unread), then a pause: the interval counts over the pause, so the burst
// does not make the pool overloaded and the next request is served.
TEST_F(DelayTargetTest, APageBurstFollowedByAPauseIsNotOverload) {
  const std::chrono::microseconds stalled(5000);
  EXPECT_TRUE(Request(stalled));  // closes the empty first interval
  for (int i = 0; i < 20; ++i, now_us_ += 1500) {
    EXPECT_TRUE(Request(stalled)) << i;
  }
  now_us_ += 300'000;
  EXPECT_TRUE(Request(stalled));
  EXPECT_FALSE(pool_->overloaded());
  EXPECT_EQ(pool_->shed(ShedReason::kLate), 0u);
}

// An idle gap ends the overload state: the first request an hour later is
// judged afresh, not against the target of the overload before the gap.
TEST_F(DelayTargetTest, AnIdleGapEndsTheOverload) {
  const std::chrono::microseconds late(5000);
  Stream(2000, 100, late);
  EXPECT_EQ(Stream(2000, 100, late), 0);
  ASSERT_TRUE(pool_->overloaded());
  now_us_ += 3'600'000'000LL;
  EXPECT_TRUE(Request(late));
  EXPECT_FALSE(pool_->overloaded());
}

// Without a delay target the arrival time changes nothing: a request that
// waited long before it was read is still admitted.
TEST(AdmissionPool, WithoutADelayTargetTheArrivalTimeIsIgnored) {
  std::atomic<int64_t> now_ms{10'000};
  AdmissionOptions options;
  options.threads = 1;
  options.max_queue_wait = milliseconds(1);
  AdmissionPool pool(
      options, [&] { return Clock::time_point(milliseconds(now_ms.load())); });
  const Clock::time_point long_ago(milliseconds(1'000));
  ASSERT_TRUE(pool.TryStartInline(long_ago));
  pool.FinishInline(milliseconds(0));
  CallCounter ran;
  ASSERT_TRUE(Admitted(pool.TrySubmit([&] { ran.Add(); }, [] {}, long_ago)));
  ASSERT_TRUE(ran.Wait(1));
  EXPECT_FALSE(pool.overloaded());
  EXPECT_EQ(pool.shed(ShedReason::kLate), 0u);
}

TEST(AdmissionPool, StopShedsWhatIsQueuedAndRefusesMore) {
  AdmissionOptions options;
  options.threads = 1;
  options.max_inflight = 8;
  AdmissionPool pool(options);
  std::promise<void> release;
  CallCounter started, ran, shed;
  ASSERT_TRUE(Admitted(pool.TrySubmit(
      [&] {
        started.Add();
        release.get_future().wait();
        ran.Add();
      },
      [&] { shed.Add(); })));
  ASSERT_TRUE(started.Wait(1));
  ASSERT_TRUE(
      Admitted(pool.TrySubmit([&] { ran.Add(); }, [&] { shed.Add(); })));
  std::thread stopper([&] { pool.Stop(); });
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!pool.stopped() && Clock::now() < deadline) std::this_thread::yield();
  release.set_value();
  stopper.join();
  EXPECT_EQ(ran.value(), 1);   // the running one finished
  EXPECT_EQ(shed.value(), 1);  // the queued one was shed
  EXPECT_TRUE(
      pool.TrySubmit([&] { ran.Add(); }, [&] { shed.Add(); }).has_value());
}

TEST(AdmissionOptions, ValidateRejectsNonsense) {
  AdmissionOptions options;
  EXPECT_TRUE(options.Validate().ok());
  options.threads = 0;
  EXPECT_FALSE(options.Validate().ok());
  options.threads = 4;
  options.max_inflight = 2;
  EXPECT_FALSE(options.Validate().ok());
  options.max_inflight = 4;
  options.max_queue_wait = milliseconds(-1);
  EXPECT_FALSE(options.Validate().ok());
  options.max_queue_wait = milliseconds(5);
  options.handler_nice = 20;
  EXPECT_FALSE(options.Validate().ok());
  options.handler_nice = -1;
  EXPECT_FALSE(options.Validate().ok());
  options.handler_nice = 5;
  EXPECT_TRUE(options.Validate().ok());
  options.target_delay = std::chrono::microseconds(-1);
  EXPECT_FALSE(options.Validate().ok());
  options.target_delay = std::chrono::microseconds(500);
  options.target_interval = milliseconds(0);
  EXPECT_FALSE(options.Validate().ok());
  options.target_interval = milliseconds(100);
  EXPECT_TRUE(options.Validate().ok());
}

TEST(NeverShed, ProbesMetricsAndModelOnly) {
  EXPECT_TRUE(NeverShed("/healthz"));
  EXPECT_TRUE(NeverShed("/readyz?verbose=1"));
  EXPECT_TRUE(NeverShed("/metrics"));
  EXPECT_TRUE(NeverShed("/v1/model"));
  EXPECT_FALSE(NeverShed("/v1/recommendations?user_id=u"));
  EXPECT_FALSE(NeverShed("/healthzz"));
  EXPECT_FALSE(NeverShed("/v1/metrics"));
}

}  // namespace
}  // namespace cfrec::server
