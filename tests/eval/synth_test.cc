#include "cfrec/eval/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/truth.h"

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

// TrueModel reads ground_truth.json back in the dense ids of the log (order
// of first appearance, not the generator's index) and gives the generator's
// exposure score and click rule for every pair.
TEST(SynthTest, TrueModelMapsTheGeneratorsIdsToDenseIds) {
  SynthOptions o;
  o.num_users = 20;
  o.num_items = 30;
  o.dim = 4;
  o.response = ResponseModel::kNonlinear;
  o.noise_std = 0.2;
  o.seed = 4;
  Result<SynthData> synth = GenerateSynthetic(o);
  ASSERT_TRUE(synth.ok());
  Result<Dataset> data = Dataset::FromRows(synth->rows);
  ASSERT_TRUE(data.ok());
  const std::string dir = ::testing::TempDir() + "/cfrec_truth_test";
  ASSERT_TRUE(WriteSynthetic(*synth, dir).ok());
  Result<std::shared_ptr<const TrueModel>> truth =
      TrueModel::Load(dir + "/ground_truth.json", *data);
  ASSERT_TRUE(truth.ok()) << truth.status().ToString();
  const TrueModel& m = **truth;
  ASSERT_EQ(m.num_users(), data->num_users());
  ASSERT_EQ(m.num_items(), data->num_items());
  EXPECT_NE(Index(data->user_ids()[0]), 0u);  // dense != generator order
  const SynthGroundTruth& t = synth->truth;
  for (uint32_t u = 0; u < data->num_users(); ++u) {
    const auto& p = t.user_vectors[Index(data->user_ids()[u])];
    for (uint32_t i = 0; i < data->num_items(); ++i) {
      const auto& q = t.item_vectors[Index(data->item_ids()[i])];
      EXPECT_DOUBLE_EQ(m.Exposure(u, i), ExposureScore(p, q, t.a, t.b));
      EXPECT_DOUBLE_EQ(m.ClickLogit(u, i),
                       ResponseLogit(o.response, p, q, t.a, t.b));
      EXPECT_DOUBLE_EQ(m.ClickProbability(u, i),
                       ClickProbability(o.response, 0.2, p, q, t.a, t.b));
    }
  }
  // A log with an id the truth has no vector for is refused.
  std::vector<MindRow> rows = synth->rows;
  rows[0].items[0] = "N999";
  Result<Dataset> other = Dataset::FromRows(rows);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(TrueModel::Load(dir + "/ground_truth.json", *other).ok());
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

// A 20,000-list news stream over 6 days, made once for the NewsTest cases.
const NewsData& News() {
  static const NewsData* data = [] {
    NewsOptions o;
    o.num_impressions = 20000;
    o.seed = 7;
    Result<NewsData> generated = GenerateNews(o);
    EXPECT_TRUE(generated.ok()) << generated.status().ToString();
    return new NewsData(std::move(generated).value());
  }();
  return *data;
}

constexpr int64_t kHourMs = 3600 * 1000;

struct Rate {
  double shown = 0;
  double clicks = 0;
  double Ctr() const { return shown == 0 ? 0 : clicks / shown; }
};

TEST(NewsTest, ItemsAreBornOverTimeAndShownOnlyOnceBorn) {
  const NewsData& data = News();
  const NewsOptions& o = data.options;
  ASSERT_EQ(data.rows.size(), 20000u);
  const int64_t day_ms = 24 * kHourMs;
  const int64_t end_ms = o.start_ms + static_cast<int64_t>(o.days) * day_ms;
  // Births span the warm-up and the whole stream, in id order.
  EXPECT_LT(data.items.front().birth_ms, o.start_ms - 40 * kHourMs);
  EXPECT_GT(data.items.back().birth_ms, end_ms - 2 * kHourMs);
  const double expected = o.items_per_hour * (o.warmup_hours + 24 * o.days);
  EXPECT_NEAR(static_cast<double>(data.items.size()), expected,
              5 * std::sqrt(expected));
  for (size_t j = 1; j < data.items.size(); ++j) {
    EXPECT_LE(data.items[j - 1].birth_ms, data.items[j].birth_ms);
  }
  std::set<std::string> first_day;
  std::set<std::string> last_day;
  std::vector<std::string> last_day_shows;
  for (size_t i = 0; i < data.rows.size(); ++i) {
    const MindRow& row = data.rows[i];
    if (i > 0) {
      EXPECT_GE(row.ts_ms, data.rows[i - 1].ts_ms);
    }
    EXPECT_EQ(row.ts_ms % 1000, 0);
    EXPECT_GE(row.ts_ms, o.start_ms);
    EXPECT_LT(row.ts_ms, end_ms);
    for (const std::string& item : row.items) {
      EXPECT_LE(data.items[Index(item)].birth_ms, row.ts_ms);
      if (row.ts_ms < o.start_ms + day_ms) first_day.insert(item);
      if (row.ts_ms >= end_ms - day_ms) {
        last_day.insert(item);
        last_day_shows.push_back(item);
      }
    }
  }
  EXPECT_LT(data.rows.front().ts_ms, o.start_ms + kHourMs);
  EXPECT_GT(data.rows.back().ts_ms, end_ms - kHourMs);
  // The catalogue turns over: most of the last day's items did not exist on
  // the first day, and the first day's items get few of its shows (only the
  // stale slots).
  size_t common = 0;
  for (const std::string& item : last_day) common += first_day.count(item);
  size_t common_shows = 0;
  for (const std::string& item : last_day_shows) {
    common_shows += first_day.count(item);
  }
  const double common_share =
      static_cast<double>(common_shows) / last_day_shows.size();
  std::printf(
      "items shown on day 1: %zu, on day %g: %zu, on both: %zu; their share "
      "of the last day's shows %.3f\n",
      first_day.size(), o.days, last_day.size(), common, common_share);
  EXPECT_GT(first_day.size(), 100u);
  EXPECT_LT(common, last_day.size() / 2);
  EXPECT_LT(common_share, 0.1);
}

TEST(NewsTest, FreshItemsDominateListsAndCtrFallsWithAge) {
  const NewsData& data = News();
  // Age buckets (hours): [1, 6), [6, 12), [12, 24), [24, 48), [48, inf).
  const std::vector<int64_t> edges = {1, 6, 12, 24, 48};
  std::vector<Rate> by_age(edges.size());
  // Per item: CTR in its first 12 hours vs from 24 hours on.
  std::vector<Rate> early(data.items.size());
  std::vector<Rate> late(data.items.size());
  std::vector<double> ages;
  std::vector<size_t> lengths;
  for (const MindRow& row : data.rows) {
    lengths.push_back(row.items.size());
    EXPECT_GE(std::count(row.clicked.begin(), row.clicked.end(), 1), 1);
    std::set<std::string> distinct(row.items.begin(), row.items.end());
    EXPECT_EQ(distinct.size(), row.items.size());
    for (size_t k = 0; k < row.items.size(); ++k) {
      const uint32_t j = Index(row.items[k]);
      const int64_t age_ms = row.ts_ms - data.items[j].birth_ms;
      ages.push_back(static_cast<double>(age_ms) / kHourMs);
      for (size_t b = edges.size(); b-- > 0;) {
        if (age_ms >= edges[b] * kHourMs) {
          by_age[b].shown += 1;
          by_age[b].clicks += row.clicked[k];
          break;
        }
      }
      Rate* rate = age_ms < 12 * kHourMs    ? &early[j]
                   : age_ms >= 24 * kHourMs ? &late[j]
                                            : nullptr;
      if (rate != nullptr) {
        rate->shown += 1;
        rate->clicks += row.clicked[k];
      }
    }
  }
  for (size_t b = 0; b < edges.size(); ++b) {
    std::printf("age >= %2lld h: shown %6.0f, ctr %.4f\n",
                static_cast<long long>(edges[b]), by_age[b].shown,
                by_age[b].Ctr());
    ASSERT_GT(by_age[b].shown, 2000);
    if (b > 0) {
      EXPECT_LT(by_age[b].Ctr(), 0.8 * by_age[b - 1].Ctr());
    }
  }
  EXPECT_GT(by_age[0].Ctr(), 5 * by_age.back().Ctr());
  // Most items with enough shows at both ages were clicked more when young.
  size_t compared = 0;
  size_t younger_better = 0;
  for (size_t j = 0; j < data.items.size(); ++j) {
    if (early[j].shown < 100 || late[j].shown < 100) continue;
    ++compared;
    younger_better += early[j].Ctr() > late[j].Ctr();
  }
  std::printf("items compared %zu, higher CTR when young %zu\n", compared,
              younger_better);
  EXPECT_GT(compared, 200u);
  EXPECT_GT(younger_better, compared * 9 / 10);
  // Lists: fresh items dominate, a few older ones; MIND-like lengths.
  std::sort(ages.begin(), ages.end());
  const double median_age = ages[ages.size() / 2];
  const double old_share =
      static_cast<double>(ages.end() -
                          std::upper_bound(ages.begin(), ages.end(), 48.0)) /
      ages.size();
  std::nth_element(lengths.begin(), lengths.begin() + lengths.size() / 2,
                   lengths.end());
  std::printf("median age %.1f h, older than 48 h %.3f, median length %zu\n",
              median_age, old_share, lengths[lengths.size() / 2]);
  EXPECT_LT(median_age, 16.0);
  EXPECT_GT(old_share, 0.03);
  EXPECT_LT(old_share, 0.15);
  EXPECT_GE(lengths[lengths.size() / 2], 18u);
  EXPECT_LE(lengths[lengths.size() / 2], 22u);
}

TEST(NewsTest, TrendingItemsHaveHigherCtr) {
  const NewsData& data = News();
  Rate trending;
  Rate other;
  size_t trending_items = 0;
  for (const NewsItem& item : data.items) trending_items += item.trending;
  for (const MindRow& row : data.rows) {
    for (size_t k = 0; k < row.items.size(); ++k) {
      Rate& rate = data.items[Index(row.items[k])].trending ? trending : other;
      rate.shown += 1;
      rate.clicks += row.clicked[k];
    }
  }
  std::printf("trending items %zu of %zu, ctr %.4f vs %.4f\n", trending_items,
              data.items.size(), trending.Ctr(), other.Ctr());
  EXPECT_GT(trending_items, 10u);
  EXPECT_LT(trending_items, data.items.size() / 10);
  EXPECT_GT(trending.shown, 2000);
  EXPECT_GT(trending.Ctr(), 2.5 * other.Ctr());
}

TEST(NewsTest, MostUsersAppearOnceSomeReturnWithHistory) {
  const NewsData& data = News();
  std::map<std::string, size_t> lists;
  for (const MindRow& row : data.rows) {
    ++lists[row.user_id];
    const NewsUser& user = data.users[Index(row.user_id)];
    // The history column: returning users' fixed earlier clicks.
    ASSERT_EQ(row.history.size(), user.history.size());
    for (const std::string& item : row.history) {
      const NewsItem& truth = data.items[Index(item)];
      EXPECT_LT(truth.birth_ms, data.options.start_ms);
      EXPECT_TRUE(std::binary_search(user.topics.begin(), user.topics.end(),
                                     truth.topic));
    }
  }
  ASSERT_EQ(lists.size(), data.users.size());
  size_t once = 0;
  size_t five_or_more = 0;
  size_t max_lists = 0;
  size_t returning_with_history = 0;
  size_t returning = 0;
  for (const auto& [id, n] : lists) {
    const NewsUser& user = data.users[Index(id)];
    EXPECT_EQ(user.impressions, n);
    once += n == 1;
    five_or_more += n >= 5;
    max_lists = std::max(max_lists, n);
    if (n >= 2) {
      EXPECT_TRUE(user.returning);
      ++returning;
      returning_with_history += !user.history.empty();
    } else if (!user.returning) {
      EXPECT_TRUE(user.history.empty());
    }
  }
  const double once_share = static_cast<double>(once) / lists.size();
  std::printf(
      "users %zu, seen once %.3f, 5+ lists %zu, max %zu, returning with "
      "history %zu of %zu\n",
      lists.size(), once_share, five_or_more, max_lists, returning_with_history,
      returning);
  EXPECT_NEAR(once_share, 1 - data.options.return_share, 0.03);
  EXPECT_GT(five_or_more, lists.size() / 50);
  EXPECT_GE(max_lists, 50u);
  EXPECT_GT(returning_with_history, returning * 3 / 4);
}

TEST(NewsTest, ClickedItemsMatchTheUsersTopics) {
  const NewsData& data = News();
  Rate on_topic;  // shown: items of the user's topics; clicks: of those
  Rate all;
  for (const MindRow& row : data.rows) {
    const NewsUser& user = data.users[Index(row.user_id)];
    for (size_t k = 0; k < row.items.size(); ++k) {
      const bool match =
          std::binary_search(user.topics.begin(), user.topics.end(),
                             data.items[Index(row.items[k])].topic);
      all.shown += 1;
      all.clicks += row.clicked[k];
      on_topic.shown += match;
      on_topic.clicks += match && row.clicked[k];
    }
  }
  const double shown_share = on_topic.shown / all.shown;
  const double clicked_share = on_topic.clicks / all.clicks;
  std::printf("on the user's topics: %.3f of shown, %.3f of clicked\n",
              shown_share, clicked_share);
  EXPECT_GT(shown_share, 0.1);
  EXPECT_GT(clicked_share, 1.8 * shown_share);
  EXPECT_NEAR(all.Ctr(), 0.05, 0.02);
}

TEST(NewsTest, DeterministicForASeedAndRoundTrip) {
  NewsOptions o;
  o.num_impressions = 3000;
  o.days = 2;
  o.seed = 11;
  Result<NewsData> a = GenerateNews(o);
  Result<NewsData> b = GenerateNews(o);
  o.seed = 12;
  Result<NewsData> c = GenerateNews(o);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->rows, b->rows);
  ASSERT_EQ(a->items.size(), b->items.size());
  for (size_t j = 0; j < a->items.size(); ++j) {
    EXPECT_EQ(a->items[j].birth_ms, b->items[j].birth_ms);
    EXPECT_EQ(a->items[j].topic, b->items[j].topic);
    EXPECT_EQ(a->items[j].trending, b->items[j].trending);
  }
  EXPECT_NE(a->rows, c->rows);

  const std::string dir = ::testing::TempDir() + "/cfrec_news_test";
  ASSERT_TRUE(WriteNews(*a, dir).ok());
  Result<MindFile> file = ReadMindFile(dir + "/behaviors.tsv");
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(file->errors.empty());
  EXPECT_EQ(file->rows, a->rows);
  std::ifstream in(dir + "/ground_truth.json");
  const nlohmann::json truth = nlohmann::json::parse(in);
  EXPECT_EQ(truth["generator"], "news");
  EXPECT_EQ(truth["options"]["seed"], 11);
  ASSERT_EQ(truth["items"].size(), a->items.size());
  ASSERT_EQ(truth["users"].size(), a->users.size());
  const size_t last = a->items.size() - 1;
  EXPECT_EQ(truth["items"][last]["id"], "N" + std::to_string(last + 1));
  EXPECT_EQ(truth["items"][last]["birth_ms"], a->items[last].birth_ms);
  EXPECT_EQ(truth["items"][last]["topic"], a->items[last].topic);
  EXPECT_EQ(truth["items"][last]["trending"], a->items[last].trending);
  EXPECT_EQ(truth["users"][0]["topics"].size(), a->users[0].topics.size());
  std::filesystem::remove_all(dir);
}

