// Recommend() against a brute-force reference on random models.
#include "cfrec/server/recommend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cfrec/server/testing/fake_snapshot.h"
#include "cfrec/server/testing/stream_fixture.h"
#include "cfrec/stream/stream_model.h"

namespace cfrec::server {
namespace {

using testing::MakeRandomSnapshot;

// Reference: score every unclicked candidate by dot, keep the best k, rank
// them by Score, return the best n (ties by index), by full sorts.
std::vector<uint32_t> Reference(const learner::ModelSnapshot& s, uint32_t user,
                                size_t n, size_t k) {
  const auto clicked = s.ClickedItems(user);
  std::vector<std::pair<float, uint32_t>> dots;
  for (uint32_t item : s.CandidateItems()) {
    if (std::binary_search(clicked.begin(), clicked.end(), item)) continue;
    float d = 0;
    for (int j = 0; j < s.dim(); ++j) {
      d += s.UserVector(user)[j] * s.ItemVector(item)[j];
    }
    dots.push_back({d, item});
  }
  auto better = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  std::sort(dots.begin(), dots.end(), better);
  if (dots.size() > k) dots.resize(k);
  std::vector<uint32_t> items;
  for (auto& d : dots) items.push_back(d.second);
  std::vector<float> scores(items.size());
  s.Score(user, items, scores);
  std::vector<std::pair<float, uint32_t>> ranked;
  for (size_t i = 0; i < items.size(); ++i)
    ranked.push_back({scores[i], items[i]});
  std::sort(ranked.begin(), ranked.end(), better);
  std::vector<uint32_t> out;
  for (size_t i = 0; i < std::min(n, ranked.size()); ++i) {
    out.push_back(ranked[i].second);
  }
  return out;
}

TEST(Recommend, MatchesBruteForceOnRandomModels) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    const auto snap = MakeRandomSnapshot(1, 20, 500, 16, 30, seed);
    for (size_t k : {5u, 50u, 300u}) {
      RecommendOptions options;
      options.retrieval_candidates = k;
      for (uint32_t user = 0; user < 20; ++user) {
        const auto rec =
            Recommend(*snap, "U" + std::to_string(user), 10, options);
        ASSERT_FALSE(rec.popularity_fallback);
        std::vector<uint32_t> got;
        for (const auto& item : rec.items) got.push_back(item.item);
        // The dot products in Recommend are summed in another order, so a
        // near-tie at the retrieval cut could differ; with Gaussian vectors
        // that has probability ~0 and these seeds are checked.
        EXPECT_EQ(got, Reference(*snap, user, 10, k)) << "user " << user;
      }
    }
  }
}

TEST(Recommend, NeverReturnsClickedOrStaleItems) {
  const auto snap = MakeRandomSnapshot(1, 5, 200, 8, 150, 9);
  snap->set_candidates({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 500 /* past end */});
  for (uint32_t user = 0; user < 5; ++user) {
    const auto rec = Recommend(*snap, "U" + std::to_string(user), 100, {});
    const auto clicked = snap->ClickedItems(user);
    for (const auto& item : rec.items) {
      EXPECT_FALSE(
          std::binary_search(clicked.begin(), clicked.end(), item.item));
      EXPECT_GE(item.item, 1u);
      EXPECT_LE(item.item, 10u);
      EXPECT_TRUE(item.score.has_value());
    }
  }
}

TEST(Recommend, EmptyPoolAndZeroN) {
  const auto snap = MakeRandomSnapshot(1, 2, 10, 4, 0, 3);
  snap->set_candidates({});
  EXPECT_TRUE(Recommend(*snap, "U0", 10, {}).items.empty());
  snap->set_candidates({1, 2});
  EXPECT_TRUE(Recommend(*snap, "U0", 0, {}).items.empty());
  EXPECT_EQ(Recommend(*snap, "U0", 10, {}).items.size(), 2u);
}

// The service builds each snapshot's retrieval index as the snapshot is
// published: requests that get the snapshot find its index ready, and a
// request still holding the previous snapshot finds that one's too.
TEST(CandidateIndexCache, BuiltOnPublishAndKeptForThePreviousSnapshot) {
  auto cache = std::make_shared<CandidateIndexCache>();
  learner::SnapshotHolder holder;
  std::vector<std::shared_ptr<const CandidateIndex>> built;
  holder.SetOnPublish(
      [&](const std::shared_ptr<const learner::ModelSnapshot>& snapshot) {
        EXPECT_NE(holder.Get(), snapshot);  // not visible yet
        cache->Prepare(snapshot);
        built.push_back(cache->Get(snapshot));
      });
  holder.Publish(MakeRandomSnapshot(1, 5, 40, 4, 1, 3));
  const auto first = holder.Get();
  ASSERT_EQ(built.size(), 1u);
  EXPECT_EQ(cache->Get(first), built[0]);  // the same index, not a new one
  holder.Publish(MakeRandomSnapshot(2, 5, 40, 4, 1, 4));
  ASSERT_EQ(built.size(), 2u);
  EXPECT_EQ(cache->Get(holder.Get()), built[1]);
  EXPECT_EQ(cache->Get(first), built[0]);  // a request holding the old one
  EXPECT_EQ(cache->Get(first)->items().size(), 40u);
}

