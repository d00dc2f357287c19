// The pre-built 503 of a shed request parses as the same answer a handler
// would build, framed right for each version, keep-alive and HEAD.
#include "shed_response.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace cfrec::server::internal {
namespace {

namespace http = boost::beast::http;

TEST(ShedResponse, BytesParseAsTheShedAnswer) {
  const HttpResponse want = ShedResponse();
  EXPECT_EQ(want.status, 503);
  EXPECT_EQ(nlohmann::json::parse(want.body)["error"]["code"], "overloaded");
  for (unsigned version : {10u, 11u}) {
    for (bool keep_alive : {false, true}) {
      for (bool head : {false, true}) {
        SCOPED_TRACE(std::to_string(version) + (keep_alive ? " keep" : "") +
                     (head ? " head" : ""));
        const std::string bytes(ShedResponseBytes(version, keep_alive, head));
        http::response_parser<http::string_body> parser;
        parser.eager(true);
        parser.skip(head);
        boost::system::error_code ec;
        const size_t used =
            parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
        ASSERT_FALSE(ec) << ec.message();
        ASSERT_TRUE(parser.is_done());
        EXPECT_EQ(used, bytes.size());  // nothing after the answer
        const auto& res = parser.get();
        EXPECT_EQ(res.version(), version);
        EXPECT_EQ(res.result_int(), 503);
        EXPECT_EQ(res.keep_alive(), keep_alive);
        EXPECT_EQ(res[http::field::retry_after], "1");
        EXPECT_EQ(res[http::field::content_type], want.content_type);
        EXPECT_EQ(res[http::field::content_length],
                  std::to_string(want.body.size()));
        EXPECT_EQ(res.body(), head ? "" : want.body);
      }
    }
  }
}

TEST(ShedResponse, BytesAreBuiltOnce) {
  EXPECT_EQ(ShedResponseBytes(11, true, false).data(),
            ShedResponseBytes(11, true, false).data());
}

}  // namespace
}  // namespace cfrec::server::internal
