#include "cfrec/eval/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

namespace cfrec::eval {
namespace {

const double kLog3 = std::log2(3.0);  // discount of rank 2
const double kLog5 = std::log2(5.0);  // discount of rank 4

TEST(ScoreHeldOutTest, NoTiesMatchesHandComputedValues) {
  const std::vector<float> negatives = {0.9f, 0.1f, 0.3f};
  const HeldOutMetrics m = ScoreHeldOut(0.5f, negatives, 10);
  EXPECT_DOUBLE_EQ(m.rank, 2.0);
  EXPECT_DOUBLE_EQ(m.hr, 1.0);
  EXPECT_DOUBLE_EQ(m.ndcg, 1.0 / kLog3);
  EXPECT_DOUBLE_EQ(m.auc, 2.0 / 3.0);

  const HeldOutMetrics top1 = ScoreHeldOut(0.5f, negatives, 1);
  EXPECT_DOUBLE_EQ(top1.hr, 0.0);
  EXPECT_DOUBLE_EQ(top1.ndcg, 0.0);
}

TEST(ScoreHeldOutTest, TiesAreExpectedValuesOverRandomOrder) {
  // Positive tied with two negatives: ranks 1, 2, 3 with probability 1/3.
  const std::vector<float> negatives = {0.5f, 0.5f, 0.1f};
  const HeldOutMetrics m = ScoreHeldOut(0.5f, negatives, 2);
  EXPECT_DOUBLE_EQ(m.hr, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.ndcg, (1.0 + 1.0 / kLog3) / 3.0);
  EXPECT_DOUBLE_EQ(m.auc, (1.0 + 0.5 * 2) / 3.0);  // ties count half
  EXPECT_DOUBLE_EQ(m.rank, 2.0);
}

TEST(ScoreHeldOutTest, ConstantScorerIsAtChance) {
  const std::vector<float> negatives(100, 0.0f);
  const HeldOutMetrics m = ScoreHeldOut(0.0f, negatives, 10);
  EXPECT_NEAR(m.hr, 10.0 / 101.0, 1e-12);
  EXPECT_DOUBLE_EQ(m.auc, 0.5);
}

TEST(ScoreHeldOutTest, NoNegativesRanksFirst) {
  const HeldOutMetrics m = ScoreHeldOut(0.0f, {}, 10);
  EXPECT_DOUBLE_EQ(m.hr, 1.0);
  EXPECT_DOUBLE_EQ(m.ndcg, 1.0);
  EXPECT_DOUBLE_EQ(m.auc, 1.0);
}

TEST(ScoreImpressionTest, HandComputedList) {
  // Clicks at ranks 2 and 4 of 4.
  const std::vector<float> scores = {0.9f, 0.8f, 0.7f, 0.6f};
  const std::vector<uint8_t> labels = {0, 1, 0, 1};
  const ImpressionMetrics m = ScoreImpression(scores, labels);
  ASSERT_TRUE(m.valid);
  EXPECT_DOUBLE_EQ(m.mrr, (1.0 / 2 + 1.0 / 4) / 2);
  const double dcg = 1.0 / kLog3 + 1.0 / kLog5;
  const double idcg = 1.0 + 1.0 / kLog3;
  EXPECT_DOUBLE_EQ(m.ndcg5, dcg / idcg);
  EXPECT_DOUBLE_EQ(m.ndcg10, dcg / idcg);
  // (click, non-click) pairs: 0.8 > 0.7 right; 0.8 < 0.9, 0.6 < both wrong.
  EXPECT_DOUBLE_EQ(m.auc, 1.0 / 4);
}

TEST(ScoreImpressionTest, CutOffsOfNdcg) {
  // One click at rank 6 of 7: outside nDCG@5, inside nDCG@10.
  const std::vector<float> scores = {7, 6, 5, 4, 3, 2, 1};
  const std::vector<uint8_t> labels = {0, 0, 0, 0, 0, 1, 0};
  const ImpressionMetrics m = ScoreImpression(scores, labels);
  EXPECT_DOUBLE_EQ(m.ndcg5, 0.0);
  EXPECT_DOUBLE_EQ(m.ndcg10, 1.0 / std::log2(7.0));
  EXPECT_DOUBLE_EQ(m.mrr, 1.0 / 6);
  EXPECT_DOUBLE_EQ(m.auc, 1.0 / 6);
}

TEST(ScoreImpressionTest, TiesShareTheirRanks) {
  // The click is tied with one non-click for ranks 1-2.
  const std::vector<float> scores = {1, 1, 0};
  const std::vector<uint8_t> labels = {1, 0, 0};
  const ImpressionMetrics m = ScoreImpression(scores, labels);
  EXPECT_DOUBLE_EQ(m.mrr, 0.5 * (1.0 + 0.5));
  EXPECT_DOUBLE_EQ(m.ndcg5, 0.5 * (1.0 + 1.0 / kLog3));
  EXPECT_DOUBLE_EQ(m.auc, (1.0 + 0.5) / 2);
}

TEST(ScoreImpressionTest, ListsWithoutBothLabelsAreInvalid) {
  EXPECT_FALSE(
      ScoreImpression(std::vector<float>{1, 2}, std::vector<uint8_t>{0, 0})
          .valid);
  EXPECT_FALSE(
      ScoreImpression(std::vector<float>{1, 2}, std::vector<uint8_t>{1, 1})
          .valid);
}

// MIND's evaluate script, transcribed: sort descending, then the formulas.
ImpressionMetrics Reference(const std::vector<float>& s,
                            const std::vector<uint8_t>& y) {
  std::vector<size_t> order(s.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return s[a] > s[b]; });
  auto dcg = [&](const std::vector<size_t>& ord, size_t k) {
    double sum = 0;
    for (size_t r = 0; r < std::min(k, ord.size()); ++r) {
      sum += (std::pow(2.0, y[ord[r]]) - 1) / std::log2(r + 2.0);
    }
    return sum;
  };
  std::vector<size_t> ideal(order);
  std::stable_sort(ideal.begin(), ideal.end(),
                   [&](size_t a, size_t b) { return y[a] > y[b]; });
  ImpressionMetrics m;
  double rr = 0;
  double clicks = 0;
  for (size_t r = 0; r < order.size(); ++r) {
    rr += y[order[r]] / (r + 1.0);
    clicks += y[order[r]];
  }
  m.mrr = rr / clicks;
  m.ndcg5 = dcg(order, 5) / dcg(ideal, 5);
  m.ndcg10 = dcg(order, 10) / dcg(ideal, 10);
  double pairs = 0;
  double right = 0;
  for (size_t a = 0; a < s.size(); ++a) {
    for (size_t b = 0; b < s.size(); ++b) {
      if (y[a] == 1 && y[b] == 0) {
        pairs += 1;
        right += s[a] > s[b] ? 1 : 0;
      }
    }
  }
  m.auc = right / pairs;
  return m;
}

TEST(ScoreImpressionTest, MatchesMindScriptWithoutTies) {
  std::mt19937 rng(7);  // seed 7
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 2 + rng() % 40;
    std::vector<float> s(n);
    std::vector<uint8_t> y(n, 0);
    for (size_t i = 0; i < n; ++i) s[i] = uniform(rng) + 1e-3f * i;
    y[rng() % n] = 1;
    for (size_t i = 0; i < n; ++i) {
      if (rng() % 5 == 0) y[i] = 1;
    }
    y[(rng() % n)] = 0;
    if (std::count(y.begin(), y.end(), 1) == 0) continue;
    const ImpressionMetrics got = ScoreImpression(s, y);
    const ImpressionMetrics want = Reference(s, y);
    ASSERT_TRUE(got.valid);
    EXPECT_NEAR(got.mrr, want.mrr, 1e-12) << "trial " << trial;
    EXPECT_NEAR(got.ndcg5, want.ndcg5, 1e-12) << "trial " << trial;
    EXPECT_NEAR(got.ndcg10, want.ndcg10, 1e-12) << "trial " << trial;
    EXPECT_NEAR(got.auc, want.auc, 1e-12) << "trial " << trial;
  }
}

TEST(MeanTest, AveragesAndMerges) {
  Mean a;
  a.Add(1);
  a.Add(2);
  Mean b;
  b.Add(6);
  a.Merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_DOUBLE_EQ(a.value(), 3.0);
  EXPECT_DOUBLE_EQ(Mean().value(), 0.0);
}

}  // namespace
}  // namespace cfrec::eval
