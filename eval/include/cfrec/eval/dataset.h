// An interaction log in dense ids, built from MIND-format rows: the input of
// every split and protocol in this module.
//
// Users and items get dense indices in order of first appearance (history
// items of a row before its impression items). Impressions are kept in
// (timestamp, file order) order. A Dataset is immutable after construction
// and safe to share between threads.
#ifndef CFREC_EVAL_DATASET_H_
#define CFREC_EVAL_DATASET_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cfrec/schemas/mind.h"
#include "cfrec/schemas/status.h"

namespace cfrec::eval {

// One shown list in dense ids.
struct Impression {
  uint32_t user = 0;
  int64_t ts_ms = 0;
  std::vector<uint32_t> items;   // as shown, in order
  std::vector<uint8_t> clicked;  // parallel to items, 1 = clicked
};

// A positive interaction: a click, or an item of the user's MIND history.
struct Interaction {
  uint32_t user = 0;
  uint32_t item = 0;
  // Event time. History items predate the log: they carry
  // kHistoryTimestamp so that they sort before every click.
  int64_t ts_ms = 0;
};

inline constexpr int64_t kHistoryTimestamp = INT64_MIN;

class Dataset {
 public:
  // Builds the dense log. Rows may come in any order; an impression whose
  // items repeat an id keeps the first occurrence only. Fails when a row has
  // an empty list or mismatched items/clicked sizes.
  static Result<Dataset> FromRows(const std::vector<MindRow>& rows);

  uint32_t num_users() const { return static_cast<uint32_t>(user_ids_.size()); }
  uint32_t num_items() const { return static_cast<uint32_t>(item_ids_.size()); }
  const std::vector<std::string>& user_ids() const { return user_ids_; }
  const std::vector<std::string>& item_ids() const { return item_ids_; }

  // All impressions sorted by (ts_ms, row order).
  const std::vector<Impression>& impressions() const { return impressions_; }

  // Per user: the MIND history column (union over the user's rows, in order
  // of first appearance). Empty for logs without histories.
  const std::vector<std::vector<uint32_t>>& histories() const {
    return histories_;
  }

  // Per user: every positive in time order, history first, then clicks.
  // The same item may occur more than once (clicked again later).
  std::vector<std::vector<Interaction>> PositivesByUser() const;

  // Total clicks over all impressions, total shown items.
  size_t num_clicks() const { return num_clicks_; }
  size_t num_shown() const { return num_shown_; }

 private:
  std::vector<std::string> user_ids_;
  std::vector<std::string> item_ids_;
  std::vector<Impression> impressions_;
  std::vector<std::vector<uint32_t>> histories_;
  size_t num_clicks_ = 0;
  size_t num_shown_ = 0;
};

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_DATASET_H_
