// A response's wire bytes built in one contiguous string, for one send: the
// same status line, header fields in the same order and the same framing as
// Beast's serializer writes for the http::response the server used to build
// (Server, Content-Type, the handler's headers each set in turn, Connection
// as keep-alive asks, Content-Length), without the serializer's buffer
// sequence.
#ifndef CFREC_SERVER_SRC_RESPONSE_BYTES_H_
#define CFREC_SERVER_SRC_RESPONSE_BYTES_H_

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>
#include <string_view>

#include "cfrec/server/http_types.h"

namespace cfrec::server::internal {

// Replaces *out with the bytes of `response` for HTTP `version` (10 or 11)
// and keep-alive; for a HEAD request the headers only (Content-Length still
// the body's size). False, with *out unspecified, for a response Beast
// frames differently (a 1xx, 204 or 304 status, or a handler header named
// Connection, Content-Length or Transfer-Encoding): the caller serialises
// those through Beast.
bool AppendResponseBytes(const HttpResponse& response, unsigned version,
                         bool keep_alive, bool head, std::string* out);

// The same answer as an http::response for Beast's serializer: the path
// for what AppendResponseBytes declines, and the reference its bytes equal.
boost::beast::http::response<boost::beast::http::string_body> ToBeastResponse(
    HttpResponse response, unsigned version, bool keep_alive, bool head);

// ASCII case-insensitive equality, as HTTP field names compare.
bool IEquals(std::string_view a, std::string_view b);

}  // namespace cfrec::server::internal

#endif  // CFREC_SERVER_SRC_RESPONSE_BYTES_H_
