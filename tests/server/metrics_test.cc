#include "cfrec/server/metrics.h"

#include <gtest/gtest.h>

#include <latch>
#include <thread>
#include <vector>

namespace cfrec::server {
namespace {

TEST(Metrics, ExposesCountersGaugesAndHistogramsInTextFormat) {
  MetricsRegistry registry;
  registry.GetCounter("req_total", "Requests", {"route"}, {"/a"})->Increment(3);
  registry.GetCounter("req_total", "Requests", {"route"}, {"/b"})->Increment();
  registry.GetGauge("temp", "Temperature")->Set(-1.5);
  Histogram* h = registry.GetHistogram("lat_seconds", "Latency", {0.1, 1});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(5);
  ASSERT_TRUE(registry.AddCallback("lag", "Consumer lag", false,
                                   [] { return 42.0; }, {"partition"}, {"0"}));
  EXPECT_EQ(registry.Expose(),
            "# HELP lag Consumer lag\n"
            "# TYPE lag gauge\n"
            "lag{partition=\"0\"} 42\n"
            "# HELP lat_seconds Latency\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{le=\"0.1\"} 1\n"
            "lat_seconds_bucket{le=\"1\"} 2\n"
            "lat_seconds_bucket{le=\"+Inf\"} 3\n"
            "lat_seconds_sum 5.55\n"
            "lat_seconds_count 3\n"
            "# HELP req_total Requests\n"
            "# TYPE req_total counter\n"
            "req_total{route=\"/a\"} 3\n"
            "req_total{route=\"/b\"} 1\n"
            "# HELP temp Temperature\n"
            "# TYPE temp gauge\n"
            "temp -1.5\n");
}

TEST(Metrics, EscapesLabelValuesAndRejectsClashes) {
  MetricsRegistry registry;
  registry.GetCounter("c", "a\\b\nc", {"l"}, {"q\"\\\n"})->Increment();
  EXPECT_EQ(registry.Expose(),
            "# HELP c a\\\\b\\nc\n# TYPE c counter\nc{l=\"q\\\"\\\\\\n\"} 1\n");
  EXPECT_EQ(registry.GetGauge("c", "other type", {"l"}, {"x"}), nullptr);
  EXPECT_EQ(registry.GetCounter("c", "x", {"m"}, {"x"}), nullptr);
  EXPECT_EQ(registry.GetCounter("c", "x", {"l"}, {}), nullptr);
  EXPECT_EQ(registry.GetCounter("1bad", "x"), nullptr);
  EXPECT_EQ(registry.GetCounter("ok", "x", {"le"}, {"1"}), nullptr);
  EXPECT_FALSE(registry.AddCallback("c", "x", true, [] { return 1.0; }, {"l"},
                                    {"y"}));  // plain family, not callbacks
  ASSERT_TRUE(registry.AddCallback("cb", "x", false, [] { return 1.0; }));
  EXPECT_FALSE(registry.AddCallback("cb", "x", false, [] { return 2.0; }));
  // Same child twice is the same object.
  EXPECT_EQ(registry.GetCounter("c", "", {"l"}, {"q\"\\\n"}),
            registry.GetCounter("c", "", {"l"}, {"q\"\\\n"}));
}

TEST(Metrics, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry registry;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        registry.GetCounter("n_total", "n", {"t"}, {std::to_string(i % 2)})
            ->Increment();
        registry.GetHistogram("h", "h", {1.0})->Observe(t % 2 ? 0.5 : 2.0);
        if (i % 1000 == 0) (void)registry.Expose();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(registry.GetCounter("n_total", "n", {"t"}, {"0"})->value() +
                registry.GetCounter("n_total", "n", {"t"}, {"1"})->value(),
            uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(registry.GetHistogram("h", "h", {1.0})->count(),
            uint64_t{kThreads} * kPerThread);
}

}  // namespace
}  // namespace cfrec::server
