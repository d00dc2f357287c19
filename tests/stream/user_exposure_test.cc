#include "cfrec/stream/user_exposure.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cfrec/stream/features.h"
#include "cfrec/stream/stream_model.h"

namespace cfrec::stream {
namespace {

constexpr int64_t kMinute = 60 * 1000;

TEST(UserExposure, CountsListsNotRepeatsWithinAList) {
  UserExposure e;
  const std::vector<uint32_t> a = {5, 7, 5};
  e.AddList(1, a);
  const std::vector<uint32_t> b = {7};
  e.AddList(1, b);
  EXPECT_EQ(e.Find(1, 5).count, 1u);
  EXPECT_EQ(e.Find(1, 7).count, 2u);
  EXPECT_EQ(e.Find(1, 9).count, 0u);
  EXPECT_EQ(e.Find(2, 7).count, 0u);    // another user
  EXPECT_EQ(e.Find(999, 7).count, 0u);  // a user never named
}

TEST(UserExposure, SnapshotsDoNotSeeLaterLists) {
  UserExposure e;
  const std::vector<uint32_t> items = {3};
  e.AddList(4, items);
  const auto before = e.MakeSnapshot();
  e.AddList(4, items);
  e.AddList(6, items);
  EXPECT_EQ(before->Find(4, 3).count, 1u);
  EXPECT_EQ(before->Find(6, 3).count, 0u);
  EXPECT_EQ(e.MakeSnapshot()->Find(4, 3).count, 2u);
}

TEST(UserExposure, KeepsTheMostRecentlyShownItemsPerUser) {
  UserExposure e(/*max_items_per_user=*/3);
  for (uint32_t item = 10; item < 16; ++item) {
    const std::vector<uint32_t> list = {item};
    e.AddList(0, list);
  }
  EXPECT_EQ(e.Find(0, 10).count, 0u);  // shown first: forgotten
  EXPECT_EQ(e.Find(0, 12).count, 0u);
  EXPECT_EQ(e.Find(0, 13).count, 1u);
  EXPECT_EQ(e.Find(0, 15).count, 1u);
  e.Erase(0);
  EXPECT_EQ(e.Find(0, 15).count, 0u);
  EXPECT_EQ(e.num_users(), 0u);
}

// Memory follows the ids in use: any 32-bit id works, and a snapshot keeps
// what it saw when the page it shares is changed or emptied later.
TEST(UserExposure, AnyIdAndSnapshotsKeepTheirPages) {
  UserExposure e;
  const std::vector<uint32_t> items = {9};
  e.AddList(4000000000u, items);
  e.AddList(7, items);
  const auto before = e.MakeSnapshot();
  e.Erase(4000000000u);
  e.AddList(7, items);
  EXPECT_EQ(before->Find(4000000000u, 9).count, 1u);
  EXPECT_EQ(before->Find(7, 9).count, 1u);
  EXPECT_EQ(e.Find(4000000000u, 9).count, 0u);
  EXPECT_EQ(e.Find(7, 9).count, 2u);
  EXPECT_EQ(e.num_users(), 1u);
  std::string blob;
  e.AppendTo(&blob);
  EXPECT_LT(blob.size(), 100u);
}

TEST(UserExposure, CheckpointRoundTripAndTruncation) {
  UserExposure e;
  std::mt19937 rng(5);
  for (int i = 0; i < 200; ++i) {
    const std::vector<uint32_t> list = {static_cast<uint32_t>(rng() % 40),
                                        static_cast<uint32_t>(rng() % 40)};
    e.AddList(static_cast<uint32_t>(rng() % 7), list);
  }
  std::string blob;
  e.AppendTo(&blob);
  UserExposure f;
  std::string_view in = blob;
  ASSERT_TRUE(f.ReadFrom(&in).ok());
  EXPECT_TRUE(in.empty());
  for (uint32_t u = 0; u < 7; ++u) {
    for (uint32_t i = 0; i < 40; ++i) {
      EXPECT_EQ(f.Find(u, i).count, e.Find(u, i).count) << u << " " << i;
    }
  }
  for (size_t cut : {size_t{0}, size_t{5}, blob.size() / 2, blob.size() - 1}) {
    UserExposure g;
    std::string_view part = std::string_view(blob).substr(0, cut);
    EXPECT_FALSE(g.ReadFrom(&part).ok()) << cut;
  }
}

// In a feed an item the user passed over is clicked less the next time it
// is shown: the model learns it and ranks the same item, with the same item
// features, lower for the user who passed over it than for one who did not.
TEST(StreamModel, RanksAnItemPassedOverBelowTheSameItemFresh) {
  StreamModel m;
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(0, 1);
  UserExposure seen;  // what the generator knows, to set click odds
  int64_t t = 0;
  for (int i = 0; i < 4000; ++i, t += 10 * 1000) {
    const uint32_t user = static_cast<uint32_t>(rng() % 60);
    std::vector<uint32_t> items;
    for (int k = 0; k < 6; ++k)
      items.push_back(static_cast<uint32_t>(rng() % 30));
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    std::vector<uint16_t> clicked;
    for (uint16_t k = 0; k < items.size(); ++k) {
      const double p = seen.Find(user, items[k]).count == 0 ? 0.25 : 0.03;
      if (u(rng) < p) clicked.push_back(k);
    }
    seen.AddList(user, items);
    m.OnImpression(user, t, items, clicked, {}, {});
  }
  const auto scorer = m.MakeScorer();
  EXPECT_LT(scorer->weights()[kShown1], -0.3f);
  EXPECT_LT(scorer->weights()[kShown3], -0.3f);
  // User 1000 was never shown anything; user 7 was shown item 0 (say).
  const std::vector<uint32_t> one = {0};
  m.OnImpression(7, t, one, {}, {}, {});
  const auto now = m.MakeScorer();
  std::vector<float> fresh(1), passed(1);
  now->ScoreItems(1000, one, {}, {}, fresh);
  now->ScoreItems(7, one, {}, {}, passed);
  EXPECT_LT(passed[0], fresh[0]);
}

// Serving adds the user terms without building a feature row; the sum must
// be the one training uses (the weights times UserFeatures' row).
TEST(StreamScorer, UserTermsAreTheWeightsTimesTheUserFeatures) {
  Weights w{};
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& x : w) x = u(rng);
  const StreamScorer scorer(0, w, {}, StreamScorer::Item{0.5f, {}});
  for (bool clicked : {false, true}) {
    for (uint32_t shown : {0u, 1u, 2u, 3u, 7u}) {
      for (std::optional<float> r :
           {std::optional<float>(), std::optional<float>(0.3f),
            std::optional<float>(-20.0f), std::optional<float>(NAN)}) {
        FeatureRow row{};
        UserFeatures(UserItem{clicked, shown}, r, row);
        float want = 0.5f;
        for (int f = kUserClicked; f < kNumFeatures; ++f) want += w[f] * row[f];
        EXPECT_FLOAT_EQ(scorer.Score(0.5f, UserItem{clicked, shown}, r), want)
            << clicked << " " << shown;
      }
    }
  }
}

}  // namespace
}  // namespace cfrec::stream