// A model whose dot products tie often: vector components from {-1, 0, 1}
// (or Gaussian with `gaussian`), and every fifth item a copy of an earlier
// one, so equal scores meet at the retrieval cut.
std::shared_ptr<testing::FakeSnapshot> MakeTiedSnapshot(size_t users,
                                                        size_t items, int dim,
                                                        bool gaussian,
                                                        uint32_t seed) {
  auto snap = std::make_shared<testing::FakeSnapshot>(1, dim);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> trit(-1, 1);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<std::vector<float>> vectors;
  for (size_t i = 0; i < items; ++i) {
    std::vector<float> v(dim);
    if (i % 5 == 4) {
      v = vectors[std::uniform_int_distribution<size_t>(0, i - 1)(rng)];
    } else {
      for (auto& x : v) x = gaussian ? gauss(rng) : float(trit(rng));
    }
    vectors.push_back(v);
    snap->AddItem("N" + std::to_string(i), v, 0.0f);
  }
  std::uniform_int_distribution<uint32_t> pick(0, items - 1);
  for (size_t u = 0; u < users; ++u) {
    std::vector<float> v(dim);
    for (auto& x : v) x = gaussian ? gauss(rng) : float(trit(rng));
    const uint32_t user = snap->AddUser("U" + std::to_string(u), v);
    std::vector<uint32_t> clicked;
    for (size_t c = 0; c < u % 25; ++c) clicked.push_back(pick(rng));
    std::sort(clicked.begin(), clicked.end());
    clicked.erase(std::unique(clicked.begin(), clicked.end()), clicked.end());
    snap->set_clicked(user, std::move(clicked));
  }
  std::vector<uint32_t> all(items);
  for (size_t i = 0; i < items; ++i) all[i] = static_cast<uint32_t>(i);
  snap->set_candidates(all);
  snap->set_popular(all);
  return snap;
}

// The int8 first pass of retrieval returns exactly what the float scan
// returns: the same items with the same scores, ties included.
void ExpectSameAsExactScan(const learner::ModelSnapshot& snap, size_t users,
                           size_t k, size_t n) {
  const auto index = CandidateIndex::Build(snap);
  ASSERT_NE(index->quantized(), nullptr);
  RecommendOptions fast, exact;
  fast.retrieval_candidates = exact.retrieval_candidates = k;
  exact.exact_scan = true;
  for (size_t u = 0; u < users; ++u) {
    const std::string id = "U" + std::to_string(u);
    const Recommendation a = Recommend(snap, *index, id, n, fast);
    const Recommendation b = Recommend(snap, *index, id, n, exact);
    ASSERT_EQ(a.items.size(), b.items.size()) << id;
    for (size_t i = 0; i < a.items.size(); ++i) {
      EXPECT_EQ(a.items[i].item, b.items[i].item) << id << " rank " << i;
      EXPECT_EQ(a.items[i].score, b.items[i].score) << id << " rank " << i;
    }
  }
}

TEST(QuantizedRetrieval, SameAsExactScanOnRandomModels) {
  for (uint32_t seed : {21u, 22u}) {
    for (int dim : {3, 16, 64, 70}) {
      for (size_t items : {301u, 1999u}) {
        SCOPED_TRACE(::testing::Message() << "seed " << seed << " dim " << dim
                                          << " items " << items);
        const auto snap = MakeRandomSnapshot(1, 12, items, dim, 20, seed);
        for (size_t k : {1u, 50u, 300u})
          ExpectSameAsExactScan(*snap, 12, k, 10);
      }
    }
  }
}

TEST(QuantizedRetrieval, SameAsExactScanWithTies) {
  for (uint32_t seed : {31u, 32u, 33u}) {
    for (bool gaussian : {false, true}) {
      SCOPED_TRACE(::testing::Message()
                   << "seed " << seed << " gaussian " << gaussian);
      const auto snap = MakeTiedSnapshot(30, 3000, 8, gaussian, seed);
      for (size_t k : {7u, 100u, 300u}) {
        ExpectSameAsExactScan(*snap, 30, k, k);
        if (gaussian) continue;
        // Integer dot products: the reference's sums are exact too.
        for (uint32_t user = 0; user < 30; ++user) {
          const auto rec = Recommend(*snap, "U" + std::to_string(user), k, {});
          std::vector<uint32_t> got;
          for (const auto& item : rec.items) got.push_back(item.item);
          EXPECT_EQ(got, Reference(*snap, user, k, k)) << "user " << user;
        }
      }
    }
  }
}

