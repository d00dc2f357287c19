// The HTTP front of `cfrec serve`, the same for every role (all, trainer,
// replica): the listen address, the write token, load shedding, the
// dashboard's assets and the retrieval index built at publish time.
#ifndef CFREC_APP_SERVE_HTTP_H_
#define CFREC_APP_SERVE_HTTP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cfrec/learner/snapshot.h"
#include "cfrec/schemas/status.h"
#include "cfrec/server/auth.h"
#include "cfrec/server/dashboard.h"
#include "cfrec/server/http_server.h"
#include "cfrec/server/recommend.h"

namespace cfrec::app {

// The serve flags the HTTP front reads.
struct HttpArgs {
  std::string http = "127.0.0.1:8080";  // --http HOST:PORT
  std::string api_token_file;           // empty = writes are open
  // Load shedding (server/admission.h): handler threads, requests queued
  // or running before the excess gets 503, longest wait in the queue, the
  // handler threads' nice value. The wait bounds a burst's delay too (after
  // a loaded interval): 5 ms, CoDel's usual target, keeps an admitted
  // request's p99 within about 2 x the unloaded one when a stall of the
  // machine meets a load; 20 ms gave up to 8 x (docs/BENCHMARKS.md).
  int http_threads = 2;
  size_t max_inflight = 64;
  int max_queue_ms = 5;
  int handler_nice = 5;
  // Delay target (AdmissionOptions::target_delay; 0 = off) and its
  // interval. Overload is judged on loaded intervals only, so a light
  // client's few requests are never refused for a stall of the machine.
  double shed_target_ms = 1;
  int shed_interval_ms = 100;
  // Requests that would not wait run on the I/O thread that read them,
  // on at most this many I/O threads at once (0: all but one). 2: both of
  // the default two, with the delay rule refusing what waited unread
  // meanwhile under overload.
  bool run_inline = true;
  int inline_io_threads = 2;
  // The I/O threads' SCHED_FIFO priority (0 = SCHED_OTHER):
  // ServerOptions::io_realtime_priority.
  int io_realtime_priority = 0;
};

// Logs "what: status" as an error; the exit code of a failed start (1).
int Fail(const std::string& what, const Status& s);

// "HOST:PORT" -> host, port. IPv6 literals go in brackets: [::1]:8080.
Status ParseHostPort(const std::string& text, std::string* host,
                     uint16_t* port);

// The token of --api-token-file (nothing when the flag is empty); a warning
// about the file (e.g. its mode) is logged.
Result<std::optional<server::ApiToken>> LoadApiToken(const std::string& file);

// Server options from the flags. Logs who may write: the token's holders,
// or anyone, with a warning when the address is reachable beyond loopback.
Result<server::ServerOptions> MakeServerOptions(const HttpArgs& args,
                                                bool has_token);

// The dashboard page and its scripts, embedded in the binary.
std::vector<server::StaticAsset> DashboardAssets();

// A retrieval-index cache that `snapshots` fills in its publishing thread,
// so no request pays for building the index of a new snapshot. Set before
// the first Publish.
std::shared_ptr<server::CandidateIndexCache> PrepareRetrievalOnPublish(
    learner::SnapshotHolder* snapshots);

}  // namespace cfrec::app

#endif  // CFREC_APP_SERVE_HTTP_H_
