#include "serve_http.h"

#include <chrono>
#include <cstdlib>
#include <utility>

#include "cfrec/schemas/log.h"
#include "cfrec/web/assets.h"

namespace cfrec::app {
namespace {

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

int Fail(const std::string& what, const Status& s) {
  LogError("serve", what + ": " + s.ToString());
  return 1;
}

Status ParseHostPort(const std::string& text, std::string* host,
                     uint16_t* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    return Status::InvalidArgument("--http: expected HOST:PORT, got '" + text +
                                   "'");
  }
  *host = text.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  const std::string p = text.substr(colon + 1);
  char* end = nullptr;
  const long v = std::strtol(p.c_str(), &end, 10);
  if (*end != '\0' || v < 0 || v > 65535) {
    return Status::InvalidArgument("--http: bad port '" + p + "'");
  }
  *port = static_cast<uint16_t>(v);
  return Status::Ok();
}

Result<std::optional<server::ApiToken>> LoadApiToken(const std::string& file) {
  if (file.empty()) return std::optional<server::ApiToken>();
  auto read = server::ReadApiTokenFile(file);
  if (!read.ok()) return read.status();
  if (!read->warning.empty()) LogWarn("serve", read->warning);
  return std::optional<server::ApiToken>(std::move(read->token));
}

Result<server::ServerOptions> MakeServerOptions(const HttpArgs& args,
                                                bool has_token) {
  server::ServerOptions so;
  Status s = ParseHostPort(args.http, &so.host, &so.port);
  if (!s.ok()) return s;
  so.admission.threads = args.http_threads;
  so.admission.max_inflight = args.max_inflight;
  so.admission.max_queue_wait = std::chrono::milliseconds(args.max_queue_ms);
  so.admission.handler_nice = args.handler_nice;
  so.admission.target_delay = std::chrono::microseconds(
      static_cast<int64_t>(args.shed_target_ms * 1000));
  so.admission.target_interval =
      std::chrono::milliseconds(args.shed_interval_ms);
  so.run_inline = args.run_inline;
  so.inline_io_threads = args.inline_io_threads;
  so.io_realtime_priority = args.io_realtime_priority;
  if (has_token) {
    LogInfo("serve",
            "POST /v1/events needs 'Authorization: Bearer' with "
            "the token in " +
                args.api_token_file + "; reads stay open");
  } else if (!IsLoopback(so.host)) {
    LogWarn("serve", "POST /v1/events is open to anyone who can reach " +
                         args.http + "; give --api-token-file to protect it");
  }
  return so;
}

std::vector<server::StaticAsset> DashboardAssets() {
  std::vector<server::StaticAsset> assets;
  for (const web::Asset& a : web::Assets()) {
    assets.push_back({a.path, a.content_type, a.body});
  }
  return assets;
}

std::shared_ptr<server::CandidateIndexCache> PrepareRetrievalOnPublish(
    learner::SnapshotHolder* snapshots) {
  auto cache = std::make_shared<server::CandidateIndexCache>();
  snapshots->SetOnPublish(
      [cache](const std::shared_ptr<const learner::ModelSnapshot>& snapshot) {
        cache->Prepare(snapshot);
      });
  return cache;
}

}  // namespace cfrec::app
