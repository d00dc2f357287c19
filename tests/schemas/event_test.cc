#include "cfrec/schemas/event.h"

#include <gtest/gtest.h>

#include <string>

namespace cfrec {
namespace {

struct Case {
  const char* name;
  std::string json;
  const char* error_substring;  // nullptr = accepted
};

class ParseEventTable : public ::testing::TestWithParam<Case> {};

TEST_P(ParseEventTable, AcceptsOrRejectsWithFieldName) {
  const Case& c = GetParam();
  auto r = ParseEvent(c.json);
  if (c.error_substring == nullptr) {
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  } else {
    ASSERT_FALSE(r.ok()) << "accepted: " << c.json;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.error_substring), std::string::npos)
        << r.status().message();
  }
}

const std::string kLongId(129, 'x');

INSTANTIATE_TEST_SUITE_P(
    Table, ParseEventTable,
    ::testing::Values(
        Case{
            "impression_minimal",
            R"({"type":"impression","impression_id":"i1","user_id":"u1","ts":1573568086000,"items":["a","b"]})",
            nullptr},
        Case{
            "impression_full_rfc3339",
            R"({"type":"impression","impression_id":"i1","user_id":"u1","ts":"2019-11-12T14:14:46Z","items":["a","b"],"clicks":["b"],"history":["c","c"]})",
            nullptr},
        Case{
            "click_ok",
            R"({"type":"click","impression_id":"i1","user_id":"u1","item_id":"a","ts":"2019-11-12T14:14:46.5+01:00"})",
            nullptr},
        Case{
            "unicode_ids",
            R"({"type":"click","impression_id":"\u00e9t\u00e9","user_id":"\u7528\u6237","item_id":"a","ts":0})",
            nullptr},
        Case{"not_json", "{nope", "invalid JSON"},
        Case{"empty", "", "invalid JSON"},
        Case{"array", "[1,2]", "JSON object"},
        Case{"missing_type", R"({"user_id":"u"})", "'type'"},
        Case{"unknown_type", R"({"type":"view"})", "unknown event type"},
        Case{"type_not_string", R"({"type":5})", "'type': must be a string"},
        Case{
            "missing_items",
            R"({"type":"impression","impression_id":"i","user_id":"u","ts":1})",
            "'items': is required"},
        Case{
            "empty_items",
            R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":[]})",
            "'items': must not be empty"},
        Case{
            "item_not_string",
            R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":["a",7]})",
            "'items[1]': must be a string"},
        Case{
            "nested_array_item",
            R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":["a",["b"],"c"]})",
            "'items[1]': must be a string"},
        Case{
            "object_item",
            R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":["a","b",{"c":"d"}]})",
            "'items[2]': must be a string"},
        Case{
            "items_not_array",
            R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":"a"})",
            "'items': must be an array of strings"},
        Case{
            "object_ts",
            R"({"type":"click","impression_id":"i","user_id":"u","item_id":"a","ts":{"ms":1}})",
            "'ts': must be an RFC 3339 string"},
        Case{
            "null_user",
            R"({"type":"click","impression_id":"i","user_id":null,"item_id":"a","ts":1})",
            "'user_id': must be a string"},
        Case{
            "field_of_other_type",
            R"({"type":"click","impression_id":"i","user_id":"u","item_id":"a","ts":1,"items":["a"]})",
            "'items': unknown field"},
        Case{
            "trailing_garbage",
            R"({"type":"click","impression_id":"i","user_id":"u","item_id":"a","ts":1} x)",
            "invalid JSON"},
        Case{
            "duplicate_key_last_wins",
            R"({"type":"click","impression_id":"i","user_id":5,"user_id":"u","item_id":"a","ts":1})",
            nullptr},
        Case{
            "duplicate_item",
            R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":["a","a"]})",
            "'items[1]'"},
        Case{
            "click_not_in_items",
            R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":["a"],"clicks":["z"]})",
            "'clicks[0]': 'z' is not in items"},
        Case{
            "unknown_field_typo",
            R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":["a"],"click":["a"]})",
            "'click': unknown field"},
        Case{
            "empty_user",
            R"({"type":"click","impression_id":"i","user_id":"","item_id":"a","ts":1})",
            "'user_id': must not be empty"},
        Case{"long_id",
             R"({"type":"click","impression_id":"i","user_id":")" + kLongId +
                 R"(","item_id":"a","ts":1})",
             "longer than the limit of 128"},
        Case{
            "control_char",
            R"({"type":"click","impression_id":"i\n","user_id":"u","item_id":"a","ts":1})",
            "control characters"},
        Case{
            "negative_ts",
            R"({"type":"click","impression_id":"i","user_id":"u","item_id":"a","ts":-5})",
            "'ts'"},
        Case{
            "huge_ts",
            R"({"type":"click","impression_id":"i","user_id":"u","item_id":"a","ts":18446744073709551615})",
            "'ts'"},
        Case{
            "float_ts",
            R"({"type":"click","impression_id":"i","user_id":"u","item_id":"a","ts":1.5})",
            "'ts'"},
        Case{
            "bad_date",
            R"({"type":"click","impression_id":"i","user_id":"u","item_id":"a","ts":"2019-02-30T00:00:00Z"})",
            "day out of range"},
        Case{
            "no_zone",
            R"({"type":"click","impression_id":"i","user_id":"u","item_id":"a","ts":"2019-02-03T00:00:00"})",
            "zone"}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(ParseEvent, EnforcesMessageSizeAndListLimits) {
  EventLimits limits;
  limits.max_message_bytes = 64;
  auto r = ParseEvent(std::string(100, ' '), limits);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exceeds the limit of 64"),
            std::string::npos);

  limits = EventLimits{};
  limits.max_list_length = 2;
  r = ParseEvent(
      R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":["a","b","c"]})",
      limits);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'items': has 3 entries"),
            std::string::npos);
}

TEST(ParseEvent, SerializeRoundTrips) {
  ImpressionEvent imp{"imp-1",         "user-1", 1573568086123,
                      {"a", "b", "c"}, {"c"},    {"x", "x"}};
  auto r = ParseEvent(SerializeEvent(imp));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(std::get<ImpressionEvent>(*r), imp);

  ClickEvent click{"imp-1", "user-1", "b", 42};
  auto c = ParseEvent(SerializeEvent(click));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(std::get<ClickEvent>(*c), click);
}

TEST(Rfc3339, ParsesAndFormats) {
  EXPECT_EQ(*ParseRfc3339Ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339Ms("2019-11-12T14:14:46Z"), 1573568086000);
  EXPECT_EQ(*ParseRfc3339Ms("2019-11-12T15:14:46.25+01:00"), 1573568086250);
  EXPECT_EQ(*ParseRfc3339Ms("2020-02-29T00:00:00Z"), 1582934400000);
  EXPECT_EQ(FormatRfc3339Ms(1573568086250), "2019-11-12T14:14:46.250Z");
  EXPECT_FALSE(ParseRfc3339Ms("2019-11-12 14:14").ok());
}

}  // namespace
}  // namespace cfrec
