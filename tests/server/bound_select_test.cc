// The selection over the int8 pass's bounds against brute force, on random
// data with many ties, sizes that are not multiples of the vector width,
// and -infinity (the padding of the last block).
#include "bound_select.h"

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
std::vector<float> RandomValues(std::mt19937& rng, size_t n, int levels) {
  std::uniform_int_distribution<int> level(0, levels - 1);
  std::normal_distribution<float> spread(0.0f, 1.0f);
  std::bernoulli_distribution minus_inf(0.02);
  std::vector<float> v(n);
  for (float& x : v) {
    x = levels > 0 ? static_cast<float>(level(rng)) * 0.25f : spread(rng);
    if (minus_inf(rng)) x = -std::numeric_limits<float>::infinity();
  }
  return v;
}

TEST(QuantizedBoundSelect, KthLargestEqualsSorting) {
  std::mt19937 rng(5);
  std::vector<float> scratch;  // reused across sizes, as a thread does
  for (size_t n : {1u, 7u, 8u, 9u, 63u, 300u, 2001u, 20000u}) {
    for (int levels : {0, 1, 3, 50}) {
      const std::vector<float> v = RandomValues(rng, n, levels);
      for (size_t k : {size_t{1}, size_t{2}, n / 3 + 1, n / 2 + 1, n}) {
        if (k > n) continue;
        EXPECT_EQ(KthLargest(v, k, scratch), SortedKth(v, k))
            << "n " << n << " levels " << levels << " k " << k;
      }
    }
  }
}

TEST(QuantizedBoundSelect, IncreasingAndDecreasingOrder) {
  std::vector<float> scratch;
  std::vector<float> up(5000);
  for (size_t i = 0; i < up.size(); ++i) up[i] = static_cast<float>(i / 3);
  std::vector<float> down(up.rbegin(), up.rend());
  for (size_t k : {1u, 299u, 300u, 4999u, 5000u}) {
    EXPECT_EQ(KthLargest(up, k, scratch), SortedKth(up, k)) << k;
    EXPECT_EQ(KthLargest(down, k, scratch), SortedKth(down, k)) << k;
  }
}

// A sample (every 16th value) that overstates the rest: the threshold
// estimated from it leaves fewer than k values, and the pass is repeated.
TEST(QuantizedBoundSelect, UnrepresentativeSampleStillExact) {
  std::vector<float> scratch;
  std::vector<float> v(20000, 0.0f);
  for (size_t j = 0; j < 40; ++j) v[j * 16] = 10.0f;
  v[5] = 3.0f;
  for (size_t k : {1u, 40u, 41u, 42u, 300u}) {
    EXPECT_EQ(KthLargest(v, k, scratch), SortedKth(v, k)) << k;
  }
}

TEST(QuantizedBoundSelect, KeepReachableEqualsBruteForce) {
  std::mt19937 rng(9);
  std::vector<float> scratch;
  std::vector<uint32_t> kept = {42};  // replaced, not appended to
  std::uniform_real_distribution<float> error(0.0f, 0.6f);
  for (size_t n : {5u, 16u, 301u, 4099u}) {
    for (int levels : {0, 4, 40}) {
      const std::vector<float> x = RandomValues(rng, n, levels);
      std::vector<float> lo(n), hi(n);
      for (size_t i = 0; i < n; ++i) {
        lo[i] = x[i] - error(rng);
        hi[i] = x[i] + error(rng);
      }
      for (size_t k : {size_t{1}, size_t{4}, n / 2 + 1, n}) {
        if (k > n) continue;
        KeepReachable(lo, hi, k, kept, scratch);
        const float t = SortedKth(lo, k);
        std::vector<uint32_t> want;
        for (size_t i = 0; i < n; ++i) {
          if (hi[i] >= t) want.push_back(static_cast<uint32_t>(i));
        }
        EXPECT_EQ(kept, want)
            << "n " << n << " levels " << levels << " k " << k;
        // Every item of the k largest x, ties at the k-th included.
        const float xk = SortedKth(x, k);
        for (size_t i = 0; i < n; ++i) {
          if (x[i] >= xk) {
            EXPECT_TRUE(std::binary_search(kept.begin(), kept.end(), i))
                << "n " << n << " k " << k << " item " << i;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace cfrec::server
