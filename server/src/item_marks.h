// ItemMarks: per-item marks over a snapshot's dense item indices for one
// request, cleared in O(1) between requests by an epoch: a mark counts only
// when it carries the current epoch. Replaces binary searches over sorted
// id lists (the user's clicks, the items already retrieved, the user's
// exposure record) with one load per item.
//
// One instance per thread (it is scratch, not shared); memory is 12 bytes
// per item of the largest snapshot seen.
#ifndef CFREC_SERVER_SRC_ITEM_MARKS_H_
#define CFREC_SERVER_SRC_ITEM_MARKS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cfrec::server {

class ItemMarks {
 public:
  // Forgets every mark; items below `num_items` can be marked after it.
  void Reset(size_t num_items) {
    if (marks_.size() < num_items) marks_.resize(num_items);
    if (++epoch_ == 0) {  // wrapped: old marks could match again
      std::fill(marks_.begin(), marks_.end(), Mark{});
      epoch_ = 1;
    }
  }
  // Items past those given to Reset are ignored (never marked).
  void Exclude(uint32_t item) {
    if (item < marks_.size()) marks_[item].excluded = epoch_;
  }
  bool Excluded(uint32_t item) const {
    return item < marks_.size() && marks_[item].excluded == epoch_;
  }
  void SetCount(uint32_t item, uint32_t count) {
    if (item < marks_.size()) {
      marks_[item].counted = epoch_;
      marks_[item].count = count;
    }
  }
  // The count set for `item` since Reset, else 0.
  uint32_t Count(uint32_t item) const {
    return item < marks_.size() && marks_[item].counted == epoch_
               ? marks_[item].count
               : 0;
  }

 private:
  struct Mark {
    uint32_t excluded = 0;  // epoch of the last Exclude
    uint32_t counted = 0;   // epoch of the last SetCount
    uint32_t count = 0;
  };
  std::vector<Mark> marks_;
  uint32_t epoch_ = 0;
};

}  // namespace cfrec::server

#endif  // CFREC_SERVER_SRC_ITEM_MARKS_H_
