#include "cfrec/schemas/event.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

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

namespace cfrec {
namespace {

// ParseEvent reads the common layout in one pass and hands everything else
// to the general parser; both must agree on every input. Documents built
// from random pieces (some valid, most broken in one place) pin that down.
std::string RandomId(std::mt19937_64& rng) {
  static constexpr std::string_view kPieces[] = {
      "N1", "a",  "u-7", "x\\\"y", "\\u00e9", "\xc3\xa9", "\x7f",
      "",   "\t", "\\n", "b",      "N2",      "long",     "id"};
  std::string id;
  const int n = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < n; ++i) id += kPieces[rng() % std::size(kPieces)];
  return id;
}

std::string RandomDocument(std::mt19937_64& rng) {
  static constexpr std::string_view kTs[] = {"1573568086000",
                                             "0",
                                             "-1",
                                             "1.5",
                                             "01",
                                             "1e3",
                                             "\"2019-11-12T14:14:46Z\"",
                                             "\"2019-02-30T00:00:00Z\"",
                                             "null",
                                             "99999999999999999999"};
  const bool impression = rng() % 4 != 0;
  std::vector<std::pair<std::string, std::string>> fields;
  fields.emplace_back(
      "type", rng() % 20 == 0 ? "\"view\""
                              : (impression ? "\"impression\"" : "\"click\""));
  fields.emplace_back("impression_id", "\"" + RandomId(rng) + "\"");
  fields.emplace_back("user_id",
                      rng() % 30 == 0 ? "5" : "\"" + RandomId(rng) + "\"");
  fields.emplace_back("ts", std::string(kTs[rng() % std::size(kTs)]));
  const auto list = [&](int max) {
    std::string out = "[";
    const int n = static_cast<int>(rng() % (max + 1));
    for (int i = 0; i < n; ++i) {
      if (i > 0) out += rng() % 2 ? "," : " , ";
      out += rng() % 40 == 0 ? "7" : "\"" + RandomId(rng) + "\"";
    }
    return out + "]";
  };
  if (impression) {
    fields.emplace_back("items", list(6));
    if (rng() % 2) fields.emplace_back("clicks", list(2));
    if (rng() % 2) fields.emplace_back("history", list(4));
  } else {
    fields.emplace_back("item_id", "\"" + RandomId(rng) + "\"");
  }
  if (rng() % 15 == 0) fields.emplace_back("extra", "1");
  if (rng() % 15 == 0) fields.push_back(fields[rng() % fields.size()]);
  if (rng() % 10 == 0) fields.erase(fields.begin() + rng() % fields.size());
  std::shuffle(fields.begin(), fields.end(), rng);
  std::string doc = rng() % 10 == 0 ? " {\n" : "{";
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) doc += rng() % 8 == 0 ? " ,\r\n" : ",";
    doc += "\"" + fields[i].first + "\":" + fields[i].second;
  }
  doc += "}";
  if (rng() % 25 == 0) doc += " x";
  if (rng() % 25 == 0) doc.resize(rng() % doc.size());
  return doc;
}

TEST(ParseEvent, FastPathAgreesWithTheGeneralParser) {
  std::mt19937_64 rng(20261123);
  EventLimits limits;
  limits.max_id_bytes = 8;
  limits.max_list_length = 5;
  limits.max_history_length = 3;
  int accepted = 0;
  EventView view;
  for (int i = 0; i < 20000; ++i) {
    const std::string doc = RandomDocument(rng);
    auto fast = ParseEvent(doc, limits);
    auto general = internal::ParseEventGeneral(doc, limits);
    ASSERT_EQ(fast.ok(), general.ok()) << doc;
    Status via_view = ParseEventView(doc, limits, &view);
    ASSERT_EQ(via_view.ok(), general.ok()) << doc;
    if (general.ok()) {
      ++accepted;
      EXPECT_EQ(*fast, *general) << doc;
      EXPECT_EQ(ToEvent(view), *general) << doc;
    } else {
      EXPECT_EQ(fast.status().message(), general.status().message()) << doc;
      EXPECT_EQ(via_view.message(), general.status().message()) << doc;
    }
  }
  // The corpus must exercise both outcomes.
  EXPECT_GT(accepted, 200);
  EXPECT_LT(accepted, 19000);
}

