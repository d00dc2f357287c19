#include "kth_largest.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>

namespace cfrec::server {

float KthLargest(std::vector<float>& values, size_t k) {
  const size_t m = values.size();
  float lo = values[0], hi = values[0];
  for (const float x : values) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  constexpr int kBins = 256;
  const float scale = static_cast<float>(kBins) / (hi - lo);
  // Equal values, or a range that is infinite (or overflows): no bins.
  if (!(hi > lo) || !std::isfinite(hi - lo) || !std::isfinite(scale)) {
    std::nth_element(values.begin(), values.begin() + (k - 1), values.end(),
                     std::greater<float>());
    return values[k - 1];
  }
  const auto bin = [&](float x) {
    return std::min(kBins - 1, static_cast<int>((x - lo) * scale));
  };
  uint32_t counts[kBins] = {};
  for (const float x : values) ++counts[bin(x)];
  int target = kBins - 1;
  size_t above = 0;  // values in bins above target
  while (above + counts[target] < k) above += counts[target--];
  size_t out = 0;
  for (size_t i = 0; i < m; ++i) {
    if (bin(values[i]) == target) values[out++] = values[i];
  }
  values.resize(out);
  const size_t rank = k - above;  // within the bin, 1 <= rank <= out
  std::nth_element(values.begin(), values.begin() + (rank - 1), values.end(),
                   std::greater<float>());
  return values[rank - 1];
}

}  // namespace cfrec::server
