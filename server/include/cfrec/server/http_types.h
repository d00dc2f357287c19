// Plain HTTP request and response values exchanged between the transport
// (HttpServer, which speaks Boost.Beast) and the handlers (plain functions).
// Keeping Beast out of this header is what lets handler tests run without
// sockets.
#ifndef CFREC_SERVER_HTTP_TYPES_H_
#define CFREC_SERVER_HTTP_TYPES_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cfrec/schemas/status.h"

namespace cfrec::server {

// One parsed request. Value type; no thread-safety concerns.
struct HttpRequest {
  std::string method;        // "GET", "POST", ... as sent (case-sensitive)
  std::string target;        // origin-form: "/v1/recommendations?user_id=U"
  std::string content_type;  // Content-Type header, empty if absent
  std::string body;
  // Authorization header, empty if absent; repeated headers are joined
  // with ", " (which no valid credentials match).
  std::string authorization;
};

// One response. Value type.
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
  // The route template the request matched ("/v1/model"), or "unmatched";
  // used as the metrics label so unknown paths cannot explode cardinality.
  std::string route = "unmatched";
};

// The JSON error document every failure uses:
//   {"error": {"code": "<code>", "message": "<message>"}}
// `code` is a stable snake_case identifier ("invalid_argument",
// "not_found", "method_not_allowed", "payload_too_large",
// "unsupported_media_type", "not_ready", ...).
HttpResponse ErrorResponse(int status, std::string_view code,
                           std::string_view message);

// The one mapping from a Status to an HTTP status code:
// InvalidArgument 400, NotFound 404, FailedPrecondition/Unavailable/
// ResourceExhausted 503, Unsupported 501, everything else 500.
int HttpStatusFor(const Status& status);

// ErrorResponse(HttpStatusFor(status), <snake_case code>, status.message()).
HttpResponse ErrorResponseFor(const Status& status);

}  // namespace cfrec::server

#endif  // CFREC_SERVER_HTTP_TYPES_H_
