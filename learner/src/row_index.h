// RowIndex: the unique rows of one table that a batch touches, in order of
// first use, and each row's slot among them; O(1) per lookup with a
// row -> slot array kept at -1 between batches (no hashing, no sort), and a
// bit per row beside it (Has): 32 times smaller than the slots, so another
// thread that only asks whether this index holds a row (the fused kernels'
// update pass, for every row of its own part) reads a few contiguous lines
// instead of one line per row that this index's thread has just written.
// The bits are kept only when asked for (Reset's `with_bits`).
#ifndef CFREC_LEARNER_SRC_ROW_INDEX_H_
#define CFREC_LEARNER_SRC_ROW_INDEX_H_

#include <cassert>
#include <cstdint>
#include <vector>

namespace cfrec::learner {

struct RowIndex {
  std::vector<int32_t> slot_of_row;  // -1 where untouched
  std::vector<uint64_t> held;        // bit per row: slot_of_row >= 0
  std::vector<int64_t> rows;         // slot -> row
  bool with_bits = false;

  // Covers rows [0, table_rows); keeps the bits (Has) if `bits`. Clear
  // forgets the bits of a batch whatever `bits` is now, so the flag may
  // change between batches.
  void Reset(int64_t table_rows, bool bits = false) {
    if (static_cast<int64_t>(slot_of_row.size()) < table_rows) {
      slot_of_row.resize(table_rows, -1);
    }
    with_bits = bits;
    if (bits && static_cast<int64_t>(held.size()) * 64 < table_rows) {
      held.resize((table_rows + 63) / 64, 0);
    }
  }
  int32_t Slot(int64_t row) {
    int32_t& s = slot_of_row[row];
    if (s < 0) {
      s = static_cast<int32_t>(rows.size());
      rows.push_back(row);
      if (with_bits) held[row >> 6] |= uint64_t{1} << (row & 63);
    }
    return s;
  }
  // Only with bits (Reset's `bits`).
  bool Has(int64_t row) const {
    assert(with_bits);
    return (held[row >> 6] >> (row & 63)) & 1;
  }
  int64_t size() const { return static_cast<int64_t>(rows.size()); }
  // Forgets the batch (touches only its rows).
  void Clear() {
    for (int64_t row : rows) slot_of_row[row] = -1;
    // Every bit set belongs to a row of `rows`; bits kept for an earlier
    // batch (with_bits since turned off) are cleared too.
    if (!held.empty()) {
      for (int64_t row : rows) {
        if ((row >> 6) < static_cast<int64_t>(held.size())) held[row >> 6] = 0;
      }
    }
    rows.clear();
  }
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_ROW_INDEX_H_
