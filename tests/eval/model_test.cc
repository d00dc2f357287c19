#include "cfrec/eval/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/synth.h"

namespace cfrec::eval {
namespace {

TrainData FourItems() {
  // u0 {0, 1}, u1 {0, 1, 2}, u2 {2, 3}.
  TrainData t;
  t.num_users = 3;
  t.num_items = 4;
  t.positives = {{0, 0, 1}, {0, 1, 2}, {1, 0, 3}, {1, 1, 4},
                 {1, 2, 5}, {2, 2, 6}, {2, 3, 7}, {0, 1, 8}};  // repeat
  return t;
}

TEST(ItemPopTest, ScoresArePositiveCountsAndUpdateAdds) {
  ItemPop pop;
  ASSERT_TRUE(pop.Fit(FourItems(), {}).ok());
  const std::vector<uint32_t> items = {0, 1, 2, 3, 99};
  std::vector<float> out(items.size());
  pop.Score(0, items, out);
  EXPECT_EQ(out, (std::vector<float>{2, 3, 2, 1, 0}));
  TrainData more;
  more.num_items = 4;
  more.positives = {{2, 3, 9}};
  ASSERT_TRUE(pop.Update(more).ok());
  pop.Score(1, items, out);
  EXPECT_EQ(out[3], 2.0f);
}

TEST(ItemKnnTest, CosineNeighboursByHand) {
  ItemKnn knn(ItemKnnOptions{.k = 3, .shrink = 0});
  ASSERT_TRUE(knn.Fit(FourItems(), {}).ok());
  // |U_0| = |U_1| = |U_2| = 2, |U_3| = 1.
  auto n2 = knn.Neighbours(2);
  ASSERT_EQ(n2.size(), 3u);
  EXPECT_EQ(n2[0].item, 3u);
  EXPECT_FLOAT_EQ(n2[0].sim, 1.0f / std::sqrt(2.0f));
  EXPECT_FLOAT_EQ(n2[1].sim, 0.5f);
  auto n0 = knn.Neighbours(0);
  ASSERT_EQ(n0.size(), 2u);
  EXPECT_EQ(n0[0].item, 1u);
  EXPECT_FLOAT_EQ(n0[0].sim, 1.0f);

  const std::vector<uint32_t> items = {0, 1, 2, 3};
  std::vector<float> out(4);
  knn.Score(0, items, out);  // u0 has items 0 and 1
  EXPECT_FLOAT_EQ(out[2], 0.5f + 0.5f);
  EXPECT_FLOAT_EQ(out[3], 0.0f);
  knn.Score(2, items, out);  // u2 has 2 and 3
  EXPECT_FLOAT_EQ(out[0], 0.5f);
  EXPECT_FLOAT_EQ(out[1], 0.5f);
}

TEST(ItemKnnTest, KeepsOnlyTopK) {
  ItemKnn knn(ItemKnnOptions{.k = 1, .shrink = 0});
  ASSERT_TRUE(knn.Fit(FourItems(), {}).ok());
  ASSERT_EQ(knn.Neighbours(2).size(), 1u);
  std::vector<float> out(1);
  const std::vector<uint32_t> item2 = {2};
  knn.Score(0, item2, out);  // 2's only neighbour is 3, which u0 lacks
  EXPECT_FLOAT_EQ(out[0], 0.0f);
}

TEST(ItemKnnTest, LongAndShortCandidateListsAgree) {
  SynthOptions o;
  o.num_users = 100;
  o.num_items = 300;
  o.seed = 8;
  Result<SynthData> synth = GenerateSynthetic(o);
  ASSERT_TRUE(synth.ok());
  Result<Dataset> d = Dataset::FromRows(synth->rows);
  ASSERT_TRUE(d.ok());
  TrainData t;
  t.num_users = d->num_users();
  t.num_items = d->num_items();
  for (const auto& user : d->PositivesByUser()) {
    t.positives.insert(t.positives.end(), user.begin(), user.end());
  }
  ItemKnn knn(ItemKnnOptions{.k = 20, .shrink = 0});
  ASSERT_TRUE(knn.Fit(t, {}).ok());
  std::vector<uint32_t> all(d->num_items());
  std::iota(all.begin(), all.end(), 0u);
  std::vector<float> long_scores(all.size());
  knn.Score(5, all, long_scores);  // dense path (> 256 candidates)
  float nonzero = 0;
  for (uint32_t j = 0; j < all.size(); ++j) {
    const uint32_t one[] = {j};
    float s = 0;
    knn.Score(5, one, std::span<float>(&s, 1));
    EXPECT_NEAR(s, long_scores[j], 1e-5);
    nonzero += s > 0;
  }
  EXPECT_GT(nonzero, 10);
}

TEST(RegistryTest, BaselinesAndNotYetAvailableRankers) {
  const ModelRegistry registry = DefaultRegistry();
  ModelSpec spec;
  spec.ranker = "itempop";
  Result<std::unique_ptr<Model>> pop = registry.Create(spec);
  ASSERT_TRUE(pop.ok());
  EXPECT_EQ((*pop)->name(), "itempop");

  spec.ranker = "itemknn";
  spec.hyper_json = R"({"k": 7})";
  EXPECT_TRUE(registry.Create(spec).ok());
  spec.hyper_json = R"({"k": 0})";
  EXPECT_TRUE(registry.Create(spec).status().IsInvalidArgument());
  spec.hyper_json = "{}";
  spec.intervention = "learned";
  EXPECT_TRUE(registry.Create(spec).status().IsInvalidArgument());

  for (const char* neural : {"bpr", "gmf", "mlp", "neumf", "lightgcn"}) {
    ModelSpec n;
    n.ranker = neural;
    const Status st = registry.Create(n).status();
    EXPECT_EQ(st.code(), StatusCode::kUnsupported) << neural;
    EXPECT_NE(st.message().find("not available yet"), std::string::npos);
  }
  ModelSpec unknown;
  unknown.ranker = "cdae";
  EXPECT_TRUE(registry.Create(unknown).status().IsInvalidArgument());
}

}  // namespace
}  // namespace cfrec::eval
