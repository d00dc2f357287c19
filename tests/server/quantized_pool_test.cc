// The int8 pass's one-pass survivor selection (QuantizedPool::Reachable)
// against the plain reference (Bounds() for every position, then the
// positions whose hi reaches the k-th largest lo by sorting), for every kernel
// the CPU supports: random pools, pools that are not a multiple of the block
// width, fewer items than a block, ties, k = 1 and k = n, and a pool whose
// sampled blocks overstate the rest (the pass is repeated from -infinity).
#include "quantized_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

namespace cfrec::server {
namespace {

using Kernel = QuantizedPool::Kernel;

std::vector<Kernel> Kernels() {
  std::vector<Kernel> out;
  for (Kernel k : {Kernel::kPortable, Kernel::kAvx2, Kernel::kAvx512Vnni}) {
    if (QuantizedPool::Supported(k)) out.push_back(k);
  }
  return out;
}

// Rows (n x dim) into the float block layout CandidateIndex uses.
std::unique_ptr<const QuantizedPool> Pool(
    const std::vector<std::vector<float>>& rows, int dim) {
  constexpr size_t kB = QuantizedPool::kFloatBlock;
  const size_t blocks = (rows.size() + kB - 1) / kB;
  std::vector<float> m(blocks * kB * dim, 0.0f);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int d = 0; d < dim; ++d) {
      m[(i / kB) * dim * kB + d * kB + i % kB] = rows[i][d];
    }
  }
  return QuantizedPool::Build(m, blocks, dim, rows.size());
}

// The reference: every position's bounds, then the positions whose hi
// reaches the k-th largest lo (by sorting).
std::vector<uint32_t> Reference(const QuantizedPool& pool,
                                const QuantizedPool::Query& q, size_t k) {
  std::vector<float> lo(pool.padded_size()), hi(pool.padded_size());
  pool.Bounds(q, lo.data(), hi.data());
  std::vector<float> sorted(lo.begin(), lo.begin() + pool.n());
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  const float t = sorted[k - 1];
  std::vector<uint32_t> out;
  for (size_t i = 0; i < pool.n(); ++i) {
    if (hi[i] >= t) out.push_back(static_cast<uint32_t>(i));
  }
  return out;
}

void ExpectAllKernelsMatch(const QuantizedPool& pool,
                           const std::vector<float>& user, size_t k) {
  const QuantizedPool::Query q = pool.Prepare(user);
  ASSERT_TRUE(q.ok);
  const std::vector<uint32_t> want = Reference(pool, q, k);
  QuantizedPool::Scratch scratch;  // reused across kernels, as a thread does
  for (Kernel kernel : Kernels()) {
    std::vector<uint32_t> got = {12345};  // replaced, not appended to
    pool.Reachable(q, k, got, scratch, kernel);
    EXPECT_EQ(got, want) << "kernel " << static_cast<int>(kernel) << " k " << k;
  }
}

std::vector<std::vector<float>> Gaussian(std::mt19937& rng, size_t n, int dim) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<std::vector<float>> rows(n, std::vector<float>(dim));
  for (auto& r : rows) {
    for (float& x : r) x = g(rng);
  }
  return rows;
}

TEST(QuantizedReachable, SameAsBoundsAndSortingOnRandomPools) {
  std::mt19937 rng(17);
  for (int dim : {1, 7, 64}) {
    for (size_t n : {1u, 5u, 16u, 17u, 255u, 1000u, 5003u}) {
      const auto rows = Gaussian(rng, n, dim);
      const auto pool = Pool(rows, dim);
      ASSERT_NE(pool, nullptr);
      const std::vector<float> user = Gaussian(rng, 1, dim)[0];
      for (size_t k : {size_t{1}, size_t{3}, size_t{50}, size_t{300}, n}) {
        if (k > n) continue;
        SCOPED_TRACE(::testing::Message()
                     << "dim " << dim << " n " << n << " k " << k);
        ExpectAllKernelsMatch(*pool, user, k);
      }
    }
  }
}

// Components in {-1, 0, 1} and duplicated items: many equal bounds.
TEST(QuantizedReachable, SameAsBoundsWithTies) {
  std::mt19937 rng(18);
  std::uniform_int_distribution<int> trit(-1, 1);
  for (size_t n : {40u, 3001u, 20000u}) {
    std::vector<std::vector<float>> rows(n, std::vector<float>(8));
    for (size_t i = 0; i < n; ++i) {
      if (i % 5 == 4) {
        rows[i] = rows[i / 2];
        continue;
      }
      for (float& x : rows[i]) x = static_cast<float>(trit(rng));
    }
    const auto pool = Pool(rows, 8);
    std::vector<float> user(8);
    for (float& x : user) x = static_cast<float>(trit(rng));
    for (size_t k : {1u, 7u, 39u, 300u}) {
      if (k > n) continue;
      SCOPED_TRACE(::testing::Message() << "n " << n << " k " << k);
      ExpectAllKernelsMatch(*pool, user, k);
    }
  }
}

