#include "cfrec/eval/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

namespace cfrec::eval {

// Lets GoogleTest print the parameter by name.
void PrintTo(ResponseModel m, std::ostream* os) { *os << ResponseModelName(m); }

namespace {

uint32_t Index(const std::string& id) {  // "N17" -> 16
  return static_cast<uint32_t>(std::stoul(id.substr(1))) - 1;
}

// Pearson's statistic of observed counts against expected probabilities.
double ChiSquare(const std::vector<double>& counts,
                 const std::vector<double>& probs) {
  const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
  double chi2 = 0;
  for (size_t j = 0; j < counts.size(); ++j) {
    const double e = n * probs[j];
    chi2 += (counts[j] - e) * (counts[j] - e) / e;
  }
  return chi2;
}

// The 0.999 quantile of chi-square with 19 degrees of freedom.
constexpr double kChi2Df19P999 = 43.82;

TEST(SynthTest, ListPositionsFollowExpOfExposureScore) {
  SynthOptions o;
  o.num_users = 1;
  o.num_items = 20;
  o.lists_per_user = 20000;
  o.seed = 3;
  Result<SynthData> data = GenerateSynthetic(o);
  ASSERT_TRUE(data.ok());
  const SynthGroundTruth& t = data->truth;
  std::vector<double> p(o.num_items);
  for (uint32_t j = 0; j < o.num_items; ++j) {
    p[j] =
        std::exp(ExposureScore(t.user_vectors[0], t.item_vectors[j], t.a, t.b));
  }
  const double z = std::accumulate(p.begin(), p.end(), 0.0);
  for (double& x : p) x /= z;
  // Second position of a draw without replacement (Plackett-Luce).
  std::vector<double> p2(o.num_items, 0.0);
  for (uint32_t j = 0; j < o.num_items; ++j) {
    for (uint32_t i = 0; i < o.num_items; ++i) {
      if (i != j) p2[j] += p[i] * p[j] / (1.0 - p[i]);
    }
  }
  std::vector<double> first(o.num_items, 0.0);
  std::vector<double> second(o.num_items, 0.0);
  for (const MindRow& row : data->rows) {
    ASSERT_EQ(row.items.size(), 5u);
    std::vector<std::string> sorted = row.items;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
    first[Index(row.items[0])] += 1;
    second[Index(row.items[1])] += 1;
  }
  EXPECT_LT(ChiSquare(first, p), kChi2Df19P999);
  EXPECT_LT(ChiSquare(second, p2), kChi2Df19P999);
  // The exposure scores are not uniform, so the test has power.
  EXPECT_GT(*std::max_element(p.begin(), p.end()) /
                *std::min_element(p.begin(), p.end()),
            1.3);
}

class ResponseTest : public ::testing::TestWithParam<ResponseModel> {};

TEST_P(ResponseTest, NoiselessClicksFollowEq12Exactly) {
  SynthOptions o;
  o.num_users = 60;
  o.num_items = 50;
  o.response = GetParam();
  o.seed = 4;
  Result<SynthData> data = GenerateSynthetic(o);
  ASSERT_TRUE(data.ok());
  const SynthGroundTruth& t = data->truth;
  size_t clicks = 0;
  size_t shown = 0;
  for (const MindRow& row : data->rows) {
    const uint32_t u = Index(row.user_id);
    for (size_t k = 0; k < row.items.size(); ++k) {
      const auto& p = t.user_vectors[u];
      const auto& q = t.item_vectors[Index(row.items[k])];
      const double x1 = ResponseX1(p, q, t.a, t.b);
      const double x2 = ResponseX2(p, q, t.a, t.b);
      const double z = GetParam() == ResponseModel::kLinear ? x1 : x1 + x1 * x2;
      EXPECT_EQ(row.clicked[k], z > 0 ? 1 : 0);
      clicks += row.clicked[k];
      ++shown;
    }
  }
  const double rate = static_cast<double>(clicks) / shown;
  std::printf("%s click rate %.4f\n",
              std::string(ResponseModelName(GetParam())).c_str(), rate);
  EXPECT_GT(rate, 0.0);
  EXPECT_LT(rate, 1.0);
}

TEST_P(ResponseTest, NoisyClickRateMatchesModelProbability) {
  SynthOptions o;
  o.response = GetParam();
  o.noise_std = 0.2;
  o.seed = 5;
  Result<SynthData> data = GenerateSynthetic(o);
  ASSERT_TRUE(data.ok());
  const SynthGroundTruth& t = data->truth;
  double expected = 0;
  double variance = 0;
  double clicks = 0;
  for (const MindRow& row : data->rows) {
    const uint32_t u = Index(row.user_id);
    for (size_t k = 0; k < row.items.size(); ++k) {
      const double pr =
          ClickProbability(GetParam(), o.noise_std, t.user_vectors[u],
                           t.item_vectors[Index(row.items[k])], t.a, t.b);
      expected += pr;
      variance += pr * (1 - pr);
      clicks += row.clicked[k];
    }
  }
  // Sum of independent Bernoullis: within 4 standard deviations.
  EXPECT_NEAR(clicks, expected, 4 * std::sqrt(variance) + 1);
  EXPECT_GT(variance, 100.0);  // the noise does make clicks random
}

INSTANTIATE_TEST_SUITE_P(
    Models, ResponseTest,
    ::testing::Values(ResponseModel::kLinear, ResponseModel::kNonlinear),
    [](const ::testing::TestParamInfo<ResponseModel>& info) {
      return std::string(ResponseModelName(info.param));
    });

TEST(SynthTest, Eq12PiecewiseFunctionsByHand) {
  // d = 1: y = [p, q] = [1.5, -2]; a = [1, 1], b = 0.
  const std::vector<double> p = {1.5};
  const std::vector<double> q = {-2.0};
  const std::vector<double> a = {1.0, 1.0};
  EXPECT_DOUBLE_EQ(ResponseX1(p, q, a, 0), 1.0);   // (1.5 - 0.5) + 0
  EXPECT_DOUBLE_EQ(ResponseX2(p, q, a, 0), -1.5);  // 0 + (-2 + 0.5)
  EXPECT_DOUBLE_EQ(ExposureScore(p, q, a, 0),
                   1.0 - 1.0 / (1.0 + std::exp(-1.0)));
  EXPECT_DOUBLE_EQ(ResponseLogit(ResponseModel::kNonlinear, p, q, a, 0),
                   1.0 + 1.0 * -1.5);
  EXPECT_EQ(ClickProbability(ResponseModel::kLinear, 0, p, q, a, 0), 1.0);
  EXPECT_EQ(ClickProbability(ResponseModel::kNonlinear, 0, p, q, a, 0), 0.0);
}

TEST(SynthTest, DeterministicShapeAndRoundTrip) {
  SynthOptions o;
  o.num_users = 30;
  o.num_items = 40;
  o.dim = 32;
  o.seed = 9;
  Result<SynthData> a = GenerateSynthetic(o);
  Result<SynthData> b = GenerateSynthetic(o);
  o.seed = 10;
  Result<SynthData> c = GenerateSynthetic(o);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->rows, b->rows);
  EXPECT_NE(a->rows, c->rows);
  ASSERT_EQ(a->rows.size(), 30u * 25u);
  for (size_t i = 1; i < a->rows.size(); ++i) {
    EXPECT_GT(a->rows[i].ts_ms, a->rows[i - 1].ts_ms);
  }
  EXPECT_EQ(a->rows[0].impression_id, "1");
  EXPECT_EQ(a->rows[0].user_id[0], 'U');

