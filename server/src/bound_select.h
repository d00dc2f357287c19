// Selection over arrays of bounds: the k-th largest lower bound, and the
// positions whose upper bound reaches it. Both run in one pass with a
// rising threshold, so most values are rejected by one vector comparison
// and no array of the pool's size is sorted or partitioned. Serving uses
// QuantizedPool::Reachable, which selects while it computes the bounds and
// never writes them out; this is the array form it is tested against.
#ifndef CFREC_SERVER_SRC_BOUND_SELECT_H_
#define CFREC_SERVER_SRC_BOUND_SELECT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace cfrec::server {

// The k-th largest of `values` (ties counted: with k values equal to the
// largest, that value). Requires 1 <= k <= values.size() and no NaN.
// `scratch` is reused between calls and grows to 2k floats.
float KthLargest(std::span<const float> values, size_t k,
                 std::vector<float>& scratch);

// Replaces `kept` with every position i (ascending) with hi[i] >= the k-th
// largest of lo: if lo[i] <= x_i <= hi[i] for every i, the k largest x are
// among them. Requires lo.size() == hi.size(), 1 <= k <= lo.size(), no NaN.
void KeepReachable(std::span<const float> lo, std::span<const float> hi,
                   size_t k, std::vector<uint32_t>& kept,
                   std::vector<float>& scratch);

}  // namespace cfrec::server

#endif  // CFREC_SERVER_SRC_BOUND_SELECT_H_
