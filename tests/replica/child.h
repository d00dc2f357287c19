// Child processes whose stderr (cfrec's log) is read line by line, and a
// minimal HTTP/1.1 client for 127.0.0.1: what the multi-process tests need
// to drive `cfrec serve` as a client sees it.
#ifndef CFREC_TESTS_REPLICA_CHILD_H_
#define CFREC_TESTS_REPLICA_CHILD_H_

#include <arpa/inet.h>
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
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace cfrec::testing {

using Clock = std::chrono::steady_clock;

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

  // The port of the "HTTP on HOST:PORT" line; 0 if none by `deadline`.
  uint16_t WaitForPort(Clock::time_point deadline) {
    const auto line = WaitForLine("HTTP on ", deadline);
    if (!line) return 0;
    const size_t colon = line->find(':', line->find("HTTP on "));
    return static_cast<uint16_t>(std::atoi(line->c_str() + colon + 1));
  }

  // Waits for the exit; the wait status, or nullopt by `deadline`.
  std::optional<int> WaitForExit(Clock::time_point deadline) {
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait_until(lock, deadline, [&] { return eof_; })) {
        return std::nullopt;
      }
    }
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    exited_ = true;
    return status;
  }

  // SIGKILL and reap.
  void Kill() {
    Signal(SIGKILL);
    WaitForExit(Clock::now() + std::chrono::seconds(30));
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

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
};

// One request on its own connection to 127.0.0.1:port.
inline HttpReply HttpCall(uint16_t port, const std::string& method,
                          const std::string& target,
                          const std::string& body = "") {
  HttpReply reply;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string request =
        method + " " + target + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
    if (!body.empty()) {
      request += "Content-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n";
    }
    request += "\r\n" + body;
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[16384];
      ssize_t n = 0;
      while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
    }
  }
  close(fd);
  const size_t end = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) {
    return reply;
  }
  reply.status = std::atoi(response.c_str() + 9);
  reply.body = response.substr(end + 4);
  return reply;
}

}  // namespace cfrec::testing

#endif  // CFREC_TESTS_REPLICA_CHILD_H_
