// Restarting `cfrec serve` with the embedded broker, end to end, with the
// real binary: a MIND-like log from `cfrec synth` is split by time into two
// halves A and B; `serve --replay A` runs until A is stored, is stopped
// (SIGTERM, or SIGKILL), and `serve --replay B` runs on the same data
// directory. The embedded broker's log starts empty at every start, so B's
// messages reuse the offsets A's had; the store must end with every
// impression and click of A and B.
//
// The server is a separate process: its progress is observed as a client
// sees it (GET /metrics, its log lines), against deadlines.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/schemas/mind.h"
#include "common/serve_child.h"
#include "common/temp_dir.h"

namespace cfrec::ingest {
namespace {

using Clock = std::chrono::steady_clock;

using Child = cfrec::testing::ChildProcess;
using cfrec::testing::ParseMetrics;

// GET `target` on 127.0.0.1:port; the body, or nullopt unless 200.
std::optional<std::string> HttpGet(uint16_t port, const std::string& target) {
  const auto reply = cfrec::testing::HttpCall(port, "GET", target);
  if (reply.status != 200) return std::nullopt;
  return reply.body;
}

struct Totals {
  size_t impressions = 0;
  size_t clicks = 0;
};

Totals Count(const std::vector<MindRow>& rows) {
  Totals t;
  std::set<std::string> ids;
  for (const auto& row : rows) {
    if (ids.insert(row.impression_id).second) ++t.impressions;
    for (uint8_t c : row.clicked) t.clicks += c;
  }
  return t;
}

void WriteRows(const std::string& path, const std::vector<MindRow>& rows) {
  std::ofstream out(path);
  for (const auto& row : rows) out << FormatMindRow(row) << "\n";
}

class RestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A small MIND-like log (fixed seed), split by time into halves.
    const std::string synth = dir_.path() + "/synth";
    {
      Child tool({CFREC_BINARY, "synth", "--mode", "mind-like", "--out", synth,
                  "--seed", "20261129", "--ml-users", "150", "--ml-items",
                  "800", "--ml-impressions", "1200", "--ml-median-length",
                  "12"});
      ASSERT_TRUE(tool.started());
      const auto status = tool.WaitForExit(Clock::now() + kStep);
      ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
          << tool.Log();
    }
    auto file = ReadMindFile(synth + "/behaviors.tsv");
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    ASSERT_TRUE(file->errors.empty());
    SortMindRowsByTime(&file->rows);
    const size_t half = file->rows.size() / 2;
    const std::vector<MindRow> a(file->rows.begin(), file->rows.begin() + half);
    const std::vector<MindRow> b(file->rows.begin() + half, file->rows.end());
    ASSERT_LE(a.back().ts_ms, b.front().ts_ms);
    WriteRows(a_path_, a);
    WriteRows(b_path_, b);
    a_ = Count(a);
    all_ = Count(file->rows);
    ASSERT_GT(a_.clicks, 0u);
    ASSERT_GT(all_.impressions, a_.impressions);
  }

  // `cfrec serve --replay FILE` on the shared data directory, HTTP on a
  // port the kernel picks (read back from the log).
  std::unique_ptr<Child> Serve(const std::string& replay, uint16_t* port) {
    auto child = std::make_unique<Child>(
        std::vector<std::string>{CFREC_BINARY, "serve", "--data-dir", data_,
                                 "--replay", replay, "--http", "127.0.0.1:0"});
    EXPECT_TRUE(child->started());
    const auto line = child->WaitForLine("HTTP on ", Clock::now() + kStep);
    EXPECT_TRUE(line.has_value()) << child->Log();
    *port = 0;
    if (line) {
      const size_t colon = line->find(':', line->find("HTTP on "));
      *port = static_cast<uint16_t>(std::atoi(line->c_str() + colon + 1));
    }
    return child;
  }

