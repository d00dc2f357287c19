// The two-stage semi-synthetic simulation (ACL appendix A.6.3).
#include "cfrec/learner/semisynth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace cfrec::learner {
namespace {

// A small MIND-format log: users see lists of popular-leaning items and
// click by a hidden 3-d preference.
std::vector<MindRow> MakeLog(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  constexpr int kUsers = 80, kItems = 200, kRows = 8, kList = 8;
  std::vector<std::vector<double>> u(kUsers, std::vector<double>(3)),
      v(kItems, std::vector<double>(3));
  for (auto& x : u) {
    for (double& a : x) a = normal(rng);
  }
  for (auto& x : v) {
    for (double& a : x) a = normal(rng);
  }
  std::vector<double> pop(kItems);
  for (int i = 0; i < kItems; ++i) pop[i] = std::exp(-0.015 * i);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<MindRow> rows;
  int64_t ts = 1'573'000'000'000;
  for (int r = 0; r < kRows; ++r) {
    for (int user = 0; user < kUsers; ++user) {
      MindRow row;
      row.impression_id = std::to_string(rows.size() + 1);
      row.user_id = "U" + std::to_string(user);
      row.ts_ms = (ts += 1000);
      std::vector<double> w = pop;
      std::discrete_distribution<int> pick(w.begin(), w.end());
      while (static_cast<int>(row.items.size()) < kList) {
        int i = pick(rng);
        std::string id = "N" + std::to_string(i);
        if (std::find(row.items.begin(), row.items.end(), id) !=
            row.items.end()) {
          continue;
        }
        double dot = 0;
        for (int d = 0; d < 3; ++d) dot += u[user][d] * v[i][d];
        row.items.push_back(id);
        row.clicked.push_back(unit(rng) < 1 / (1 + std::exp(-(dot - 1))));
      }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

SemiSyntheticOptions SmallOptions(const std::string& term, double gamma) {
  SemiSyntheticOptions o;
  o.dim = 4;
  o.epochs = 20;
  o.exposure_term = term;
  o.exposure_strength = gamma;
  o.list_size = 8;
  o.seed = 3;
  return o;
}

double Correlation(const std::vector<double>& a, const std::vector<double>& b) {
  double ma = std::accumulate(a.begin(), a.end(), 0.0) / a.size();
  double mb = std::accumulate(b.begin(), b.end(), 0.0) / b.size();
  double sab = 0, saa = 0, sbb = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    sab += (a[k] - ma) * (b[k] - mb);
    saa += (a[k] - ma) * (a[k] - ma);
    sbb += (b[k] - mb) * (b[k] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

// Generated impressions per item id.
std::map<std::string, double> Shown(const std::vector<MindRow>& rows) {
  std::map<std::string, double> n;
  for (const MindRow& r : rows) {
    for (const std::string& i : r.items) n[i] += 1;
  }
  return n;
}

TEST(SemiSyntheticTest, RejectsBadOptionsNamingTheField) {
  SemiSyntheticOptions o = SmallOptions("sideways", 1);
  Status s = ValidateSemiSyntheticOptions(o);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("exposure_term"), std::string::npos);
  o = SmallOptions("item", 1);
  o.list_size = 0;
  s = ValidateSemiSyntheticOptions(o);
  EXPECT_NE(s.ToString().find("list_size"), std::string::npos);
  EXPECT_FALSE(SimulateSemiSynthetic({}, SmallOptions("none", 0)).ok());
}

TEST(SemiSyntheticTest, WritesValidMindRowsDeterministically) {
  std::vector<MindRow> log = MakeLog(1);
  auto a = SimulateSemiSynthetic(log, SmallOptions("item", 1.5));
  auto b = SimulateSemiSynthetic(log, SmallOptions("item", 1.5));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->stage1, b->stage1);
  EXPECT_EQ(a->stage2, b->stage2);
  ASSERT_FALSE(a->stage1.empty());
  ASSERT_FALSE(a->stage2.empty());
  EXPECT_EQ(a->user_ids.size(), 80u);
  EXPECT_GT(a->item_ids.size(), 150u);
  EXPECT_GT(a->clicks1, 0u);
  EXPECT_GT(a->clicks2, 0u);
  int64_t last = 0;
  for (const MindRow& row : a->stage2) {
    auto parsed = ParseMindRow(FormatMindRow(row));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed, row);
    EXPECT_LE(row.items.size(), 8u);
    EXPECT_GT(row.ts_ms, last);  // time-ordered
    last = row.ts_ms;
  }
  // Stage 1 stays truthful to the log's volume: the exposure model is
  // calibrated to the log's exposure rate (within a factor of two).
  size_t real_shown = 0;
  for (const MindRow& row : log) real_shown += row.items.size();
  EXPECT_GT(double(a->exposed1), 0.5 * double(real_shown));
  EXPECT_LT(double(a->exposed1), 2.0 * double(real_shown));
}

TEST(SemiSyntheticTest, NoTermLeavesTheExposureMechanismAlone) {
  auto d = SimulateSemiSynthetic(MakeLog(2), SmallOptions("none", 3));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->item_exposure1, d->item_exposure2);
  for (double t : d->item_term) EXPECT_EQ(t, 0);
}

// The item term moves exposure towards items with a large e(x, z), as
// specified: log p2 - log p1 = e (capped at p = 1), visible both in the
// expected and in the generated exposures.
TEST(SemiSyntheticTest, ItemTermShiftsExposureAsSpecified) {
  auto d = SimulateSemiSynthetic(MakeLog(3), SmallOptions("item", 2.0));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  size_t items = d->item_ids.size();
  std::vector<double> log_ratio(items);
  for (size_t i = 0; i < items; ++i) {
    log_ratio[i] = std::log(d->item_exposure2[i] / d->item_exposure1[i]);
  }
  // Without the cap at p = 1 the log ratio would equal the term exactly.
  EXPECT_GT(Correlation(d->item_term, log_ratio), 0.85);
  double sd = 0;
  for (double t : d->item_term) sd += t * t;
  EXPECT_NEAR(std::sqrt(sd / items), 2.0, 0.2);  // gamma * standardised

  // Generated logs: the quarter of items with the largest term gets a much
  // larger share of the impressions in stage 2 than in stage 1.
  std::vector<size_t> order(items);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return d->item_term[a] > d->item_term[b];
  });
  auto s1 = Shown(d->stage1), s2 = Shown(d->stage2);
  double top1 = 0, top2 = 0;
  for (size_t k = 0; k < items / 4; ++k) {
    top1 += s1[d->item_ids[order[k]]];
    top2 += s2[d->item_ids[order[k]]];
  }
  double share1 = top1 / double(d->exposed1),
         share2 = top2 / double(d->exposed2);
  EXPECT_GT(share2, 1.5 * share1) << share1 << " -> " << share2;
}

