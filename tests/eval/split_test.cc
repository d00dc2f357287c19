#include "cfrec/eval/split.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/synth.h"

namespace cfrec::eval {
namespace {

MindRow Row(std::string user, int64_t ts, std::vector<std::string> history,
            std::vector<std::pair<std::string, int>> shown) {
  static int next_id = 0;
  MindRow row;
  row.impression_id = std::to_string(++next_id);
  row.user_id = std::move(user);
  row.ts_ms = ts;
  row.history = std::move(history);
  for (auto& [item, label] : shown) {
    row.items.push_back(item);
    row.clicked.push_back(static_cast<uint8_t>(label));
  }
  return row;
}

uint32_t ItemIndex(const Dataset& d, const std::string& id) {
  auto it = std::find(d.item_ids().begin(), d.item_ids().end(), id);
  return static_cast<uint32_t>(it - d.item_ids().begin());
}

TEST(DatasetTest, DenseIdsTimeOrderAndHistories) {
  const std::vector<MindRow> rows = {
      Row("A", 2000, {"H1"}, {{"X", 1}, {"Y", 0}}),
      Row("B", 1000, {}, {{"Y", 1}, {"Y", 0}}),  // duplicate kept once
  };
  Result<Dataset> d = Dataset::FromRows(rows);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->num_users(), 2u);
  EXPECT_EQ(d->num_items(), 3u);
  ASSERT_EQ(d->impressions().size(), 2u);
  EXPECT_EQ(d->impressions()[0].ts_ms, 1000);  // sorted by time
  EXPECT_EQ(d->impressions()[0].items.size(), 1u);
  EXPECT_EQ(d->num_clicks(), 2u);
  const auto positives = d->PositivesByUser();
  const uint32_t a = 1;  // B was interned first (earlier timestamp)
  ASSERT_EQ(positives[a].size(), 2u);
  EXPECT_EQ(positives[a][0].ts_ms, kHistoryTimestamp);
  EXPECT_EQ(positives[a][0].item, ItemIndex(*d, "H1"));
}

TEST(LeaveOneOutTest, LastClickIsTestPreviousDistinctIsValidation) {
  const std::vector<MindRow> rows = {
      Row("A", 1000, {"H"}, {{"P", 1}, {"Q", 0}}),
      Row("A", 2000, {}, {{"Q", 1}, {"T", 0}}),
      Row("A", 3000, {}, {{"V", 1}, {"P", 0}}),
      Row("A", 4000, {}, {{"R", 0}, {"S", 0}}),
      Row("A", 5000, {}, {{"T", 1}, {"V", 1}}),
  };
  // The last row's clicks in list order are T then V, so the last click is
  // V (test) and the last click on another item is T (validation).
  Result<Dataset> d = Dataset::FromRows(rows);
  ASSERT_TRUE(d.ok());
  LeaveOneOutOptions options;
  options.num_negatives = 100;
  Result<LeaveOneOutSplit> s = SplitLeaveOneOut(*d, options);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->test.size(), 1u);
  EXPECT_EQ(s->test[0].item, ItemIndex(*d, "V"));
  EXPECT_EQ(s->validation[0].item, ItemIndex(*d, "T"));
  // Train: history H and the clicks on P and Q. V's earlier click (3000)
  // precedes the validation impression but V is the test item: removed.
  std::multiset<uint32_t> train_items;
  for (const Interaction& x : s->train.positives) train_items.insert(x.item);
  EXPECT_EQ(train_items,
            (std::multiset<uint32_t>{ItemIndex(*d, "H"), ItemIndex(*d, "P"),
                                     ItemIndex(*d, "Q")}));
  // Impressions before the one with the validation click (5000) are kept,
  // minus the held-out items: the 2000 list keeps Q, the 3000 list P.
  ASSERT_EQ(s->train.impressions.size(), 4u);
  for (const Impression& imp : s->train.impressions) {
    for (uint32_t item : imp.items) {
      EXPECT_NE(item, ItemIndex(*d, "V"));
      EXPECT_NE(item, ItemIndex(*d, "T"));
    }
  }
  // Negatives: items A never interacted with (R, S; also never clicked).
  std::set<uint32_t> negatives(s->test[0].negatives.begin(),
                               s->test[0].negatives.end());
  EXPECT_EQ(negatives,
            (std::set<uint32_t>{ItemIndex(*d, "R"), ItemIndex(*d, "S")}));
  EXPECT_EQ(NonInteracted(*s, d->num_items(), 0),
            (std::vector<uint32_t>{ItemIndex(*d, "R"), ItemIndex(*d, "S")}));
}

TEST(LeaveOneOutTest, UsersWithFewPositivesStayInTraining) {
  const std::vector<MindRow> rows = {
      Row("A", 1000, {}, {{"P", 1}, {"Q", 0}}),
      Row("A", 2000, {}, {{"Q", 1}, {"P", 0}}),
  };
  Result<Dataset> d = Dataset::FromRows(rows);
  ASSERT_TRUE(d.ok());
  Result<LeaveOneOutSplit> s = SplitLeaveOneOut(*d, {});
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->test.empty());
  EXPECT_EQ(s->train.positives.size(), 2u);
  EXPECT_EQ(s->train.impressions.size(), 2u);
}

class SyntheticSplitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SynthOptions o;
    o.num_users = 80;
    o.num_items = 150;
    o.lists_per_user = 10;
    o.response = ResponseModel::kNonlinear;
    o.seed = 11;
    Result<SynthData> synth = GenerateSynthetic(o);
    ASSERT_TRUE(synth.ok());
    Result<Dataset> d = Dataset::FromRows(synth->rows);
    ASSERT_TRUE(d.ok());
    data_ = std::move(d).value();
  }
  Dataset data_;
};

