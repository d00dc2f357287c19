// `cfrec serve` (or any program) as a child process of a test: its stderr
// (cfrec's log) read line by line, its fail-point stops (CFREC_FAILPOINTS,
// cfrec/schemas/failpoint.h) seen with waitpid(WUNTRACED), and a small
// blocking HTTP client for its API. Every wait has a deadline.
#ifndef CFREC_TESTS_COMMON_SERVE_CHILD_H_
#define CFREC_TESTS_COMMON_SERVE_CHILD_H_

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
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace cfrec::testing {

using Clock = std::chrono::steady_clock;

class ChildProcess {
 public:
  // `env`: variables added to the test's environment ("NAME=value").
  explicit ChildProcess(std::vector<std::string> args,
                        std::vector<std::string> env = {}) {
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
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(),
                    envp.data()) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] { Read(fd); });
  }
  ~ChildProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }
  // The wait status of an exit WaitForStop saw instead of a stop.
  std::optional<int> exit_status() const { return exit_status_; }
  pid_t pid() const { return pid_; }
  void Signal(int sig) { kill(pid_, sig); }

  // The first log line containing `text` (from line `from` on), waiting
  // until `deadline`; nullopt at the deadline or when the log ends first.
  std::optional<std::string> WaitForLine(const std::string& text,
                                         Clock::time_point deadline,
                                         size_t from = 0) {
    std::unique_lock lock(mu_);
    std::optional<std::string> found;
    cv_.wait_until(lock, deadline, [&] {
      for (size_t i = from; i < lines_.size(); ++i) {
        if (lines_[i].find(text) != std::string::npos) {
          found = lines_[i];
          return true;
        }
      }
      return eof_;
    });
    return found;
  }
  // The first log line containing any of `texts`.
  std::optional<std::string> WaitForAnyLine(
      const std::vector<std::string>& texts, Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    std::optional<std::string> found;
    cv_.wait_until(lock, deadline, [&] {
      for (const auto& line : lines_) {
        for (const auto& text : texts) {
          if (line.find(text) != std::string::npos) {
            found = line;
            return true;
          }
        }
      }
      return eof_;
    });
    return found;
  }
  bool HasLine(const std::string& text) {
    return WaitForLine(text, Clock::now()).has_value();
  }

  // Waits for the stop of a fail point (SIGSTOP); false when the process
  // exits instead or `deadline` passes.
  bool WaitForStop(Clock::time_point deadline) {
    while (Clock::now() < deadline) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WUNTRACED | WNOHANG);
      if (r == pid_ && WIFSTOPPED(status)) return true;
      if (r == pid_ || r < 0) {
        if (r == pid_) exit_status_ = status;
        exited_ = true;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

  // SIGKILL (also ends a stopped process), and its wait status.
  int Kill() {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    return status;
  }

  // Waits for the exit, and for the end of its log (every line read); the
  // wait status, or nullopt at the deadline.
  std::optional<int> WaitForExit(Clock::time_point deadline) {
    while (Clock::now() < deadline) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        std::unique_lock lock(mu_);
        cv_.wait_until(lock, deadline, [&] { return eof_; });
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::nullopt;
  }

  std::string Log() {
    std::lock_guard lock(mu_);
    std::string all;
    for (const auto& line : lines_) all += line + "\n";
    return all;
  }
  size_t LineCount() {
    std::lock_guard lock(mu_);
    return lines_.size();
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
  std::optional<int> exit_status_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;  // guarded by mu_
  bool eof_ = false;                // guarded by mu_
};

struct HttpReply {
  int status = 0;  // 0: no answer (refused, reset, timeout)
  std::string body;
};

// One request on its own connection to 127.0.0.1:port, 5 s timeouts.
inline HttpReply HttpCall(uint16_t port, const std::string& method,
                          const std::string& target,
                          const std::string& body = "") {
  HttpReply reply;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
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
      char buf[8192];
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

// Unlabelled samples of a Prometheus exposition: name -> value.
inline std::map<std::string, double> ParseMetrics(const std::string& text) {
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

// GET /metrics; empty when the service does not answer 200.
inline std::map<std::string, double> GetMetrics(uint16_t port) {
  const HttpReply r = HttpCall(port, "GET", "/metrics");
  if (r.status != 200) return {};
  return ParseMetrics(r.body);
}

// The port of "HTTP on HOST:PORT" in a cfrec serve log line.
inline uint16_t PortOfLine(const std::string& line) {
  const size_t at = line.find("HTTP on ");
  if (at == std::string::npos) return 0;
  const size_t colon = line.find(':', at + 8);
  if (colon == std::string::npos) return 0;
  return static_cast<uint16_t>(std::atoi(line.c_str() + colon + 1));
}

}  // namespace cfrec::testing

#endif  // CFREC_TESTS_COMMON_SERVE_CHILD_H_