TEST(NewsTest, LifetimeRisesThenHalvesAndRejectsBadOptions) {
  NewsItem item;
  item.birth_ms = 1000 * kHourMs;
  item.half_life_hours = 4;
  EXPECT_EQ(NewsLifetime(item, 0.5, item.birth_ms - 1), 0.0);
  EXPECT_EQ(NewsLifetime(item, 0.5, item.birth_ms), 0.0);
  const double at3 = NewsLifetime(item, 0.5, item.birth_ms + 3 * kHourMs);
  const double at7 = NewsLifetime(item, 0.5, item.birth_ms + 7 * kHourMs);
  EXPECT_GT(NewsLifetime(item, 0.5, item.birth_ms + kHourMs),
            NewsLifetime(item, 0.5, item.birth_ms + kHourMs / 10));
  // Once risen, every 4 hours halves it.
  EXPECT_NEAR(at7 / at3, 0.5, 0.005);
  EXPECT_DOUBLE_EQ(NewsLifetime(item, 0, item.birth_ms + 4 * kHourMs), 0.5);

  NewsOptions o;
  o.num_impressions = 0;
  EXPECT_FALSE(GenerateNews(o).ok());
  o = NewsOptions();
  o.items_per_hour = 0;
  EXPECT_FALSE(GenerateNews(o).ok());
  o = NewsOptions();
  o.trending_share = 1.5;
  EXPECT_FALSE(GenerateNews(o).ok());
  o = NewsOptions();
  o.num_topics = 0;
  EXPECT_FALSE(GenerateNews(o).ok());
}

}  // namespace
}  // namespace cfrec::eval
