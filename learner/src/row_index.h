// RowIndex: the unique rows of one table that a batch touches, in order of
// first use, and each row's slot among them; O(1) per lookup with a
// row -> slot array kept at -1 between batches (no hashing, no sort).
#ifndef CFREC_LEARNER_SRC_ROW_INDEX_H_
#define CFREC_LEARNER_SRC_ROW_INDEX_H_

#include <cstdint>
#include <vector>

namespace cfrec::learner {

struct RowIndex {
  std::vector<int32_t> slot_of_row;  // -1 where untouched
  std::vector<int64_t> rows;         // slot -> row

  // Covers rows [0, table_rows).
  void Reset(int64_t table_rows) {
    if (static_cast<int64_t>(slot_of_row.size()) < table_rows) {
      slot_of_row.resize(table_rows, -1);
    }
  }
  int32_t Slot(int64_t row) {
    int32_t& s = slot_of_row[row];
    if (s < 0) {
      s = static_cast<int32_t>(rows.size());
      rows.push_back(row);
    }
    return s;
  }
  int64_t size() const { return static_cast<int64_t>(rows.size()); }
  // Forgets the batch (touches only its rows).
  void Clear() {
    for (int64_t row : rows) slot_of_row[row] = -1;
    rows.clear();
  }
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_ROW_INDEX_H_
