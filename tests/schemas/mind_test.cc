#include "cfrec/schemas/mind.h"

#include <gtest/gtest.h>

namespace cfrec {
namespace {

TEST(MindRow, ParsesAllColumns) {
  auto r = ParseMindRow(
      "17\tU42\t11/12/2019 2:14:46 PM\tN1 N2 N1\tN5-0 N6-1 N7-0\r");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->impression_id, "17");
  EXPECT_EQ(r->user_id, "U42");
  EXPECT_EQ(r->ts_ms, 1573568086000);
  EXPECT_EQ(r->history, (std::vector<std::string>{"N1", "N2", "N1"}));
  EXPECT_EQ(r->items, (std::vector<std::string>{"N5", "N6", "N7"}));
  EXPECT_EQ(r->clicked, (std::vector<uint8_t>{0, 1, 0}));
}

TEST(MindRow, EmptyHistoryAndRoundTrip) {
  auto r = ParseMindRow("1\tU1\t1/1/2020 12:00:00 AM\t\tN1-1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->history.empty());
  EXPECT_EQ(r->ts_ms, 1577836800000);
  EXPECT_EQ(FormatMindRow(*r), "1\tU1\t1/1/2020 12:00:00 AM\t\tN1-1");
  auto again = ParseMindRow(FormatMindRow(*r));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *r);
}

TEST(MindRow, NoonAndMidnight) {
  EXPECT_EQ(*ParseMindTime("1/1/2020 12:00:01 PM"), 1577880001000);
  EXPECT_EQ(*ParseMindTime("1/1/2020 12:00:01 AM"), 1577836801000);
  EXPECT_EQ(FormatMindTime(1577880001000), "1/1/2020 12:00:01 PM");
}

TEST(MindRow, RejectsWithColumnName) {
  struct Bad {
    const char* line;
    const char* error;
  } cases[] = {
      {"1\tU1\t1/1/2020 12:00:00 AM\t", "5 tab-separated columns"},
      {"1\tU1\tyesterday\t\tN1-1", "column 'time'"},
      {"1\tU1\t13/1/2020 1:00:00 AM\t\tN1-1", "column 'time'"},
      {"1\tU1\t1/1/2020 1:00:00 AM\t\tN1-2", "column 'impressions'"},
      {"1\tU1\t1/1/2020 1:00:00 AM\t\tN1", "column 'impressions'"},
      {"1\tU1\t1/1/2020 1:00:00 AM\t\t", "column 'impressions': is empty"},
      {"\tU1\t1/1/2020 1:00:00 AM\t\tN1-0", "column 'impression_id'"},
      {"1\tU1\t1/1/2020 1:00:00 AM\t\tN1-0\textra", "more than 5"},
  };
  for (const auto& c : cases) {
    auto r = ParseMindRow(c.line);
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_NE(r.status().message().find(c.error), std::string::npos)
        << r.status().message();
  }
}

TEST(MindRow, ToImpressionSplitsClicks) {
  MindRow row{"7", "U1", 5, {"H"}, {"A", "B", "C"}, {1, 0, 1}};
  auto with = MindRowToImpression(row, true);
  EXPECT_EQ(with.clicks, (std::vector<std::string>{"A", "C"}));
  EXPECT_TRUE(MindRowToImpression(row, false).clicks.empty());
  EXPECT_TRUE(ValidateEvent(with).ok());
}

}  // namespace
}  // namespace cfrec
