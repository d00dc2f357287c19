#include "cfrec/server/query.h"

#include <gtest/gtest.h>

namespace cfrec::server {
namespace {

TEST(ParseTarget, SplitsAndDecodes) {
  const auto t = ParseTarget("/v1/x?a=1&b=c%20d+e&&empty=");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->path, "/v1/x");
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(t->params,
            (std::vector<P>{{"a", "1"}, {"b", "c d e"}, {"empty", ""}}));
  EXPECT_FALSE(ParseTarget("").ok());
  EXPECT_FALSE(ParseTarget("v1").ok());
  EXPECT_FALSE(ParseTarget("/x?a").ok());
  EXPECT_FALSE(ParseTarget("/x?a=%G0").ok());
  EXPECT_FALSE(ParseTarget("/x?a=%").ok());
  EXPECT_TRUE(ParseTarget("/x?").ok());
}

TEST(ParseUint, StrictDecimalInRange) {
  EXPECT_EQ(*ParseUint("10", 1, 100, "n"), 10u);
  EXPECT_EQ(*ParseUint("007", 1, 100, "n"), 7u);
  for (const char* bad :
       {"", "0", "101", "-1", "+1", " 1", "1 ", "1.0", "1e2", "0x1",
        "18446744073709551616", "99999999999999999999999"}) {
    const auto r = ParseUint(bad, 1, 100, "n");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_TRUE(r.status().IsInvalidArgument());
    }
  }
  EXPECT_EQ(*ParseUint("18446744073709551615", 0, UINT64_MAX, "n"), UINT64_MAX);
}

TEST(Utf8, AcceptsWellFormedOnly) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80"));
  EXPECT_TRUE(IsValidUtf8(std::string_view("a\0b", 3)));
  for (const char* bad :
       {"\xff", "\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
        "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\x80"}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
  }
}

TEST(JsonDepth, IgnoresBracketsInStrings) {
  EXPECT_TRUE(JsonDepthWithin(R"({"a":[1,{"b":2}]})", 3));
  EXPECT_FALSE(JsonDepthWithin(R"({"a":[1,{"b":2}]})", 2));
  EXPECT_TRUE(JsonDepthWithin(R"({"a":"[[[[[\"[["})", 1));
  EXPECT_FALSE(JsonDepthWithin(std::string(1000, '['), 999));
}

TEST(MediaType, StripsParametersAndCase) {
  EXPECT_EQ(MediaType("Application/JSON; charset=utf-8"), "application/json");
  EXPECT_EQ(MediaType("  application/json  "), "application/json");
  EXPECT_EQ(MediaType(""), "");
}

}  // namespace
}  // namespace cfrec::server
