// What the dashboard routes read besides the model snapshot: the state
// store's recent clicks and dead letters (through StateView, which the app
// implements over the EventStore, so this module needs no RocksDB), and the
// static files of the page itself (StaticAsset, embedded in the binary by
// the web module).
//
// Routes (schemas/openapi.yaml is the full contract):
//   GET /                  the dashboard page (and its files under /ui/)
//   GET /v1/metrics        every metric of GET /metrics as JSON
//   GET /v1/explain?user_id=U&n=10   a user's recent clicks and top-n, each
//                          item's score broken down into its terms
//   GET /v1/trending?n=10  the candidate pool's most clicked items
//   GET /v1/dead-letters?n=20   the most recent rejected messages
#ifndef CFREC_SERVER_DASHBOARD_H_
#define CFREC_SERVER_DASHBOARD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/schemas/status.h"

namespace cfrec::server {

// One click of a user, as stored.
struct ClickRecord {
  std::string item_id;
  std::string impression_id;
  int64_t ts_ms = 0;  // event time of the impression
};

// One rejected message, its payload cut to a prefix.
struct DeadLetterRecord {
  uint64_t seq = 0;  // 1, 2, ... in the order they were recorded
  std::string reason;
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::string payload_head;  // the first bytes of the message
  size_t payload_bytes = 0;  // its whole size
};

// Read-only views of the state store. Thread-safe implementations only:
// handlers call them from many threads at once.
class StateView {
 public:
  virtual ~StateView() = default;
  // The user's most recent clicks, newest first, at most `n`. NotFound for a
  // user the store never saw.
  virtual Result<std::vector<ClickRecord>> RecentClicks(
      std::string_view user_id, size_t n) const = 0;
  // The most recent dead letters, newest first, at most `n`, each payload
  // cut to at most `head_bytes`.
  virtual Result<std::vector<DeadLetterRecord>> RecentDeadLetters(
      size_t n, size_t head_bytes) const = 0;
};

// A file served by GET at `path` (the dashboard page and its scripts).
// The views refer to static storage.
struct StaticAsset {
  std::string_view path;  // "/", "/ui/app.js", ...
  std::string_view content_type;
  std::string_view body;
};

}  // namespace cfrec::server

#endif  // CFREC_SERVER_DASHBOARD_H_
