// Serving with stream features: /v1/recommendations and /v1/rank rank by the
// stream scorer the snapshot carries.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
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

// A user who keeps being shown an item and never clicks it sees it sink in
// /v1/rank, below the same item for a user who was never shown it.
// Items 0..3; the snapshot's user "known" (stream user 0) was shown item 1
// three times and never clicked it, "other" was shown nothing; the model
// learned that being shown an item often without a click lowers it.
std::shared_ptr<testing::FakeSnapshot> ExposedSnapshot() {
  stream::StreamModel m;
  std::mt19937 rng(17);
  int64_t t = 0;
  // Users 1000.. are shown 4 of items 0..19 at a time; an item is clicked
  // often the first time a user sees it and rarely after that.
  std::vector<std::vector<int>> seen(60, std::vector<int>(20, 0));
  for (int i = 0; i < 4000; ++i, t += kMinute / 4) {
    const uint32_t u = static_cast<uint32_t>(rng() % 60);
    std::vector<uint32_t> items;
    while (items.size() < 4) {
      const uint32_t item = static_cast<uint32_t>(rng() % 20);
      if (std::find(items.begin(), items.end(), item) == items.end()) {
        items.push_back(item);
      }
    }
    std::vector<uint16_t> clicked;
    for (uint16_t k = 0; k < 4; ++k) {
      const uint32_t odds = seen[u][items[k]] == 0 ? 3 : 40;  // 1 in odds
      if (rng() % odds == 0) clicked.push_back(k);
      ++seen[u][items[k]];
    }
    m.OnImpression(1000 + u, t, items, clicked, {}, {});
  }
  // User index 0 of the snapshot ("known") is stream user 0: shown item 1
  // three times, never clicked.
  const std::vector<uint32_t> just_one = {1};
  for (int i = 0; i < 3; ++i) {
    m.OnImpression(0, t + i * kMinute, just_one, {}, {}, {});
  }
  auto s = std::make_shared<testing::FakeSnapshot>(1, 2);
  for (int i = 0; i < 4; ++i) {
    s->AddItem("N" + std::to_string(i), {0.0f, 0.0f});
  }
  s->AddUser("known", {0.0f, 0.0f});
  s->AddUser("other", {0.0f, 0.0f});
  s->set_candidates({0, 1, 2, 3});
  s->set_popular({0, 1, 2, 3});
  s->set_stream(m.MakeScorer());
  return s;
}

TEST(StreamScoring, RankSinksAnItemTheUserKeptPassingOver) {
  const auto s = ExposedSnapshot();
  ASSERT_LT(s->stream()->weights()[stream::kShown3], 0.0f);
  std::vector<std::string> ids;
  const std::vector<std::string> items = {"N1"};
  const Recommendation known = RankItems(*s, "known", items, &ids);
  const Recommendation other = RankItems(*s, "other", items, &ids);
  ASSERT_TRUE(known.items[0].score.has_value());
  ASSERT_TRUE(other.items[0].score.has_value());
  EXPECT_LT(*known.items[0].score, *other.items[0].score);
}

// Recommend scores each candidate with the user's exposure counts as the
// scorer's own lookup gives them (RankItems uses StreamScorer::Pair).
TEST(StreamScoring, RecommendScoresWithTheUsersExposureAsRankDoes) {
  const auto s = ExposedSnapshot();
  const std::vector<std::string> all = {"N0", "N1", "N2", "N3"};
  for (const std::string user : {"known", "other"}) {
    std::vector<std::string> ids;
    const Recommendation rank = RankItems(*s, user, all, &ids);
    const Recommendation rec = Recommend(*s, user, 4, {});
    ASSERT_EQ(rec.items.size(), 4u) << user;
    for (const ScoredItem& r : rec.items) {
      const auto it =
          std::find(ids.begin(), ids.end(), "N" + std::to_string(r.item));
      ASSERT_NE(it, ids.end());
      EXPECT_EQ(r.score, rank.items[it - ids.begin()].score)
          << user << " item " << r.item;
    }
  }
  // The exposure changes item 1's score for "known" only.
  std::vector<std::string> ids;
  const std::vector<std::string> one = {"N1"};
  EXPECT_NE(*RankItems(*s, "known", one, &ids).items[0].score,
            *RankItems(*s, "other", one, &ids).items[0].score);
}

}  // namespace
}  // namespace cfrec::server
