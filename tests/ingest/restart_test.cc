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
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/schemas/mind.h"
#include "common/temp_dir.h"

extern char** environ;

namespace cfrec::ingest {
namespace {

using Clock = std::chrono::steady_clock;

// A child process whose stderr (cfrec's log) is read line by line.
class Child {
 public:
  explicit Child(std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) !=
        0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] { Read(fd); });
  }
  ~Child() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  void Signal(int sig) { kill(pid_, sig); }

  // The first log line containing `text`, waiting until `deadline`.
  std::optional<std::string> WaitForLine(const std::string& text,
                                         Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    std::optional<std::string> found;
    cv_.wait_until(lock, deadline, [&] {
      for (const auto& line : lines_) {
        if (line.find(text) != std::string::npos) {
          found = line;
          return true;
        }
      }
      return eof_;
    });
    return found;
  }

  // Waits for the exit (the log's end first); the wait status, or nullopt
  // when it has not exited by `deadline`.
  std::optional<int> WaitForExit(Clock::time_point deadline) {
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait_until(lock, deadline, [&] { return eof_; })) {
        return std::nullopt;
      }
    }
    int status = 0;
    // The log closes when the process exits (it starts no children).
    if (waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    exited_ = true;
    return status;
  }

  std::string Log() {
    std::lock_guard lock(mu_);
    std::string all;
    for (const auto& line : lines_) all += line + "\n";
    return all;
  }

 private:
  void Read(int fd) {
    FILE* in = fdopen(fd, "r");
    char buf[4096];
    std::string line;
    while (fgets(buf, sizeof(buf), in) != nullptr) {
      line += buf;
      if (line.back() != '\n') continue;
      line.pop_back();
      std::lock_guard lock(mu_);
      lines_.push_back(std::move(line));
      line.clear();
      cv_.notify_all();
    }
    fclose(in);
    std::lock_guard lock(mu_);
    eof_ = true;
    cv_.notify_all();
  }

  pid_t pid_ = -1;
  bool exited_ = false;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;  // guarded by mu_
  bool eof_ = false;                // guarded by mu_
};

// GET `target` on 127.0.0.1:port; the body, or nullopt on any failure.
std::optional<std::string> HttpGet(uint16_t port, const std::string& target) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = "GET " + target +
                                " HTTP/1.1\r\nHost: t\r\n"
                                "Connection: close\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[8192];
      ssize_t n = 0;
      while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) {
    return std::nullopt;
  }
  return response.substr(body + 4);
}

// Unlabelled samples of a Prometheus exposition: name -> value.
std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || line.find('{') < space) continue;
    out[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
  }
  return out;
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
