// The k-th largest of a set of floats, for the int8 pass's survivor
// selection (QuantizedPool::Reachable): its threshold is the k-th largest
// lower bound of the items seen so far.
#ifndef CFREC_SERVER_SRC_KTH_LARGEST_H_
#define CFREC_SERVER_SRC_KTH_LARGEST_H_

#include <cstddef>
#include <vector>

namespace cfrec::server {

// The k-th largest of `values`, ties counted (with k values equal to the
// largest, that value). Requires 1 <= k <= values.size() and no NaN;
// -infinity is allowed. `values` is used as scratch: reordered and possibly
// shrunk. The values are counted into 256 equal bins over [min, max] (a
// bin's index never decreases as the value grows, so the bins hold value
// ranges in order); nth_element runs only over the bin that holds the k-th
// largest.
float KthLargest(std::vector<float>& values, size_t k);

}  // namespace cfrec::server

#endif  // CFREC_SERVER_SRC_KTH_LARGEST_H_
