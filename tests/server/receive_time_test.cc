#include "cfrec/server/receive_time.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string_view>
#include <thread>

namespace cfrec::server {
namespace {

// A connected loopback TCP pair: client_ writes, server_ reads.
class LoopbackPair {
 public:
  LoopbackPair() {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(listen(listener, 1), 0);
    EXPECT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len),
              0);
    client_ = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(connect(client_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    server_ = accept(listener, nullptr, nullptr);
    EXPECT_GE(server_, 0);
    close(listener);
  }
  ~LoopbackPair() {
    if (client_ >= 0) close(client_);
    if (server_ >= 0) close(server_);
  }
  void CloseClient() {
    close(client_);
    client_ = -1;
  }
  int client() const { return client_; }
  int server() const { return server_; }

 private:
  int client_ = -1;
  int server_ = -1;
};

TEST(ReceiveTime, TheWaitUnreadInTheSocketIsReturnedWithTheBytes) {
  LoopbackPair pair;
  ASSERT_TRUE(EnableReceiveTimes(pair.server()));
  // The bytes wait unread for at least this long.
  const auto hold = std::chrono::milliseconds(30);
  char buf[16];
  TimedRead read;
  // When no socket of the machine asked for receive times before, the
  // kernel turns stamping on later, from a work item (net_enable_timestamp
  // defers the switch of its static key), so bytes that arrive before that
  // carry no stamp; by the next send it is on.
  for (int attempt = 0; attempt < 5; ++attempt) {
    ASSERT_EQ(send(pair.client(), "abc", 3, 0), 3);
    std::this_thread::sleep_for(hold);
    read = ReadWithReceiveTime(pair.server(), buf, sizeof(buf), MSG_DONTWAIT,
                               std::nullopt, std::chrono::seconds(60));
    ASSERT_EQ(read.bytes, 3);
    EXPECT_EQ(std::string_view(buf, 3), "abc");
    if (read.waited.has_value()) break;
  }
  ASSERT_TRUE(read.waited.has_value());
  EXPECT_GE(*read.waited, hold);
  EXPECT_LT(*read.waited, std::chrono::seconds(60));
}

TEST(ReceiveTime, AWaitBeyondMaxAgeOrWithoutStampsIsEmpty) {
  LoopbackPair pair;
  ASSERT_EQ(send(pair.client(), "a", 1, 0), 1);
  char buf[16];
  // No stamps asked for.
  TimedRead read = ReadWithReceiveTime(pair.server(), buf, sizeof(buf), 0,
                                       std::nullopt, std::chrono::seconds(60));
  ASSERT_EQ(read.bytes, 1);
  EXPECT_FALSE(read.waited.has_value());

  ASSERT_TRUE(EnableReceiveTimes(pair.server()));
  ASSERT_EQ(send(pair.client(), "b", 1, 0), 1);
  // "Now" an hour after the real time: beyond max_age.
  read = ReadWithReceiveTime(pair.server(), buf, sizeof(buf), 0,
                             RealTimeNs() + 3'600'000'000'000LL,
                             std::chrono::seconds(60));
  ASSERT_EQ(read.bytes, 1);
  EXPECT_FALSE(read.waited.has_value());
}

TEST(ReceiveTime, NothingToReadAndAClosedPeerAreTold) {
  LoopbackPair pair;
  ASSERT_TRUE(EnableReceiveTimes(pair.server()));
  char buf[16];
  TimedRead read =
      ReadWithReceiveTime(pair.server(), buf, sizeof(buf), MSG_DONTWAIT,
                          std::nullopt, std::chrono::seconds(60));
  EXPECT_EQ(read.bytes, -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
  pair.CloseClient();
  read = ReadWithReceiveTime(pair.server(), buf, sizeof(buf), 0, std::nullopt,
                             std::chrono::seconds(60));
  EXPECT_EQ(read.bytes, 0);
  EXPECT_FALSE(read.waited.has_value());
}

}  // namespace
}  // namespace cfrec::server
