// A table of malformed requests: each gets the documented status and a
// well-formed JSON error document; none throws or crashes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "server/service_fixture.h"

namespace cfrec::server {
namespace {

struct Case {
  const char* name;
  const char* method;
  std::string target;
  const char* content_type;
  std::string body;
  int status;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << c.name;
}

const std::string kRecs = "/v1/recommendations?";

std::string Deep(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

const Case kCases[] = {
    // Query strings.
    {"missing_user", "GET", kRecs + "n=3", "", "", 400},
    {"empty_user", "GET", kRecs + "user_id=", "", "", 400},
    {"bad_escape", "GET", kRecs + "user_id=%zz", "", "", 400},
    {"truncated_escape", "GET", kRecs + "user_id=a%4", "", "", 400},
    {"param_without_equals", "GET", kRecs + "user_id", "", "", 400},
    {"duplicate_param", "GET", kRecs + "user_id=a&user_id=b", "", "", 400},
    {"unknown_param", "GET", kRecs + "user_id=a&k=3", "", "", 400},
    {"n_zero", "GET", kRecs + "user_id=a&n=0", "", "", 400},
    {"n_negative", "GET", kRecs + "user_id=a&n=-1", "", "", 400},
    {"n_over_max", "GET", kRecs + "user_id=a&n=101", "", "", 400},
    {"n_huge", "GET", kRecs + "user_id=a&n=99999999999999999999999999", "", "",
     400},
    {"n_exponent", "GET", kRecs + "user_id=a&n=1e1", "", "", 400},
    {"n_hex", "GET", kRecs + "user_id=a&n=0x10", "", "", 400},
    {"n_space", "GET", kRecs + "user_id=a&n=+5", "", "", 400},
    {"n_empty", "GET", kRecs + "user_id=a&n=", "", "", 400},
    {"user_too_long", "GET", kRecs + "user_id=" + std::string(129, 'u'), "", "",
     400},
    {"user_invalid_utf8", "GET", kRecs + "user_id=%FF", "", "", 400},
    {"user_overlong_utf8", "GET", kRecs + "user_id=%C0%AF", "", "", 400},
    {"user_surrogate", "GET", kRecs + "user_id=%ED%A0%80", "", "", 400},
    {"user_unicode_ok", "GET", kRecs + "user_id=%E2%9C%93%F0%9F%98%80", "", "",
     200},
    {"user_nul_ok", "GET", kRecs + "user_id=a%00b", "", "", 200},
    {"fragment", "GET", kRecs + "user_id=a#x", "", "", 400},
    {"asterisk_target", "GET", "*", "", "", 400},
    {"absolute_target", "GET", "http://h/v1/model", "", "", 400},
    {"trailing_slash", "GET", "/v1/model/", "", "", 404},
    {"params_on_model", "GET", "/v1/model?x=1", "", "", 400},
    {"lowercase_method", "get", "/v1/model", "", "", 405},
    // Bodies.
    {"empty_body", "POST", "/v1/rank", "application/json", "", 400},
    {"invalid_json", "POST", "/v1/rank", "application/json", "{", 400},
    {"truncated_json", "POST", "/v1/rank", "application/json",
     R"({"user_id":"a","items":["N1",)", 400},
    {"json_null", "POST", "/v1/rank", "application/json", "null", 400},
    {"json_number", "POST", "/v1/rank", "application/json", "1e999999", 400},
    {"trailing_garbage", "POST", "/v1/rank", "application/json",
     R"({"user_id":"a","items":["N1"]} x)", 400},
    {"user_wrong_type", "POST", "/v1/rank", "application/json",
     R"({"user_id":5,"items":["N1"]})", 400},
    {"items_wrong_type", "POST", "/v1/rank", "application/json",
     R"({"user_id":"a","items":[1,2]})", 400},
    {"items_nested", "POST", "/v1/rank", "application/json",
     R"({"user_id":"a","items":[["N1"]]})", 400},
    {"deep_nesting", "POST", "/v1/rank", "application/json", Deep(100000), 400},
    {"invalid_utf8_json", "POST", "/v1/rank", "application/json",
     "{\"user_id\":\"\xff\",\"items\":[\"N1\"]}", 400},
    {"unicode_items_ok", "POST", "/v1/rank", "application/json",
     R"({"user_id":"\u00e9t\u00e9","items":["\ud83d\ude00","N1"]})", 200},
    {"lone_surrogate_escape", "POST", "/v1/rank", "application/json",
     R"({"user_id":"\ud800","items":["N1"]})", 400},
    {"form_content_type", "POST", "/v1/rank",
     "application/x-www-form-urlencoded", "user_id=a", 415},
    {"event_wrong_type", "POST", "/v1/events", "application/json",
     R"({"type":"purchase","user_id":"a"})", 400},
    {"event_missing_fields", "POST", "/v1/events", "application/json",
     R"({"type":"click"})", 400},
    {"event_huge_ts", "POST", "/v1/events", "application/json",
     R"({"type":"click","impression_id":"i","user_id":"a","item_id":"N1",)"
     R"("ts":1e400})",
     400},
    {"event_huge_int_ts", "POST", "/v1/events", "application/json",
     R"({"type":"click","impression_id":"i","user_id":"a","item_id":"N1",)"
     R"("ts":123456789012345678901234567890})",
     400},
    {"event_string", "POST", "/v1/events", "application/json", R"("click")",
     400},
    {"event_deep", "POST", "/v1/events", "application/json", Deep(5000), 400},
};

class MalformedRequestTest : public ServiceTest,
                             public ::testing::WithParamInterface<Case> {};

TEST_P(MalformedRequestTest, AnswersWithStatusAndJsonError) {
  const Case& c = GetParam();
  const HttpResponse r =
      Handle(context_, {c.method, c.target, c.content_type, c.body, ""});
  EXPECT_EQ(r.status, c.status) << r.body;
  const auto doc = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << r.body;
  if (c.status >= 400) {
    ASSERT_TRUE(doc.contains("error")) << r.body;
    EXPECT_TRUE(doc["error"]["code"].is_string());
    EXPECT_FALSE(doc["error"]["message"].get<std::string>().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Table, MalformedRequestTest,
                         ::testing::ValuesIn(kCases), [](const auto& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace cfrec::server
