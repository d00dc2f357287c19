// Replay against an in-memory sink: order, counts and the stop request a
// shutting-down service makes.
#include "cfrec/ingest/replay.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cfrec/ingest/event_sink.h"
#include "cfrec/schemas/mind.h"

namespace cfrec::ingest {
namespace {

class CountingSink final : public EventSink {
 public:
  Status Send(std::string_view, std::string_view) override {
    ++sent;
    return Status::Ok();
  }
  Status Flush(std::chrono::milliseconds) override {
    ++flushes;
    return Status::Ok();
  }
  int sent = 0;
  int flushes = 0;
};

std::vector<MindRow> Rows(int n) {
  std::vector<MindRow> rows;
  for (int i = 0; i < n; ++i) {
    MindRow r;
    r.impression_id = std::to_string(i);
    r.user_id = "U" + std::to_string(i % 7);
    r.ts_ms = int64_t{1700000000000} + i * 1000;
    r.items = {"N1", "N2", "N3"};
    r.clicked = {0, 1, 0};
    rows.push_back(std::move(r));
  }
  return rows;
}

TEST(Replay, SendsEveryImpressionAndClick) {
  CountingSink sink;
  auto summary = Replay(Rows(100), &sink, ReplayOptions{});
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->impressions, 100u);
  EXPECT_EQ(summary->clicks, 100u);
  EXPECT_FALSE(summary->stopped);
  EXPECT_EQ(sink.sent, 200);
}

TEST(Replay, AStopRequestEndsItAndWhatWasSentIsFlushed) {
  CountingSink sink;
  ReplayOptions o;
  o.stop = [&] { return sink.sent >= 50; };
  auto summary = Replay(Rows(100), &sink, o);
  ASSERT_TRUE(summary.ok());
  EXPECT_TRUE(summary->stopped);
  EXPECT_EQ(sink.sent, 50);
  EXPECT_EQ(summary->impressions + summary->clicks, 50u);
  EXPECT_GE(sink.flushes, 1);
}

TEST(Replay, AStopRequestEndsAPacedReplayAtOnce) {
  // At 0.1x speed the second row is due 10 s after the first: the stop
  // request that comes meanwhile ends the wait.
  CountingSink sink;
  ReplayOptions o;
  o.speed = 0.1;
  const auto start = std::chrono::steady_clock::now();
  o.stop = [&] {
    return std::chrono::steady_clock::now() - start >
           std::chrono::milliseconds(200);
  };
  auto summary = Replay(Rows(100), &sink, o);
  ASSERT_TRUE(summary.ok());
  EXPECT_TRUE(summary->stopped);
  EXPECT_EQ(sink.sent, 2);  // the first row's impression and click
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace cfrec::ingest
