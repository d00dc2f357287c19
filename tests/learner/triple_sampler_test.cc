// TripleSampler (the ranker's sample preparation) and FastRng: the triples
// depend on the events, the click lists and the seed only, not on how many
// threads build them; negatives come from where the options say and are
// never clicked; the bounded draw stays in range and is uniform.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "click_lists.h"
#include "fast_rng.h"
#include "learner/synthetic.h"
#include "triple_sampler.h"
#include "work_pool.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;
using testing::MakeSyntheticLog;
using testing::SyntheticLog;

constexpr int64_t kUsers = 200, kItems = 150;  // MakeSyntheticLog's

struct Fixture {
  SyntheticLog log = MakeSyntheticLog();
  ClickLists clicks;
  Fixture() {
    clicks.Grow(kUsers);
    for (const AppliedEvent& e : log.train) clicks.Observe(e);
  }
  Triples Build(const LearnerOptions& o, uint64_t seed, WorkPool* pool) {
    TripleSampler sampler(o);
    Triples t;
    sampler.Build(log.train, /*record=*/false, &clicks, kUsers, kItems, seed,
                  pool, &t);
    return t;
  }
};

bool Same(const Triples& a, const Triples& b) {
  return a.u == b.u && a.pos == b.pos && a.neg == b.neg;
}

TEST(TripleSamplerTest, SameTriplesOnAnyThreadCountAndNewOnesForANewSeed) {
  Fixture f;
  ASSERT_GT(f.log.train.size(), 3 * TripleSampler::kLaneEvents);
  LearnerOptions o;  // mix negatives, 5 per click, history on
  Triples one = f.Build(o, 11, nullptr);
  ASSERT_GT(one.size(), f.log.train.size());
  WorkPool two(2), three(3);
  EXPECT_TRUE(Same(one, f.Build(o, 11, &two)));
  EXPECT_TRUE(Same(one, f.Build(o, 11, &three)));
  Triples other = f.Build(o, 12, &two);
  EXPECT_EQ(other.size(), one.size());
  EXPECT_FALSE(Same(one, other));
}

// Recording the round's clicks in the sampler leaves the lists that
// ClickLists::Observe leaves event by event, on any thread count, and the
// triples then match those sampled from the recorded lists.
TEST(TripleSamplerTest, RecordsClicksAsObserveDoesOnAnyThreadCount) {
  Fixture f;         // f.clicks: every event observed in order
  LearnerOptions o;  // mix negatives, 5 per click, history on
  std::vector<Triples> triples;
  for (int threads : {1, 2, 3}) {
    ClickLists clicks;
    clicks.Grow(kUsers);
    WorkPool pool(threads);
    TripleSampler sampler(o);
    Triples t;
    EXPECT_TRUE(sampler.Build(f.log.train, /*record=*/true, &clicks, kUsers,
                              kItems, 21, threads > 1 ? &pool : nullptr, &t));
    EXPECT_EQ(clicks.lists(), f.clicks.lists()) << threads;
    for (const AppliedEvent& e : f.log.train) {
      if (!e.history.empty()) {
        EXPECT_EQ(clicks.BroughtHistory(e), f.clicks.BroughtHistory(e));
      }
    }
    triples.push_back(t);
    // The same events again add no pair.
    Triples again;
    EXPECT_FALSE(sampler.Build(f.log.train, /*record=*/true, &clicks, kUsers,
                               kItems, 21, nullptr, &again));
  }
  EXPECT_TRUE(Same(triples[0], triples[1]));
  EXPECT_TRUE(Same(triples[0], triples[2]));
  EXPECT_TRUE(Same(triples[0], f.Build(o, 21, nullptr)));
}

TEST(TripleSamplerTest, NegativesComeFromTheirSourceAndAreNotClicked) {
  Fixture f;
  size_t clicks = 0;
  for (const AppliedEvent& e : f.log.train) {
    for (uint16_t p : e.clicked) clicks += p < e.items.size();
  }
  for (const char* source : {"catalog", "impression"}) {
    LearnerOptions o;
    o.negatives = source;
    o.num_negatives = 3;
    o.train_on_history = false;
    WorkPool pool(2);
    Triples t = f.Build(o, 5, &pool);
    ASSERT_EQ(t.size(), 3 * clicks) << source;
    size_t clicked_negatives = 0;
    for (size_t k = 0; k < t.size(); ++k) {
      ASSERT_LT(t.neg[k], kItems);
      EXPECT_TRUE(f.clicks.Contains(static_cast<uint32_t>(t.u[k]),
                                    static_cast<uint32_t>(t.pos[k])));
      clicked_negatives += f.clicks.Contains(static_cast<uint32_t>(t.u[k]),
                                             static_cast<uint32_t>(t.neg[k]));
    }
    if (std::string(source) == "catalog") {
      // Eight tries at 150 items: a clicked negative is all but impossible.
      EXPECT_EQ(clicked_negatives, 0u);
    }
    // Shuffled: consecutive triples rarely share a user.
    size_t same_user = 0;
    for (size_t k = 1; k < t.size(); ++k) same_user += t.u[k] == t.u[k - 1];
    EXPECT_LT(same_user, t.size() / 10) << source;
  }
  // "impression": every negative is an unclicked item of one of the user's
  // lists, whenever the list had one.
  LearnerOptions o;
  o.negatives = "impression";
  o.num_negatives = 2;
  o.train_on_history = false;
  Triples t = f.Build(o, 6, nullptr);
  std::vector<std::vector<uint32_t>> shown(kUsers);
  for (const AppliedEvent& e : f.log.train) {
    shown[e.user].insert(shown[e.user].end(), e.items.begin(), e.items.end());
  }
  for (size_t k = 0; k < t.size(); ++k) {
    const auto& s = shown[t.u[k]];
    EXPECT_NE(std::find(s.begin(), s.end(), t.neg[k]), s.end());
  }
}