  const std::string dir = ::testing::TempDir() + "/cfrec_synth_test";
  ASSERT_TRUE(WriteSynthetic(*a, dir).ok());
  Result<MindFile> file = ReadMindFile(dir + "/behaviors.tsv");
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(file->errors.empty());
  EXPECT_EQ(file->rows, a->rows);
  std::ifstream in(dir + "/ground_truth.json");
  const nlohmann::json truth = nlohmann::json::parse(in);
  EXPECT_EQ(truth["user_vectors"].size(), 30u);
  EXPECT_EQ(truth["item_vectors"][0].size(), 32u);
  EXPECT_EQ(truth["a"].size(), 64u);
  EXPECT_EQ(truth["options"]["seed"], 9);
  std::filesystem::remove_all(dir);
}

TEST(SynthTest, RejectsBadOptions) {
  SynthOptions o;
  o.list_length = 400;
  EXPECT_FALSE(GenerateSynthetic(o).ok());
  EXPECT_FALSE(ParseResponseModel("quadratic").ok());
}

TEST(MindLikeTest, ListLengthsClicksAndTime) {
  MindLikeOptions o;
  o.num_users = 5000;
  o.num_items = 4000;
  o.num_impressions = 20000;
  o.seed = 2;
  Result<std::vector<MindRow>> rows = GenerateMindLike(o);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 20000u);
  std::vector<size_t> lengths;
  size_t shown = 0;
  size_t clicks = 0;
  for (size_t i = 0; i < rows->size(); ++i) {
    const MindRow& row = (*rows)[i];
    lengths.push_back(row.items.size());
    EXPECT_GE(row.items.size(), 2u);
    EXPECT_LE(row.items.size(), 300u);
    const size_t c = std::count(row.clicked.begin(), row.clicked.end(), 1);
    EXPECT_GE(c, 1u);
    shown += row.items.size();
    clicks += c;
    if (i > 0) {
      EXPECT_GT(row.ts_ms, (*rows)[i - 1].ts_ms);
    }
  }
  std::nth_element(lengths.begin(), lengths.begin() + lengths.size() / 2,
                   lengths.end());
  const size_t median = lengths[lengths.size() / 2];
  const double rate = static_cast<double>(clicks) / shown;
  std::printf("median list %zu, click rate %.4f\n", median, rate);
  EXPECT_GE(median, 22u);
  EXPECT_LE(median, 26u);
  EXPECT_NEAR(rate, 0.04, 0.004);
  Result<std::vector<MindRow>> again = GenerateMindLike(o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[777], (*rows)[777]);
}

}  // namespace
}  // namespace cfrec::eval