TEST(QuantizedRetrieval, SameAsExactScanWithStreamFeatures) {
  for (uint32_t seed : {41u, 42u}) {
    SCOPED_TRACE(seed);
    const auto snap = MakeRandomSnapshot(1, 40, 2500, 32, 15, seed);
    snap->set_stream(testing::MakeGeneratedStreamScorer(2500, 40, 5000, seed));
    ExpectSameAsExactScan(*snap, 40, 300, 10);
  }
}

// A pool holding a value that is not finite gets no int8 copy and is
// scanned in float.
TEST(QuantizedRetrieval, NonFiniteVectorFallsBackToTheExactScan) {
  auto snap = MakeRandomSnapshot(1, 3, 500, 8, 0, 5);
  snap->AddItem("bad", {1.0f, std::numeric_limits<float>::infinity()});
  std::vector<uint32_t> all(501);
  for (uint32_t i = 0; i < 501; ++i) all[i] = i;
  snap->set_candidates(all);
  EXPECT_EQ(CandidateIndex::Build(*snap)->quantized(), nullptr);
  EXPECT_EQ(Recommend(*snap, "U0", 5, {}).items.size(), 5u);
}

// DotBlock gives bit for bit what DotAll gives (the exact re-scoring of
// the int8 pass relies on it).
TEST(CandidateIndex, DotBlockEqualsDotAll) {
  for (int dim : {1, 5, 64}) {
    const auto snap = MakeRandomSnapshot(1, 3, 80, dim, 0, 6);
    const auto index = CandidateIndex::Build(*snap);
    std::vector<float> all(index->padded_size());
    const auto user = snap->UserVector(1);
    index->DotAll(user, all.data());
    for (size_t b = 0; b * CandidateIndex::kBlock < 80; ++b) {
      float block[CandidateIndex::kBlock];
      index->DotBlock(b, user.data(), block);
      for (size_t j = 0; j < CandidateIndex::kBlock; ++j) {
        EXPECT_EQ(block[j], all[b * CandidateIndex::kBlock + j]) << b << j;
      }
    }
    // Single items from the row-major copy: whole groups and a tail.
    std::vector<uint32_t> positions = {79, 0,  13, 13, 42, 8,  1,  77, 3, 50,
                                       51, 52, 9,  60, 61, 62, 63, 64, 5};
    std::vector<float> rows(positions.size());
    index->DotRows(positions, user.data(), rows.data());
    for (size_t i = 0; i < positions.size(); ++i) {
      EXPECT_EQ(rows[i], all[positions[i]]) << positions[i];
    }
  }
}

// With a dot-product ranker over the retrieval vectors (BPR's), the ranker
// scores Recommend returns are the retrieval's own float dot products, bit
// for bit DotAll's, on the int8 path and on the float scan, and the two
// paths return the same lists.
TEST(DotRanker, ScoresAreTheRetrievalDotProducts) {
  for (int dim : {5, 64}) {
    SCOPED_TRACE(dim);
    const auto snap = MakeRandomSnapshot(1, 12, 2000, dim, 20, 51);
    snap->set_dot_ranker(true);
    const auto index = CandidateIndex::Build(*snap);
    ASSERT_TRUE(index->ranker_is_dot());
    ASSERT_NE(index->quantized(), nullptr);
    std::vector<float> all(index->padded_size());
    for (bool exact : {false, true}) {
      RecommendOptions options;
      options.exact_scan = exact;
      for (uint32_t user = 0; user < 12; ++user) {
        index->DotAll(snap->UserVector(user), all.data());
        const Recommendation rec =
            Recommend(*snap, *index, "U" + std::to_string(user), 20, options);
        ASSERT_EQ(rec.items.size(), 20u);
        std::vector<uint32_t> items;
        for (const ScoredItem& item : rec.items) {
          // Every item is a candidate, at its own index in the pool.
          EXPECT_EQ(*item.score, all[item.item])
              << "user " << user << " item " << item.item << " exact " << exact;
          items.push_back(item.item);
        }
        // What GET /v1/explain shows as the ranker's score.
        std::vector<float> ranker(items.size());
        RankerScores(*snap, user, items, ranker);
        for (size_t i = 0; i < items.size(); ++i) {
          EXPECT_EQ(ranker[i], all[items[i]]) << "item " << items[i];
        }
      }
    }
    ExpectSameAsExactScan(*snap, 12, 300, 20);
  }
}

