// A response's bytes built in one string are the bytes Beast's serializer
// writes for the response the server used to build, header for header.
#include "response_bytes.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace cfrec::server::internal {
namespace {

// What Beast's serializer writes for the server's http::response (the
// server's path for what AppendResponseBytes declines).
std::string BeastBytes(const HttpResponse& response, unsigned version,
                       bool keep_alive, bool head) {
  std::ostringstream out;
  out << ToBeastResponse(response, version, keep_alive, head);
  return out.str();
}

std::vector<HttpResponse> Responses() {
  std::vector<HttpResponse> all;
  HttpResponse ok;
  ok.body = R"({"user_id":"U1","items":[{"item_id":"N1","score":0.5}]})";
  all.push_back(ok);
  all.push_back(ErrorResponse(404, "not_found", "no such route"));
  HttpResponse shed = ErrorResponse(503, "overloaded", "retry");
  shed.headers.emplace_back("Retry-After", "1");
  all.push_back(shed);
  HttpResponse metrics;
  metrics.content_type = "text/plain; version=0.0.4";
  metrics.body = std::string(70000, 'x');  // past any small-buffer size
  all.push_back(metrics);
  HttpResponse empty;
  empty.status = 202;
  all.push_back(empty);
  // Headers that replace the defaults, repeat, or differ only in case.
  HttpResponse replaced;
  replaced.status = 405;
  replaced.headers = {{"content-type", "text/html"},
                      {"Allow", "GET"},
                      {"Cache-Control", "no-store"},
                      {"allow", "GET, HEAD"},
                      {"Server", "other"}};
  replaced.body = "<p>no</p>";
  all.push_back(replaced);
  HttpResponse odd;
  odd.status = 599;  // no reason phrase Beast knows
  odd.body = "?";
  all.push_back(odd);
  return all;
}

TEST(ResponseBytes, SameBytesAsBeastsSerializer) {
  std::string bytes = "left over from an earlier response";
  for (const HttpResponse& response : Responses()) {
    for (unsigned version : {10u, 11u}) {
      for (bool keep_alive : {false, true}) {
        for (bool head : {false, true}) {
          SCOPED_TRACE(std::to_string(response.status) + " HTTP/" +
                       std::to_string(version) + (keep_alive ? " keep" : "") +
                       (head ? " head" : ""));
          ASSERT_TRUE(
              AppendResponseBytes(response, version, keep_alive, head, &bytes));
          EXPECT_EQ(bytes, BeastBytes(response, version, keep_alive, head));
        }
      }
    }
  }
}

TEST(ResponseBytes, LeavesToBeastWhatItFramesDifferently) {
  std::string bytes;
  for (int status : {101, 204, 304}) {
    HttpResponse response;
    response.status = status;
    EXPECT_FALSE(AppendResponseBytes(response, 11, true, false, &bytes))
        << status;
  }
  for (const char* name :
       {"Connection", "content-length", "Transfer-Encoding"}) {
    HttpResponse response;
    response.headers.emplace_back(name, "x");
    EXPECT_FALSE(AppendResponseBytes(response, 11, true, false, &bytes))
        << name;
  }
}

}  // namespace
}  // namespace cfrec::server::internal