// Without history items the sampler foresees the number of triples from
// the events' sizes and draws the shuffle beside the lanes; a click whose
// entry lies outside its list makes the guess wrong, and the shuffle is
// drawn again after the lanes. Either way the triples are those of the
// same events without that click, on any thread count.
TEST(TripleSamplerTest, ShuffleDrawnBesideTheLanesOrAfterThemIsTheSame) {
  Fixture f;
  LearnerOptions o;
  o.train_on_history = false;
  o.num_negatives = 2;
  std::vector<AppliedEvent> events = f.log.train;
  for (AppliedEvent& e : events) e.history.clear();
  std::vector<AppliedEvent> stray = events;
  size_t strays = 0;
  for (size_t k = 0; k < stray.size(); k += 7) {
    if (stray[k].clicked.empty()) continue;
    stray[k].clicked.push_back(
        static_cast<uint16_t>(stray[k].items.size() + 3));
    ++strays;
  }
  ASSERT_GT(strays, 10u);
  auto build = [&](const std::vector<AppliedEvent>& ev, WorkPool* pool) {
    TripleSampler sampler(o);
    Triples t;
    sampler.Build(ev, /*record=*/false, &f.clicks, kUsers, kItems, 31, pool,
                  &t);
    return t;
  };
  Triples one = build(events, nullptr);
  ASSERT_GT(one.size(), 3 * TripleSampler::kLaneEvents);
  WorkPool two(2), three(3);
  EXPECT_TRUE(Same(one, build(events, &two)));
  EXPECT_TRUE(Same(one, build(events, &three)));
  EXPECT_TRUE(Same(one, build(stray, nullptr)));
  EXPECT_TRUE(Same(one, build(stray, &two)));
  // Every click's triples, each once: the shuffle is a permutation.
  std::vector<std::tuple<int64_t, int64_t>> pairs, expected_pairs;
  for (size_t k = 0; k < one.size(); ++k) {
    pairs.emplace_back(one.u[k], one.pos[k]);
  }
  for (const AppliedEvent& e : events) {
    for (uint16_t p : e.clicked) {
      if (p >= e.items.size() || e.user >= kUsers) continue;
      for (int n = 0; n < o.num_negatives; ++n) {
        expected_pairs.emplace_back(e.user, e.items[p]);
      }
    }
  }
  std::sort(pairs.begin(), pairs.end());
  std::sort(expected_pairs.begin(), expected_pairs.end());
  EXPECT_EQ(pairs, expected_pairs);
}

TEST(FastRngTest, BoundedDrawIsInRangeAndUniform) {
  FastRng rng(3, 0);
  for (int k = 0; k < 1000; ++k) EXPECT_EQ(rng.Below(1), 0u);
  constexpr uint64_t kRange = 7;
  constexpr int kDraws = 70000;
  std::vector<int> counts(kRange, 0);
  for (int k = 0; k < kDraws; ++k) {
    uint64_t x = rng.Below(kRange);
    ASSERT_LT(x, kRange);
    ++counts[x];
  }
  double chi2 = 0;
  const double expected = double(kDraws) / kRange;
  for (int c : counts) chi2 += (c - expected) * (c - expected) / expected;
  EXPECT_LT(chi2, 22.5);  // p < 0.001 at 6 degrees of freedom
  // Huge ranges stay in range; streams of one seed differ.
  const uint64_t big = (uint64_t{1} << 63) + 12345;
  for (int k = 0; k < 1000; ++k) ASSERT_LT(rng.Below(big), big);
  FastRng a(9, 1), b(9, 2);
  EXPECT_NE(a.Next(), b.Next());
}

}  // namespace
}  // namespace cfrec::learner