TEST_F(SyntheticSplitTest, NoHeldOutItemLeaksIntoTraining) {
  LeaveOneOutOptions options;
  options.seed = 5;
  Result<LeaveOneOutSplit> s = SplitLeaveOneOut(data_, options);
  ASSERT_TRUE(s.ok());
  ASSERT_GT(s->test.size(), 20u);
  std::set<std::pair<uint32_t, uint32_t>> held;
  for (const HeldOut& h : s->test) held.insert({h.user, h.item});
  for (const HeldOut& h : s->validation) held.insert({h.user, h.item});
  for (const Interaction& x : s->train.positives) {
    EXPECT_FALSE(held.contains({x.user, x.item}))
        << "user " << x.user << " item " << x.item;
  }
  for (const Impression& imp : s->train.impressions) {
    for (uint32_t item : imp.items) {
      EXPECT_FALSE(held.contains({imp.user, item}));
    }
  }
  for (size_t n = 0; n < s->test.size(); ++n) {
    const HeldOut& t = s->test[n];
    const HeldOut& v = s->validation[n];
    EXPECT_EQ(t.user, v.user);
    EXPECT_NE(t.item, v.item);
    const auto& seen = s->interacted[t.user];
    const size_t available = data_.num_items() - seen.size();
    EXPECT_EQ(t.negatives.size(), std::min<size_t>(100, available));
    std::set<uint32_t> distinct(t.negatives.begin(), t.negatives.end());
    EXPECT_EQ(distinct.size(), t.negatives.size());
    for (uint32_t neg : t.negatives) {
      EXPECT_LT(neg, data_.num_items());
      EXPECT_FALSE(std::binary_search(seen.begin(), seen.end(), neg));
    }
  }
}

TEST_F(SyntheticSplitTest, NegativesDependOnlyOnSeed) {
  LeaveOneOutOptions options;
  options.seed = 5;
  Result<LeaveOneOutSplit> a = SplitLeaveOneOut(data_, options);
  Result<LeaveOneOutSplit> b = SplitLeaveOneOut(data_, options);
  options.seed = 6;
  Result<LeaveOneOutSplit> c = SplitLeaveOneOut(data_, options);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->test[0].negatives, b->test[0].negatives);
  EXPECT_NE(a->test[0].negatives, c->test[0].negatives);
}

TEST_F(SyntheticSplitTest, TimeSplitKeepsTheFutureOut) {
  TimeSplitOptions options;
  Result<TimeSplit> s = SplitByTime(data_, options);
  ASSERT_TRUE(s.ok());
  EXPECT_LT(s->validation_start_ms, s->test_start_ms);
  for (const Impression& imp : s->train.impressions) {
    EXPECT_LT(imp.ts_ms, s->validation_start_ms);
  }
  for (const Interaction& x : s->train.positives) {
    EXPECT_LT(x.ts_ms, s->validation_start_ms);
  }
  for (const Impression& imp : s->validation) {
    EXPECT_GE(imp.ts_ms, s->validation_start_ms);
    EXPECT_LT(imp.ts_ms, s->test_start_ms);
  }
  for (const Impression& imp : s->test) EXPECT_GE(imp.ts_ms, s->test_start_ms);
  EXPECT_EQ(s->train.impressions.size() + s->validation.size() + s->test.size(),
            data_.impressions().size());
  EXPECT_NEAR(static_cast<double>(s->test.size()) / data_.impressions().size(),
              0.2, 0.01);
}

TEST_F(SyntheticSplitTest, PrequentialWindowsTileTheStream) {
  const std::vector<Window> windows = PrequentialWindows(data_, 7);
  ASSERT_EQ(windows.size(), 7u);
  size_t expected_begin = 0;
  for (const Window& w : windows) {
    EXPECT_EQ(w.begin, expected_begin);
    EXPECT_LT(w.begin, w.end);
    expected_begin = w.end;
  }
  EXPECT_EQ(expected_begin, data_.impressions().size());
  std::vector<uint8_t> seen;
  size_t clicks = 0;
  for (const Window& w : windows) {
    clicks += WindowData(data_, w, &seen).positives.size();
  }
  EXPECT_EQ(clicks, data_.num_clicks());  // synthetic logs have no history
}

TEST(PrequentialWindowsTest, EqualTimestampsNeverStraddle) {
  std::vector<MindRow> rows;
  for (int i = 0; i < 10; ++i) {
    rows.push_back(Row("A", i < 6 ? 1000 : 2000, {}, {{"X", 1}}));
  }
  Result<Dataset> d = Dataset::FromRows(rows);
  ASSERT_TRUE(d.ok());
  const std::vector<Window> windows = PrequentialWindows(*d, 4);
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_EQ(windows[0].end, 6u);
}

TEST(ColdnessTest, BucketsOfCprTable4) {
  EXPECT_EQ(ColdnessOf(0), Coldness::kLow);
  EXPECT_EQ(ColdnessOf(4), Coldness::kLow);
  EXPECT_EQ(ColdnessOf(5), Coldness::kMiddle);
  EXPECT_EQ(ColdnessOf(15), Coldness::kMiddle);
  EXPECT_EQ(ColdnessOf(16), Coldness::kHigh);
  TrainData t;
  t.num_items = 3;
  t.positives = {{0, 1, 0}, {1, 1, 0}, {0, 2, 0}};
  EXPECT_EQ(ItemInteractionCounts(t), (std::vector<uint32_t>{0, 2, 1}));
}

}  // namespace
}  // namespace cfrec::eval
