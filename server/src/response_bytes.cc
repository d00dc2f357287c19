#include "response_bytes.h"

#include <boost/beast/http.hpp>
#include <charconv>
#include <string_view>

namespace cfrec::server::internal {

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

namespace {

void AppendNumber(size_t n, std::string* out) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof(digits), n).ptr;
  out->append(digits, end);
}

void AppendField(std::string_view name, std::string_view value,
                 std::string* out) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

// Beast's basic_fields::set erases every field of that name and appends the
// new one: a field is written only if no later one of `fields` has its name.
bool SetLater(const HttpResponse& response, size_t index,
              std::string_view name) {
  for (size_t j = index + 1; j < response.headers.size(); ++j) {
    if (IEquals(response.headers[j].first, name)) return true;
  }
  return false;
}

}  // namespace

bool AppendResponseBytes(const HttpResponse& response, unsigned version,
                         bool keep_alive, bool head, std::string* out) {
  const int status = response.status;
  if (status / 100 == 1 || status == 204 || status == 304) return false;
  if (status < 100 || status > 999) return false;
  for (const auto& [name, value] : response.headers) {
    if (IEquals(name, "Connection") || IEquals(name, "Content-Length") ||
        IEquals(name, "Transfer-Encoding")) {
      return false;
    }
  }
  out->clear();
  out->append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  AppendNumber(static_cast<size_t>(status), out);
  out->push_back(' ');
  const auto reason = boost::beast::http::obsolete_reason(
      static_cast<boost::beast::http::status>(status));
  out->append(reason.data(), reason.size());
  out->append("\r\n");
  // Server and Content-Type are set first; a handler header of the same
  // name replaces them (and moves to its own place).
  bool server_replaced = false, type_replaced = false;
  for (const auto& [name, value] : response.headers) {
    server_replaced = server_replaced || IEquals(name, "Server");
    type_replaced = type_replaced || IEquals(name, "Content-Type");
  }
  if (!server_replaced) AppendField("Server", "cfrec", out);
  if (!type_replaced) AppendField("Content-Type", response.content_type, out);
  for (size_t i = 0; i < response.headers.size(); ++i) {
    const auto& [name, value] = response.headers[i];
    if (!SetLater(response, i, name)) AppendField(name, value, out);
  }
  // HTTP/1.1 keeps a connection open unless told; HTTP/1.0 closes it unless
  // told.
  if (version == 10 && keep_alive) AppendField("Connection", "keep-alive", out);
  if (version != 10 && !keep_alive) AppendField("Connection", "close", out);
  out->append("Content-Length: ");
  AppendNumber(response.body.size(), out);
  out->append("\r\n\r\n");
  if (!head) out->append(response.body);
  return true;
}

boost::beast::http::response<boost::beast::http::string_body> ToBeastResponse(
    HttpResponse response, unsigned version, bool keep_alive, bool head) {
  namespace http = boost::beast::http;
  http::response<http::string_body> res;
  res.version(version);
  res.result(static_cast<unsigned>(response.status));
  res.set(http::field::server, "cfrec");
  res.set(http::field::content_type, response.content_type);
  for (const auto& [name, value] : response.headers) res.set(name, value);
  res.keep_alive(keep_alive);
  if (head) {
    // HEAD: same headers, no body.
    res.content_length(response.body.size());
  } else {
    res.body() = std::move(response.body);
    res.prepare_payload();
  }
  return res;
}

}  // namespace cfrec::server::internal