  // Polls GET /metrics until `done` holds for it; the last metrics read.
  std::map<std::string, double> WaitForMetrics(
      uint16_t port,
      const std::function<bool(std::map<std::string, double>&)>& done) {
    std::map<std::string, double> m;
    const auto deadline = Clock::now() + kStep;
    while (Clock::now() < deadline) {
      if (auto body = HttpGet(port, "/metrics")) {
        m = ParseMetrics(*body);
        if (done(m)) return m;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "gave up waiting; last metrics: impressions "
                  << m["cfrec_impressions_total"] << ", clicks "
                  << m["cfrec_clicks_joined_total"];
    return m;
  }

  // Until the store holds `t` (and the consumer is caught up).
  std::map<std::string, double> WaitForStored(uint16_t port, Totals t) {
    return WaitForMetrics(port, [t](std::map<std::string, double>& m) {
      return m["cfrec_impressions_total"] == t.impressions &&
             m["cfrec_clicks_joined_total"] == t.clicks;
    });
  }

  // SIGTERM, a clean exit, and the totals of its last line.
  void StopAndExpectStored(Child& child, Totals t) {
    child.Signal(SIGTERM);
    const auto status = child.WaitForExit(Clock::now() + kStep);
    ASSERT_TRUE(status.has_value()) << "no exit within the deadline";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "wait status " << *status << "\n"
        << child.Log();
    const std::string expected = "stopped: " + std::to_string(t.impressions) +
                                 " impressions and " +
                                 std::to_string(t.clicks) + " clicks stored";
    EXPECT_NE(child.Log().find(expected), std::string::npos)
        << "expected '" << expected << "' in\n"
        << child.Log();
  }

  void RestartAfter(int signal) {
    uint16_t port = 0;
    {
      auto first = Serve(a_path_, &port);
      ASSERT_NE(port, 0);
      WaitForStored(port, a_);
      if (signal == SIGTERM) {
        StopAndExpectStored(*first, a_);
      } else {
        first->Signal(SIGKILL);
        const auto status = first->WaitForExit(Clock::now() + kStep);
        ASSERT_TRUE(status && WIFSIGNALED(*status)) << first->Log();
      }
    }
    auto second = Serve(b_path_, &port);
    ASSERT_NE(port, 0);
    auto m = WaitForStored(port, all_);
    EXPECT_EQ(m["cfrec_dead_letters_total"], 0);
    EXPECT_EQ(m["cfrec_ingest_gap_messages_total"], 0);
    EXPECT_EQ(m["cfrec_ingest_log_changes_total"], 1);
    // The lag is refreshed every second: wait for a reading of 0.
    m = WaitForMetrics(port, [](std::map<std::string, double>& m) {
      EXPECT_GE(m["cfrec_consumer_lag_messages"], 0);
      return m["cfrec_consumer_lag_messages"] == 0;
    });
    EXPECT_NE(second->Log().find("discarded them: the new log is read"),
              std::string::npos)
        << second->Log();
    StopAndExpectStored(*second, all_);
  }

  // Per step (start, catch up, stop); the whole test takes seconds.
  static constexpr std::chrono::seconds kStep{60};
  cfrec::testing::TempDir dir_;
  const std::string data_ = dir_.path() + "/data";
  const std::string a_path_ = dir_.path() + "/a.tsv";
  const std::string b_path_ = dir_.path() + "/b.tsv";
  Totals a_;
  Totals all_;
};

TEST_F(RestartTest, AfterSigtermTheSecondLogIsStoredWhole) {
  RestartAfter(SIGTERM);
}

TEST_F(RestartTest, AfterSigkillTheSecondLogIsStoredWhole) {
  RestartAfter(SIGKILL);
}

// SIGTERM right after the replay has handed its last message to the
// embedded broker, before the consumer can have applied everything: the
// shutdown applies what the broker holds first.
TEST_F(RestartTest, SigtermAppliesWhatTheEmbeddedBrokerHolds) {
  uint16_t port = 0;
  auto serve = Serve(a_path_, &port);
  ASSERT_NE(port, 0);
  ASSERT_TRUE(serve->WaitForLine("replay: done", Clock::now() + kStep))
      << serve->Log();
  StopAndExpectStored(*serve, a_);
}

}  // namespace
}  // namespace cfrec::ingest