// Every item the same: nothing can be told apart, every item is kept (the
// buffer grows instead of being tightened at every block).
TEST(QuantizedReachable, IdenticalItemsAreAllKept) {
  const std::vector<std::vector<float>> rows(5000, {0.5f, -1.0f, 2.0f});
  const auto pool = Pool(rows, 3);
  const std::vector<float> user = {1.0f, 1.0f, 1.0f};
  for (size_t k : {1u, 4u, 5000u}) {
    ExpectAllKernelsMatch(*pool, user, k);
    const auto q = pool->Prepare(user);
    QuantizedPool::Scratch scratch;
    std::vector<uint32_t> kept;
    pool->Reachable(q, k, kept, scratch);
    EXPECT_EQ(kept.size(), 5000u);
  }
}

// The first item (in the first sampled block) scores far above the rest, so
// the sample's threshold leaves fewer than k items: the pass is repeated
// from -infinity and the result is still exact. Also a pool sorted by
// score, best last.
TEST(QuantizedReachable, UnrepresentativeSampleStillExact) {
  std::mt19937 rng(19);
  auto rows = Gaussian(rng, 20000, 16);
  rows[0].assign(16, 50.0f);
  const std::vector<float> user(16, 1.0f);
  const auto pool = Pool(rows, 16);
  for (size_t k : {2u, 50u, 300u}) ExpectAllKernelsMatch(*pool, user, k);

  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    float sa = 0, sb = 0;
    for (float x : a) sa += x;
    for (float x : b) sb += x;
    return sa < sb;
  });
  const auto sorted = Pool(rows, 16);
  for (size_t k : {1u, 50u, 300u}) ExpectAllKernelsMatch(*sorted, user, k);
}

// Integer components with max |v| = 127 and max |u| = 2047: every code is
// the value itself (steps of 1), including the extremes -127 and 127 of
// the items and the user's codes around the split c = 32 h + l (-2047,
// -33, -32, -17, -16, 15, 16, 31, 32, 2047). The bounds must hold the
// exact dot product, and are only as wide as the float rounding terms: a
// wrong offset or weight of the high part is off by far more. Every kernel
// keeps what the reference keeps. Dimensions 5, 9 and 64: a last quad
// partly padding, and full ones.
TEST(QuantizedReachable, ExtremeCodesGiveExactSums) {
  std::mt19937 rng(20);
  const std::vector<int> edges = {-2047, -33, -32, -17, -16, -1,  0,
                                  1,     15,  16,  31,  32,  2047};
  for (int dim : {5, 9, 64}) {
    std::uniform_int_distribution<int> item(-127, 127);
    std::vector<std::vector<float>> rows(101, std::vector<float>(dim));
    for (size_t i = 0; i < rows.size(); ++i) {
      for (int d = 0; d < dim; ++d) {
        // Some items all at the extremes, the rest random; each has a 127
        // or -127 so that its step is 1.
        const int v = i % 3 == 0 ? (item(rng) < 0 ? -127 : 127) : item(rng);
        rows[i][d] = static_cast<float>(d == 0 ? (i % 2 ? 127 : -127) : v);
      }
    }
    const auto pool = Pool(rows, dim);
    ASSERT_NE(pool, nullptr);
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> user(dim);
      for (int d = 0; d < dim; ++d) {
        user[d] = static_cast<float>(edges[rng() % edges.size()]);
      }
      user[trial % dim] = trial % 2 ? 2047.0f : -2047.0f;
      const QuantizedPool::Query q = pool->Prepare(user);
      ASSERT_TRUE(q.ok);
      std::vector<float> lo(pool->padded_size()), hi(pool->padded_size());
      pool->Bounds(q, lo.data(), hi.data());
      double user_norm = 0;
      for (float x : user) user_norm += double(x) * x;
      user_norm = std::sqrt(user_norm);
      for (size_t i = 0; i < rows.size(); ++i) {
        double dot = 0, norm = 0;
        for (int d = 0; d < dim; ++d) {
          dot += double(user[d]) * rows[i][d];
          norm += double(rows[i][d]) * rows[i][d];
        }
        SCOPED_TRACE(::testing::Message()
                     << "dim " << dim << " trial " << trial << " item " << i);
        EXPECT_LE(lo[i], dot);
        EXPECT_GE(hi[i], dot);
        // No rounding of the codes: the width is the float dot product's
        // rounding term and the 1e-6 relative slack only.
        const double rounding = dim * 0x1p-23 * user_norm * std::sqrt(norm);
        EXPECT_LE(hi[i] - lo[i], 2.1 * rounding + 3e-6 * std::fabs(dot) + 1.0);
      }
      for (size_t k : {1u, 10u, 101u}) ExpectAllKernelsMatch(*pool, user, k);
    }
  }
}

}  // namespace
}  // namespace cfrec::server