// Long lists exercise the fast path's duplicate check (a hash table, with
// probing once ids collide) where the random corpus above keeps lists short.
TEST(ParseEvent, FastPathFindsDuplicatesInLongLists) {
  std::mt19937_64 rng(11);
  EventView view;
  for (int round = 0; round < 200; ++round) {
    const int n = 1 + static_cast<int>(rng() % 300);
    std::vector<std::string> items;
    for (int i = 0; i < n; ++i) items.push_back("N" + std::to_string(i * 7));
    std::shuffle(items.begin(), items.end(), rng);
    std::vector<std::string> clicks;
    const int mode = static_cast<int>(rng() % 3);
    if (mode == 1 && n > 1) items[rng() % n] = items[rng() % n];  // maybe dup
    clicks.push_back(items[rng() % n]);
    if (mode == 2) clicks.push_back("N" + std::to_string(7 * n + 1));
    std::string doc =
        R"({"type":"impression","impression_id":"i","user_id":"u","ts":1,"items":[)";
    for (int i = 0; i < n; ++i) doc += (i ? ",\"" : "\"") + items[i] + "\"";
    doc += "],\"clicks\":[";
    for (size_t i = 0; i < clicks.size(); ++i)
      doc += (i ? ",\"" : "\"") + clicks[i] + "\"";
    doc += "]}";
    const std::set<std::string> distinct(items.begin(), items.end());
    const bool expect_ok = distinct.size() == items.size() && mode != 2;
    auto general = internal::ParseEventGeneral(doc, EventLimits{});
    ASSERT_EQ(general.ok(), expect_ok) << doc;
    Status fast = ParseEventView(doc, EventLimits{}, &view);
    ASSERT_EQ(fast.ok(), expect_ok) << doc;
    if (!expect_ok) {
      EXPECT_EQ(fast.message(), general.status().message());
    } else {
      EXPECT_EQ(ToEvent(view), *general);
    }
  }
}

TEST(SerializeEvent, WritesWhatTheDomSerializerWrites) {
  std::mt19937_64 rng(7);
  const auto id = [&] {
    static constexpr std::string_view kPieces[] = {"N1",
                                                   "\"",
                                                   "\\",
                                                   "\b",
                                                   "\f",
                                                   "\n",
                                                   "\r",
                                                   "\t",
                                                   std::string_view("\0", 1),
                                                   "\x1f",
                                                   "\x7f",
                                                   "\xc3\xa9",
                                                   "\xe7\x94\xa8",
                                                   "\xf0\x9f\x98\x80",
                                                   "/",
                                                   "x"};
    std::string out;
    for (int i = 0, n = 1 + static_cast<int>(rng() % 4); i < n; ++i) {
      out += kPieces[rng() % std::size(kPieces)];
    }
    return out;
  };
  for (int i = 0; i < 2000; ++i) {
    Event event;
    if (rng() % 2) {
      ImpressionEvent e;
      e.impression_id = id();
      e.user_id = id();
      e.ts_ms = static_cast<int64_t>(rng() % 2000000000000);
      for (int k = 0, n = static_cast<int>(rng() % 4); k < n; ++k)
        e.items.push_back(id());
      if (rng() % 2 && !e.items.empty()) e.clicks.push_back(e.items[0]);
      for (int k = 0, n = static_cast<int>(rng() % 3); k < n; ++k)
        e.history.push_back(id());
      event = e;
    } else {
      event = ClickEvent{id(), id(), id(), static_cast<int64_t>(rng() % 1000)};
    }
    ASSERT_EQ(SerializeEvent(event), internal::SerializeEventDom(event));
  }
}

}  // namespace
}  // namespace cfrec
