#include "cfrec/schemas/failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace cfrec {
namespace {

struct Point {
  std::string name;
  uint64_t stop_at = 0;  // the pass to stop at, from 1
  std::atomic<uint64_t> passes{0};
};

// CFREC_FAILPOINTS; malformed entries are ignored (a test that asks for a
// point it misspelt waits for a stop that never comes, and fails on its
// deadline).
std::vector<std::unique_ptr<Point>> Parse(const char* env) {
  std::vector<std::unique_ptr<Point>> out;
  std::string_view rest = env == nullptr ? "" : env;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
    const size_t at = item.find('@');
    if (at == std::string_view::npos || at == 0) continue;
    const uint64_t n =
        std::strtoull(std::string(item.substr(at + 1)).c_str(), nullptr, 10);
    if (n == 0) continue;
    auto p = std::make_unique<Point>();
    p->name = std::string(item.substr(0, at));
    p->stop_at = n;
    out.push_back(std::move(p));
  }
  return out;
}

const std::vector<std::unique_ptr<Point>>& Points() {
  static const std::vector<std::unique_ptr<Point>> points =
      Parse(std::getenv("CFREC_FAILPOINTS"));
  return points;
}

}  // namespace

bool FailPointsEnabled() {
  static const bool enabled = !Points().empty();
  return enabled;
}

void FailPoint(std::string_view name, std::string_view detail) {
  if (!FailPointsEnabled()) return;
  for (const auto& p : Points()) {
    if (p->name != name) continue;
    const uint64_t pass = p->passes.fetch_add(1) + 1;
    if (pass != p->stop_at) continue;
    const std::string line = "failpoint " + std::string(name) + " hit " +
                             std::to_string(pass) + ": " + std::string(detail) +
                             " (pid " + std::to_string(getpid()) + ")\n";
    // One write, so the line is whole before the stop.
    [[maybe_unused]] const ssize_t written =
        write(STDERR_FILENO, line.data(), line.size());
    raise(SIGSTOP);
  }
}

}  // namespace cfrec
