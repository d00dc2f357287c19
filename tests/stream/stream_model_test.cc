#include "cfrec/stream/stream_model.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "cfrec/stream/feature_model.h"
#include "cfrec/stream/features.h"
#include "cfrec/stream/item_counters.h"

namespace cfrec::stream {
namespace {

constexpr int64_t kMinute = 60 * 1000;
constexpr int64_t kHour = 60 * kMinute;

TEST(ItemCounters, DecayHalvesAtEachHalfLife) {
  ItemCounters c(0);
  c.AddShown(7, 0);
  c.AddClick(7, 0);
  const ItemCounts later = c.Find(7)->At(2 * kHour);
  EXPECT_NEAR(later.shows[1], 0.5, 1e-5);  // 2 h half-life
  EXPECT_NEAR(later.clicks[2], std::exp2(-2.0 / 6), 1e-5);
  EXPECT_EQ(later.total_clicks, 1);
  EXPECT_EQ(later.first_shown_ms, 0);
}

TEST(Features, EveryFeatureHasAName) {
  for (int f = 0; f < kNumFeatures; ++f) {
    EXPECT_NE(FeatureName(f), "?") << f;
    EXPECT_FALSE(FeatureName(f).empty()) << f;
  }
  EXPECT_EQ(FeatureName(kRanker), "ranker");
  EXPECT_EQ(FeatureName(kUserClicked), "user_clicked");
  EXPECT_EQ(FeatureName(kAgeBin0), "age_lt_1h");
}

TEST(Features, BinsAreOneHot) {
  ItemCounters c(0);
  for (int i = 0; i < 5; ++i) c.AddShown(1, 0);
  c.AddClick(1, 0);
  FeatureRow row{};
  ItemFeatures(
      c.Find(1), c.global(), 2 * kHour,
      std::span<float, kNumItemFeatures>(row.data(), kNumItemFeatures));
  float age = 0, shows = 0, clicks = 0;
  for (int b = 0; b < 7; ++b) age += row[kAgeBin0 + b];
  for (int b = 0; b < 6; ++b) shows += row[kShowsBin0 + b];
  for (int b = 0; b < 4; ++b) clicks += row[kClicksBin0 + b];
  EXPECT_EQ(age, 1);
  EXPECT_EQ(row[kAgeBin0 + 1], 1);  // 1-3 h
  EXPECT_EQ(shows, 1);
  EXPECT_EQ(row[kShowsBin0 + 3], 1);  // 5 * 2^(-1/3) = 3.97 in [3.5, 7.5)
  EXPECT_EQ(clicks, 1);
  EXPECT_EQ(row[kClicksBin0 + 1], 1);  // 0.79 in [0.5, 1.5)
  // A never-shown item has no age bin.
  ItemFeatures(
      nullptr, c.global(), 2 * kHour,
      std::span<float, kNumItemFeatures>(row.data(), kNumItemFeatures));
  age = 0;
  for (int b = 0; b < 7; ++b) age += row[kAgeBin0 + b];
  EXPECT_EQ(age, 0);
  EXPECT_EQ(row[kNeverShown], 1);
}

TEST(ItemCounters, EvictsItemsUntouchedForTheWindow) {
  ItemCounters c(10 * kHour);
  c.AddShown(1, 0);
  c.AddShown(2, 9 * kHour);
  c.AddShown(3, 11 * kHour);
  EXPECT_EQ(c.Evict(), 1u);
  EXPECT_EQ(c.Find(1), nullptr);
  EXPECT_NE(c.Find(2), nullptr);
}

// A stream where item 1 was clicked a lot an hour ago, item 2 is clicked
// now: after training on such lists the model ranks the trending item
// above the stale one, and both above an item shown often and never
// clicked.
TEST(StreamModel, RanksATrendingItemAboveAStaleOne) {
  StreamModel m;
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  // Hour 0: item 1 is the hit. Hour 6: item 2 is; item 1 faded.
  int64_t t = 0;
  auto run = [&](uint32_t hit, int n) {
    for (int i = 0; i < n; ++i, t += 20 * 1000) {
      const std::vector<uint32_t> items = {1, 2, 3, 4};
      std::vector<uint16_t> clicked;
      for (uint16_t k = 0; k < items.size(); ++k) {
        const double p = items[k] == hit ? 0.5 : items[k] == 3 ? 0.0 : 0.05;
        if (u(rng) < p) clicked.push_back(k);
      }
      m.OnImpression(100 + i % 50, t, items, clicked, {}, {});
    }
  };
  run(1, 300);
  t += 5 * kHour;
  run(2, 150);
  const auto scorer = m.MakeScorer();
  EXPECT_GT(scorer->ItemScore(2), scorer->ItemScore(1));
  EXPECT_GT(scorer->ItemScore(1), scorer->ItemScore(3));
  EXPECT_GT(m.Stats().lists_trained, 100u);
}

TEST(StreamModel, DelayedClicksTrainOnTheRowsOfTheirList) {
  StreamModel m;
  const std::vector<uint32_t> items = {5, 6, 7};
  for (int i = 0; i < 200; ++i) {
    const int64_t t = i * kMinute;
    m.OnImpression(1, t, items, {}, {}, {});
    m.OnClick(1, t + 5000, items, 1);
  }
  // A list trains once its label window (10 min) has passed, or when the
  // same user is shown the same list again: all but the last are done.
  EXPECT_EQ(m.Stats().lists_trained, 199u);
  m.OnImpression(9, 300 * kMinute, std::vector<uint32_t>{99}, {}, {}, {});
  EXPECT_EQ(m.Stats().lists_trained, 200u);
  EXPECT_EQ(m.Stats().clicks_unmatched, 0u);
  const auto scorer = m.MakeScorer();
  EXPECT_GT(scorer->ItemScore(6), scorer->ItemScore(5));
  // A click on a list never seen counts but trains nothing.
  m.OnClick(2, 301 * kMinute, std::vector<uint32_t>{8, 9}, 0);
  EXPECT_EQ(m.Stats().clicks_unmatched, 1u);
}

TEST(StreamModel, ALateListTrainsOnceWithAllItsClicks) {
  StreamModel m;
  const std::vector<uint32_t> items = {1, 2, 3};
  m.OnImpression(1, 0, items, {}, {}, {});
  m.OnClick(1, 1000, items, 0);
  m.OnClick(1, 2000, items, 2);
  EXPECT_EQ(m.Stats().lists_trained, 0u);  // still in its label window
  m.OnImpression(2, 11 * kMinute, std::vector<uint32_t>{4}, {}, {}, {});
  EXPECT_EQ(m.Stats().lists_trained, 1u);  // one step, both clicks
  EXPECT_GT(m.Stats().loss, 0.0);
  // Trained and forgotten: a click after the window trains nothing.
  m.OnClick(1, 12 * kMinute, items, 1);
  EXPECT_EQ(m.Stats().lists_trained, 1u);
  EXPECT_EQ(m.Stats().clicks_unmatched, 1u);
}

TEST(StreamModel, UnseenItemsGetTheLearnedPriorNotTheBottom) {
  // Fresh items (first shown in their list) get the clicks here: the model
  // learns that never-shown is good, and an unseen item outranks an old,
  // rarely clicked one.
  StreamModel m;
  std::mt19937 rng(5);
  uint32_t next_item = 1000;
  for (int i = 0; i < 400; ++i) {
    const int64_t t = i * kMinute;
    const uint32_t fresh = next_item++;
    const std::vector<uint32_t> items = {1, 2, fresh};
    std::vector<uint16_t> clicked = {2};
    if (rng() % 10 == 0) clicked = {0};
    m.OnImpression(7, t, items, clicked, {}, {});
  }
  const auto scorer = m.MakeScorer();
  EXPECT_GT(scorer->unseen_score(), scorer->ItemScore(2));
  EXPECT_EQ(scorer->ItemScore(123456), scorer->unseen_score());
}

TEST(StreamModel, UserTermsComeFromTheRankerAndTheUsersClicks) {
  StreamModel m;
  // The ranker's score is the only signal: the item it scores higher is
  // clicked.
  const std::vector<uint32_t> items = {1, 2};
  for (int i = 0; i < 300; ++i) {
    const bool first = i % 2 == 0;
    const std::vector<float> ranker = {first ? 1.0f : -1.0f,
                                       first ? -1.0f : 1.0f};
    const std::vector<uint16_t> clicked = {
        static_cast<uint16_t>(first ? 0 : 1)};
    m.OnImpression(3, i * kMinute, items, clicked, {}, ranker);
  }
  const auto scorer = m.MakeScorer();
  EXPECT_GT(scorer->weights()[kRanker], 0.1f);
  std::vector<float> out(2);
  const std::vector<float> ranker = {2.0f, -2.0f};
  scorer->ScoreItems(items, {}, ranker, out);
  EXPECT_GT(out[0], out[1]);
  // Without a user term the two differ only by their item part.
  scorer->ScoreItems(items, {}, {}, out);
  EXPECT_FLOAT_EQ(out[0] - out[1], scorer->ItemScore(1) - scorer->ItemScore(2));
}

TEST(StreamModel, CheckpointRoundTripGivesTheSameScores) {
  StreamModel a;
  std::mt19937 rng(9);
  for (int i = 0; i < 500; ++i) {
    auto pick = [&](uint32_t base, uint32_t n) {
      return base + static_cast<uint32_t>(rng() % n);
    };
    std::vector<uint32_t> items = {pick(0, 20), pick(20, 20), pick(40, 20)};
    std::vector<uint16_t> clicked = {static_cast<uint16_t>(rng() % 3)};
    std::vector<uint32_t> history = {pick(60, 5)};
    a.OnImpression(pick(0, 30), i * kMinute, items, clicked, history, {});
  }
  const std::string blob = a.Serialize();
  StreamModel b;
  ASSERT_TRUE(b.Deserialize(blob).ok());
  EXPECT_EQ(b.Serialize(), blob);
  const auto sa = a.MakeScorer();
  const auto sb = b.MakeScorer();
  for (uint32_t item = 0; item < 70; ++item) {
    EXPECT_FLOAT_EQ(sa->ItemScore(item), sb->ItemScore(item)) << item;
  }
  // A truncated blob is an error, never a crash.
  for (size_t cut : {size_t{0}, size_t{3}, blob.size() / 2, blob.size() - 1}) {
    StreamModel c;
    EXPECT_FALSE(c.Deserialize(std::string_view(blob).substr(0, cut)).ok())
        << cut;
  }
}

TEST(StreamModel, ForgetsItemsAndUsersAfterTheWindow) {
  StreamOptions o;
  o.evict_after_ms = kHour;
  StreamModel m(o);
  const std::vector<uint32_t> old_items = {1, 2};
  m.OnImpression(1, 0, old_items, {}, {}, {});
  for (int i = 0; i < 5000; ++i) {
    const std::vector<uint32_t> items = {3, 4};
    m.OnImpression(2, 2 * kHour + i, items, {}, {}, {});
  }
  EXPECT_EQ(m.counters().Find(1), nullptr);
  EXPECT_NE(m.counters().Find(3), nullptr);
  EXPECT_TRUE(m.UserClicked(1).empty());
  EXPECT_EQ(m.Stats().users, 1u);
}

}  // namespace
}  // namespace cfrec::stream
