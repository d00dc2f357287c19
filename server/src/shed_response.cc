#include "shed_response.h"

#include <array>
#include <string>

namespace cfrec::server::internal {
namespace {

std::string Serialise(unsigned version, bool keep_alive, bool head) {
  const HttpResponse r = ShedResponse();
  std::string out = version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(r.status) + " Service Unavailable\r\n";
  out += "Server: cfrec\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  for (const auto& [name, value] : r.headers) {
    out += name + ": " + value + "\r\n";
  }
  // HTTP/1.1 keeps a connection open unless told; HTTP/1.0 closes it
  // unless told.
  if (version == 10 && keep_alive) out += "Connection: keep-alive\r\n";
  if (version != 10 && !keep_alive) out += "Connection: close\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n";
  if (!head) out += r.body;
  return out;
}

}  // namespace

HttpResponse ShedResponse() {
  HttpResponse response = ErrorResponse(
      503, "overloaded",
      "the server is at capacity; retry after the Retry-After delay");
  response.headers.emplace_back("Retry-After", "1");
  response.route = "shed";
  return response;
}

std::string_view ShedResponseBytes(unsigned version, bool keep_alive,
                                   bool head) {
  // Index: HTTP/1.1, keep-alive, HEAD as bits 2, 1, 0.
  static const std::array<std::string, 8> kBytes = [] {
    std::array<std::string, 8> bytes;
    for (int i = 0; i < 8; ++i) {
      bytes[i] = Serialise((i & 4) ? 11 : 10, (i & 2) != 0, (i & 1) != 0);
    }
    return bytes;
  }();
  return kBytes[(version == 10 ? 0 : 4) + (keep_alive ? 2 : 0) +
                (head ? 1 : 0)];
}

}  // namespace cfrec::server::internal