// The dot term shows users what the stage-1 factorisation predicts they
// click: stage-2 impressions fall more often on items the same user
// clicked in stage 1.
TEST(SemiSyntheticTest, DotTermFavoursPredictedClicks) {
  auto none = SimulateSemiSynthetic(MakeLog(4), SmallOptions("none", 0));
  auto dot = SimulateSemiSynthetic(MakeLog(4), SmallOptions("dot", 2.0));
  ASSERT_TRUE(none.ok());
  ASSERT_TRUE(dot.ok()) << dot.status().ToString();
  EXPECT_EQ(none->stage1, dot->stage1);  // stage 1 does not see the term
  std::map<std::string, std::vector<std::string>> clicked;
  for (const MindRow& r : none->stage1) {
    for (size_t k = 0; k < r.items.size(); ++k) {
      if (r.clicked[k]) clicked[r.user_id].push_back(r.items[k]);
    }
  }
  auto share = [&](const std::vector<MindRow>& rows) {
    double hits = 0, shown = 0;
    for (const MindRow& r : rows) {
      const auto& c = clicked[r.user_id];
      for (const std::string& i : r.items) {
        hits += std::find(c.begin(), c.end(), i) != c.end() ? 1 : 0;
        shown += 1;
      }
    }
    return hits / shown;
  };
  double base = share(none->stage2), with_dot = share(dot->stage2);
  EXPECT_GT(with_dot, 1.15 * base) << base << " -> " << with_dot;
}

}  // namespace
}  // namespace cfrec::learner
