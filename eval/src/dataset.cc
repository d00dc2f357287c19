#include "cfrec/eval/dataset.h"

#include <algorithm>
#include <numeric>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace cfrec::eval {
namespace {

class Dictionary {
 public:
  explicit Dictionary(std::vector<std::string>* ids) : ids_(ids) {}
  uint32_t Intern(const std::string& id) {
    auto [it, inserted] =
        index_.try_emplace(id, static_cast<uint32_t>(ids_->size()));
    if (inserted) ids_->push_back(id);
    return it->second;
  }

 private:
  std::vector<std::string>* ids_;  // not owned
  std::unordered_map<std::string, uint32_t> index_;
};

}  // namespace

Result<Dataset> Dataset::FromRows(const std::vector<MindRow>& rows) {
  Dataset d;
  Dictionary users(&d.user_ids_);
  Dictionary items(&d.item_ids_);
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return rows[a].ts_ms < rows[b].ts_ms;
  });
  std::vector<std::unordered_set<uint32_t>> history_seen;
  d.impressions_.reserve(rows.size());
  for (size_t index : order) {
    const MindRow& row = rows[index];
    if (row.items.empty()) {
      return Status::InvalidArgument("impression " + row.impression_id +
                                     ": empty list");
    }
    if (row.items.size() != row.clicked.size()) {
      return Status::InvalidArgument("impression " + row.impression_id +
                                     ": items and labels differ in size");
    }
    const uint32_t user = users.Intern(row.user_id);
    if (user >= d.histories_.size()) {
      d.histories_.resize(user + 1);
      history_seen.resize(user + 1);
    }
    for (const std::string& h : row.history) {
      const uint32_t item = items.Intern(h);
      if (history_seen[user].insert(item).second) {
        d.histories_[user].push_back(item);
      }
    }
    Impression imp;
    imp.user = user;
    imp.ts_ms = row.ts_ms;
    std::unordered_set<uint32_t> in_list;
    for (size_t i = 0; i < row.items.size(); ++i) {
      const uint32_t item = items.Intern(row.items[i]);
      if (!in_list.insert(item).second) continue;
      imp.items.push_back(item);
      imp.clicked.push_back(row.clicked[i] != 0 ? 1 : 0);
      d.num_clicks_ += row.clicked[i] != 0 ? 1 : 0;
    }
    d.num_shown_ += imp.items.size();
    d.impressions_.push_back(std::move(imp));
  }
  d.histories_.resize(d.user_ids_.size());
  return d;
}

std::vector<std::vector<Interaction>> Dataset::PositivesByUser() const {
  std::vector<std::vector<Interaction>> out(num_users());
  for (uint32_t u = 0; u < num_users(); ++u) {
    for (uint32_t item : histories_[u]) {
      out[u].push_back({u, item, kHistoryTimestamp});
    }
  }
  for (const Impression& imp : impressions_) {
    for (size_t i = 0; i < imp.items.size(); ++i) {
      if (imp.clicked[i])
        out[imp.user].push_back({imp.user, imp.items[i], imp.ts_ms});
    }
  }
  return out;
}

}  // namespace cfrec::eval
