// Serving with stream features: /v1/recommendations and /v1/rank rank by the
// stream scorer the snapshot carries.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "cfrec/server/recommend.h"
#include "cfrec/server/testing/fake_snapshot.h"
#include "cfrec/stream/stream_model.h"

namespace cfrec::server {
namespace {

constexpr int64_t kMinute = 60 * 1000;

// Items 0..3 in a stream where item 2 is trending now, item 0 was the hit
// hours ago and item 3 is shown a lot and never clicked.
std::shared_ptr<const stream::StreamScorer> TrendingScorer() {
  stream::StreamModel m;
  int64_t t = 0;
  for (int i = 0; i < 400; ++i, t += kMinute / 2) {
    const std::vector<uint32_t> items = {0, 1, 2, 3};
    const uint16_t hit = i < 250 ? 0 : 2;
    const std::vector<uint16_t> clicked = {
        static_cast<uint16_t>(i % 5 == 0 ? 1 : hit)};
    m.OnImpression(1000 + i, t + (i < 250 ? 0 : 6 * 60 * kMinute), items,
                   clicked, {}, {});
  }
  return m.MakeScorer();
}

std::shared_ptr<testing::FakeSnapshot> Snapshot() {
  auto s = std::make_shared<testing::FakeSnapshot>(1, 2);
  for (int i = 0; i < 4; ++i) {
    s->AddItem("N" + std::to_string(i), {0.1f * i, 0.0f});
  }
  s->AddUser("known", {1.0f, 0.0f});
  s->set_candidates({0, 1, 2, 3});
  s->set_popular({0, 1, 2, 3});
  s->set_stream(TrendingScorer());
  return s;
}

TEST(StreamScoring, UnknownUsersGetTheStreamRankingNotAStaticList) {
  auto s = Snapshot();
  const Recommendation rec =
      Recommend(*s, "someone-new", 4, RecommendOptions{});
  EXPECT_FALSE(rec.popularity_fallback);
  EXPECT_TRUE(rec.no_user_term);
  ASSERT_EQ(rec.items.size(), 4u);
  EXPECT_EQ(rec.items.front().item, 2u);  // trending first
  EXPECT_EQ(rec.items.back().item, 3u);   // never clicked last
  EXPECT_TRUE(rec.items.front().score.has_value());
}

TEST(StreamScoring, KnownUsersSeeTrendingItemsBesideTheirOwnRetrieval) {
  auto s = Snapshot();
  s->set_clicked(0, {1});
  const Recommendation rec = Recommend(*s, "known", 3, RecommendOptions{});
  EXPECT_FALSE(rec.no_user_term);
  ASSERT_FALSE(rec.items.empty());
  EXPECT_EQ(rec.items.front().item, 2u);
  for (const ScoredItem& i : rec.items) EXPECT_NE(i.item, 1u);  // clicked
}

TEST(StreamScoring, RankScoresUnknownItemsWithThePriorNotAtTheEnd) {
  auto s = Snapshot();
  std::vector<std::string> ids;
  const std::vector<std::string> items = {"N3", "brand-new", "N2"};
  const Recommendation rec = RankItems(*s, "known", items, &ids);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], "N2");
  // A never-seen item is ranked by the learned prior: above the item that
  // was shown 400 times without a click.
  EXPECT_EQ(ids[1], "brand-new");
  EXPECT_FALSE(rec.items[1].known);
  EXPECT_TRUE(rec.items[1].score.has_value());
}

}  // namespace
}  // namespace cfrec::server
