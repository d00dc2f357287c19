// The k-th largest of the int8 pass's selection against sorting, on random
// data with many ties, spread values, -infinity, sizes on both sides of the
// bins, sorted input and values whose range overflows a float.
#include "kth_largest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <random>
#include <vector>

namespace cfrec::server {
namespace {

float SortedKth(std::vector<float> v, size_t k) {
  std::sort(v.begin(), v.end(), std::greater<float>());
  return v[k - 1];
}

// Values from a few levels (ties), sometimes -infinity, sometimes spread.
std::vector<float> RandomValues(std::mt19937& rng, size_t n, int levels,
                                double minus_inf_share) {
  std::uniform_int_distribution<int> level(0, levels - 1);
  std::normal_distribution<float> spread(0.0f, 1.0f);
  std::bernoulli_distribution minus_inf(minus_inf_share);
  std::vector<float> v(n);
  for (float& x : v) {
    x = levels > 0 ? static_cast<float>(level(rng)) * 0.25f : spread(rng);
    if (minus_inf(rng)) x = -std::numeric_limits<float>::infinity();
  }
  return v;
}

TEST(KthLargest, EqualsSorting) {
  std::mt19937 rng(5);
  for (size_t n : {1u, 7u, 8u, 9u, 63u, 300u, 2001u, 20000u}) {
    for (int levels : {0, 1, 3, 50, 1000}) {
      for (double minus_inf : {0.0, 0.02}) {
        const std::vector<float> v = RandomValues(rng, n, levels, minus_inf);
        for (size_t k : {size_t{1}, size_t{2}, n / 3 + 1, n / 2 + 1, n}) {
          if (k > n) continue;
          std::vector<float> scratch = v;
          EXPECT_EQ(KthLargest(scratch, k), SortedKth(v, k))
              << "n " << n << " levels " << levels << " -inf " << minus_inf
              << " k " << k;
        }
      }
    }
  }
}

TEST(KthLargest, IncreasingAndDecreasingOrder) {
  std::vector<float> up(5000);
  for (size_t i = 0; i < up.size(); ++i) up[i] = static_cast<float>(i / 3);
  const std::vector<float> down(up.rbegin(), up.rend());
  for (size_t k : {1u, 299u, 300u, 4999u, 5000u}) {
    std::vector<float> a = up, b = down;
    EXPECT_EQ(KthLargest(a, k), SortedKth(up, k)) << k;
    EXPECT_EQ(KthLargest(b, k), SortedKth(down, k)) << k;
  }
}

// Most values in one bin and the k-th largest among them, or alone in the
// top bin; a range wider than the largest float.
TEST(KthLargest, SkewedAndHugeRanges) {
  std::vector<float> v(4000, 1.0f);
  for (size_t i = 0; i < v.size(); ++i) v[i] += static_cast<float>(i) * 1e-6f;
  v[17] = 1e6f;
  v[18] = -1e6f;
  for (size_t k : {1u, 2u, 3u, 2000u, 3999u, 4000u}) {
    std::vector<float> a = v;
    EXPECT_EQ(KthLargest(a, k), SortedKth(v, k)) << k;
  }
  const float big = std::numeric_limits<float>::max();
  const std::vector<float> wide = {big, -big, 0.0f, 1.0f, -1.0f, big / 2};
  for (size_t k = 1; k <= wide.size(); ++k) {
    std::vector<float> a = wide;
    EXPECT_EQ(KthLargest(a, k), SortedKth(wide, k)) << k;
  }
}

}  // namespace
}  // namespace cfrec::server
