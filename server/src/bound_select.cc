#include "bound_select.h"

#include <xmmintrin.h>

#include <algorithm>
#include <functional>
#include <limits>

namespace cfrec::server {
namespace {

// Bit j set when p[j] >= t, for the 8 floats at p (SSE: every x86-64).
inline int AtLeast8(const float* p, __m128 t) {
  return _mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p), t)) |
         (_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(p + 4), t)) << 4);
}

}  // namespace

namespace {

// The k-th largest of v[0], v[stride], v[2 stride], ... into *out, counting
// only values at or above `threshold`; false when fewer than k reach it.
// Every value at or above the threshold goes to the buffer; when it holds
// 2k, it is cut back to its k largest and the threshold rises to the
// smallest of those. A value dropped then is at most the threshold and k
// values at least the threshold remain, so the k-th largest of what has
// been seen is always the k-th largest of the buffer.
bool Select(const float* v, size_t n, size_t stride, size_t k, float threshold,
            std::vector<float>& buf, float* out) {
  buf.clear();
  buf.reserve(2 * k);
  const auto add = [&](float x) {
    buf.push_back(x);
    if (buf.size() == 2 * k) {
      std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end(),
                       std::greater<float>());
      threshold = buf[k - 1];
      buf.resize(k);
    }
  };
  size_t i = 0;
  if (stride == 1) {
    for (; i + 8 <= n; i += 8) {
      int mask = AtLeast8(v + i, _mm_set1_ps(threshold));
      while (mask != 0) {
        const int j = __builtin_ctz(mask);
        mask &= mask - 1;
        // The threshold may have risen within this group.
        if (v[i + j] >= threshold) add(v[i + j]);
      }
    }
  }
  for (; i < n; i += stride) {
    if (v[i] >= threshold) add(v[i]);
  }
  if (buf.size() < k) return false;
  std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end(),
                   std::greater<float>());
  *out = buf[k - 1];
  return true;
}

}  // namespace

float KthLargest(std::span<const float> values, size_t k,
                 std::vector<float>& scratch) {
  const size_t n = values.size();
  const float* v = values.data();
  constexpr float kLowest = -std::numeric_limits<float>::infinity();
  // A first threshold from a strided sample of about 4k values, at the rank
  // that leaves about 2k values of the whole above it (k more than needed:
  // more than three standard deviations of the sample's error on a random
  // order). It starts the full pass high, so that pass keeps about 2k
  // values instead of cutting its buffer back log2(n / k) times; when fewer
  // than k reach it, the pass is repeated from the lowest threshold.
  float start = kLowest;
  const size_t stride = n / (4 * k);
  if (stride >= 4) {
    const size_t rank = std::max<size_t>(1, 2 * k / stride);
    Select(v, n, stride, rank, kLowest, scratch, &start);
  }
  float result = kLowest;
  if (!Select(v, n, 1, k, start, scratch, &result)) {
    Select(v, n, 1, k, kLowest, scratch, &result);
  }
  return result;
}

void KeepReachable(std::span<const float> lo, std::span<const float> hi,
                   size_t k, std::vector<uint32_t>& kept,
                   std::vector<float>& scratch) {
  const float threshold = KthLargest(lo, k, scratch);
  kept.clear();
  const size_t n = hi.size();
  const float* h = hi.data();
  const __m128 t = _mm_set1_ps(threshold);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    int mask = AtLeast8(h + i, t);
    while (mask != 0) {
      kept.push_back(static_cast<uint32_t>(i + __builtin_ctz(mask)));
      mask &= mask - 1;
    }
  }
  for (; i < n; ++i) {
    if (h[i] >= threshold) kept.push_back(static_cast<uint32_t>(i));
  }
}

}  // namespace cfrec::server
