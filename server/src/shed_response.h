// The answer to a request refused by load shedding (admission.h), as a
// value and as the exact bytes on the wire. The bytes are built once, so an
// I/O thread refuses a request by writing a constant buffer: no JSON, no
// response object, no serializer, which is what an overloaded server can
// least afford per request. Private to cfrec::server; thread-safe.
#ifndef CFREC_SERVER_SRC_SHED_RESPONSE_H_
#define CFREC_SERVER_SRC_SHED_RESPONSE_H_

#include <string_view>

#include "cfrec/server/http_types.h"

namespace cfrec::server::internal {

// 503 "overloaded" with "Retry-After: 1", route "shed".
HttpResponse ShedResponse();

// ShedResponse() serialised for an HTTP/1.`version % 10` request (10 or 11;
// anything but 10 is answered as 11): the status line, Server,
// Content-Type, Retry-After, the Connection header a keep-alive or closing
// answer needs in that version, Content-Length, and the body unless `head`.
// Points into storage that lives as long as the program.
std::string_view ShedResponseBytes(unsigned version, bool keep_alive,
                                   bool head);

}  // namespace cfrec::server::internal

#endif  // CFREC_SERVER_SRC_SHED_RESPONSE_H_