// A dot-ranker model whose dot products stay inside the stream features'
// clip of the ranker term (vectors of norm ~1.2), with stream features
// that weigh that term: lists whose clicked items had the higher ranker
// score.
std::shared_ptr<testing::FakeSnapshot> DotRankerWithStream(size_t users,
                                                           size_t items,
                                                           uint32_t seed) {
  constexpr int kDim = 24;
  auto snap = std::make_shared<testing::FakeSnapshot>(1, kDim);
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 0.25f);
  std::vector<float> v(kDim);
  std::vector<uint32_t> all(items);
  for (size_t i = 0; i < items; ++i) {
    for (float& x : v) x = gauss(rng);
    all[i] = snap->AddItem("N" + std::to_string(i), v);
  }
  for (size_t u = 0; u < users; ++u) {
    for (float& x : v) x = gauss(rng);
    const uint32_t user = snap->AddUser("U" + std::to_string(u), v);
    snap->set_clicked(user, {static_cast<uint32_t>(rng() % items)});
  }
  snap->set_candidates(all);
  snap->set_popular(all);
  snap->set_dot_ranker(true);
  stream::StreamModel model;
  std::uniform_real_distribution<float> unit(0, 1);
  std::vector<uint32_t> list(24);
  std::vector<float> ranker(list.size());
  std::vector<uint16_t> clicked;
  for (size_t n = 0; n < 4000; ++n) {
    clicked.clear();
    for (uint16_t k = 0; k < list.size(); ++k) {
      list[k] = static_cast<uint32_t>(items * unit(rng) * unit(rng));
      ranker[k] = 2 * unit(rng) - 1;
      if (unit(rng) < 0.05 + 0.2 * (ranker[k] + 1)) clicked.push_back(k);
    }
    model.OnImpression(static_cast<uint32_t>(rng() % users),
                       static_cast<int64_t>(n) * 1000, list, clicked, {},
                       ranker);
  }
  snap->set_stream(model.MakeScorer());
  return snap;
}

// The same with stream features: the shortlist's items, which retrieval
// did not score, get the same kernels' dot products; both paths agree,
// and POST /v1/rank (RankItems) gives the items the scores Recommend gives.
TEST(DotRanker, StreamScoresEqualRankItemsAndTheExactScan) {
  for (uint32_t seed : {52u, 53u}) {
    SCOPED_TRACE(seed);
    const auto snap = DotRankerWithStream(30, 2500, seed);
    ExpectSameAsExactScan(*snap, 30, 300, 10);
    ExpectSameAsExactScan(*snap, 30, 7, 10);
    for (uint32_t user = 0; user < 30; ++user) {
      const std::string id = "U" + std::to_string(user);
      const Recommendation rec = Recommend(*snap, id, 10, {});
      std::vector<std::string> asked, ids;
      for (const ScoredItem& item : rec.items) {
        asked.push_back("N" + std::to_string(item.item));
      }
      const Recommendation rank = RankItems(*snap, id, asked, &ids);
      for (const ScoredItem& item : rec.items) {
        const auto it =
            std::find(ids.begin(), ids.end(), "N" + std::to_string(item.item));
        ASSERT_NE(it, ids.end());
        EXPECT_EQ(item.score, rank.items[it - ids.begin()].score)
            << id << " item " << item.item;
      }
    }
  }
}

// The dot-product ranker ranks as the snapshot's own Score() does (the
// brute-force reference scores with it; the sums differ only in order).
TEST(DotRanker, MatchesBruteForce) {
  const auto snap = MakeRandomSnapshot(1, 20, 800, 16, 30, 54);
  snap->set_dot_ranker(true);
  for (size_t k : {5u, 300u}) {
    RecommendOptions options;
    options.retrieval_candidates = k;
    for (uint32_t user = 0; user < 20; ++user) {
      const auto rec =
          Recommend(*snap, "U" + std::to_string(user), 10, options);
      std::vector<uint32_t> got;
      for (const auto& item : rec.items) got.push_back(item.item);
      EXPECT_EQ(got, Reference(*snap, user, 10, k)) << "user " << user;
    }
  }
}

TEST(Dot, MatchesNaiveForAllTailLengths) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1, 1);
  for (size_t n = 0; n < 70; ++n) {
    std::vector<float> a(n), b(n);
    double naive = 0;
    for (size_t i = 0; i < n; ++i) {
      a[i] = u(rng);
      b[i] = u(rng);
      naive += double(a[i]) * b[i];
    }
    EXPECT_NEAR(Dot(a, b), naive, 1e-4) << n;
  }
}

}  // namespace
}  // namespace cfrec::server
