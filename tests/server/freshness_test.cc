// Freshness through the whole stack: `cfrec serve` (embedded Kafka broker,
// ingest, RocksDB state, learner, snapshots, HTTP) as a child process. After
// a user's clicks are produced to Kafka (through POST /v1/events, which uses
// the Kafka producer), that user's recommendations must reflect them --
// clicked items excluded, model version advanced -- within 2 s.
//
// The server is a separate process, so its progress is observed the only way
// a client can: by asking it, against a deadline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "server/http_client.h"

extern char** environ;

namespace cfrec::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A free loopback port: bind to 0, read it back, release it.
uint16_t FreePort() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acceptor(
      ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

struct Reply {
  int status = 0;
  json body;
};

// One request on its own connection; status 0 if the server is not there.
Reply Call(uint16_t port, const std::string& raw) {
  try {
    Client client(port);
    client.Send(raw);
    boost::system::error_code ec;
    const auto res = client.Read(ec);
    if (ec) return {};
    return {static_cast<int>(res.result_int()),
            json::parse(res.body(), nullptr, false)};
  } catch (const std::exception&) {
    return {};
  }
}

// A MIND-format log: users U0..U49, items N0..N199, 1,500 impressions of
// 10 items with 2 clicks each, one second apart from 2019-11-11 00:00 UTC.
constexpr int64_t kLogStartMs = 1573430400000;
constexpr int kImpressions = 1500;

void WriteLog(const std::string& path) {
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> user(0, 49), item(0, 199);
  std::ofstream out(path);
  for (int i = 0; i < kImpressions; ++i) {
    const int64_t ts = kLogStartMs / 1000 + i;
    const int h = static_cast<int>((ts / 3600) % 24), m = (ts / 60) % 60,
              s = ts % 60;
    char when[64];
    std::snprintf(when, sizeof(when), "11/11/2019 %d:%02d:%02d %s",
                  h % 12 == 0 ? 12 : h % 12, m, s, h < 12 ? "AM" : "PM");
    std::vector<int> shown;
    while (shown.size() < 10) {
      const int it = item(rng);
      if (std::find(shown.begin(), shown.end(), it) == shown.end()) {
        shown.push_back(it);
      }
    }
    out << "imp" << i << "\tU" << user(rng) << "\t" << when << "\t\t";
    for (size_t k = 0; k < shown.size(); ++k) {
      out << (k ? " " : "") << "N" << shown[k] << "-" << (k < 2 ? 1 : 0);
    }
    out << "\n";
  }
}

class FreshnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cfrec-freshness-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    WriteLog((dir_ / "behaviors.tsv").string());
    port_ = FreePort();
    const std::string http = "127.0.0.1:" + std::to_string(port_);
    const std::string data = (dir_ / "data").string();
    const std::string log = (dir_ / "behaviors.tsv").string();
    const std::string out = (dir_ / "serve.log").string();
    std::vector<std::string> args = {CFREC_BINARY,   "serve", "--http",   http,
                                     "--data-dir",   data,    "--replay", log,
                                     "--partitions", "4"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    ASSERT_EQ(posix_spawn(&pid_, CFREC_BINARY, &actions, nullptr, argv.data(),
                          environ),
              0);
    posix_spawn_file_actions_destroy(&actions);
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);  // the graceful drain and shutdown
      auto exited = std::async(std::launch::async, [pid = pid_] {
        int status = 0;
        waitpid(pid, &status, 0);
        return status;
      });
      if (exited.wait_for(std::chrono::seconds(30)) !=
          std::future_status::ready) {
        kill(pid_, SIGKILL);
        ADD_FAILURE() << "cfrec serve did not stop within 30 s of SIGTERM";
      } else {
        const int status = exited.get();
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
            << "exit status " << status;
      }
    }
    if (HasFailure()) {
      std::ifstream log(dir_ / "serve.log");
      std::stringstream text;
      text << log.rdbuf();
      std::printf("--- serve.log ---\n%s\n", text.str().c_str());
    }
    std::filesystem::remove_all(dir_);
  }

  Reply Recommend(const std::string& user, int n) {
    return Call(port_, Client::Get("/v1/recommendations?user_id=" + user +
                                   "&n=" + std::to_string(n)));
  }

  std::filesystem::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(FreshnessTest, ClicksReachRecommendationsWithinTwoSeconds) {
  // Start-up: the replay is applied and the model knows the user. The
  // generous deadline covers broker start and consumer assignment.
  const std::string user = "U7";
  Reply before;
  const auto startup_deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < startup_deadline) {
    before = Recommend(user, 10);
    if (before.status == 200 && before.body["fallback"].is_null() &&
        before.body["items"].size() >= 2) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_EQ(before.status, 200) << before.body.dump();
  ASSERT_TRUE(before.body["fallback"].is_null()) << before.body.dump();
  const std::string a = before.body["items"][0]["item_id"];
  const std::string b = before.body["items"][1]["item_id"];
  const uint64_t version = before.body["model_version"];

  // The user clicks the two items at the top of their list.
  const json event = {
      {"type", "impression"}, {"impression_id", "fresh-1"},
      {"user_id", user},      {"ts", kLogStartMs + kImpressions * 1000},
      {"items", {a, b}},      {"clicks", {a, b}}};
  const auto produced = Clock::now();
  const Reply accepted =
      Call(port_, Client::PostJson("/v1/events", event.dump()));
  ASSERT_EQ(accepted.status, 202) << accepted.body.dump();

  Reply after;
  bool fresh = false;
  while (Clock::now() - produced < std::chrono::seconds(2)) {
    after = Recommend(user, 10);
    if (after.status == 200 && after.body["model_version"] > version) {
      bool excluded = true;
      for (const auto& item : after.body["items"]) {
        if (item["item_id"] == a || item["item_id"] == b) excluded = false;
      }
      if (excluded) {
        fresh = true;
        break;
      }
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  const double seconds =
      std::chrono::duration<double>(Clock::now() - produced).count();
  RecordProperty("seconds_to_fresh", std::to_string(seconds));
  std::printf("clicks reflected after %.3f s\n", seconds);
  EXPECT_TRUE(fresh) << "after 2 s: " << after.body.dump() << " (clicked " << a
                     << ", " << b << "; version before " << version << ")";
}

}  // namespace
}  // namespace cfrec::server
