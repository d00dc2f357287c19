#include "click_lists.h"

#include <algorithm>
#include <cstddef>

namespace cfrec::learner {

void ClickLists::Grow(size_t users) {
  if (users <= clicked_.size()) return;
  clicked_.resize(users);
  history_owner_.resize(users, 0);
}

namespace {

// The position of the first entry >= item in an ascending list, without
// branches on the data (a branchy search mispredicts about every other
// level on these random items).
inline size_t LowerBound(const uint32_t* data, size_t n, uint32_t item) {
  if (n == 0) return 0;
  const uint32_t* base = data;
  while (n > 1) {
    const size_t half = n / 2;
    base = base[half] < item ? base + half : base;
    n -= half;
  }
  return static_cast<size_t>(base - data) + (*base < item ? 1 : 0);
}

}  // namespace

bool ClickLists::Add(uint32_t user, uint32_t item) {
  const auto& c = clicked_[user];
  return AddAt(user, item, LowerBound(c.data(), c.size(), item));
}

bool ClickLists::AddAt(uint32_t user, uint32_t item, size_t at) {
  auto& c = clicked_[user];
  if (at < c.size() && c[at] == item) return false;
  c.insert(c.begin() + static_cast<std::ptrdiff_t>(at), item);
  return true;
}

bool ClickLists::Observe(const state::AppliedEvent& e) {
  return ObserveImpl(e, nullptr);
}

bool ClickLists::Observe(const state::AppliedEvent& e, uint32_t first_at) {
  return ObserveImpl(e, &first_at);
}

bool ClickLists::ObserveImpl(const state::AppliedEvent& e,
                             const uint32_t* first_at) {
  bool added = false;
  for (size_t k = 0; k < e.clicked.size(); ++k) {
    const uint16_t p = e.clicked[k];
    if (p >= e.items.size()) continue;
    const uint32_t item = e.items[p];
    const auto& c = clicked_[e.user];
    // The given place holds if the entries around it bracket the item.
    if (k == 0 && first_at != nullptr && *first_at <= c.size() &&
        (*first_at == 0 || c[*first_at - 1] < item) &&
        (*first_at == c.size() || c[*first_at] >= item)) {
      added |= AddAt(e.user, item, *first_at);
    } else {
      added |= Add(e.user, item);
    }
  }
  if (!e.history.empty() && history_owner_[e.user] == 0) {
    history_owner_[e.user] = e.seq == 0 ? 1 : e.seq;
    for (uint32_t i : e.history) added |= Add(e.user, i);
  }
  return added;
}

bool ClickLists::Contains(uint32_t user, uint32_t item) const {
  if (user >= clicked_.size()) return false;
  const std::vector<uint32_t>& c = clicked_[user];
  const size_t at = LowerBound(c.data(), c.size(), item);
  return at < c.size() && c[at] == item;
}

uint32_t ClickLists::Touch(std::span<const uint32_t> users,
                           std::span<const uint32_t> items,
                           std::span<uint32_t> at) const {
  constexpr size_t kMax = 16;
  const uint32_t* base[kMax];
  size_t left[kMax];
  const size_t group = std::min({users.size(), items.size(), kMax});
  for (size_t g = 0; g < group; ++g) {
    const bool known = users[g] < clicked_.size();
    base[g] = known ? clicked_[users[g]].data() : nullptr;
    left[g] = known ? clicked_[users[g]].size() : 0;
  }
  // Branch-free lower bounds, one level of every search at a time.
  uint32_t seen = 0;
  bool more = true;
  while (more) {
    more = false;
    for (size_t g = 0; g < group; ++g) {
      if (left[g] <= 1) continue;
      const size_t half = left[g] / 2;
      const uint32_t probe = base[g][half];
      seen ^= probe;
      base[g] = probe < items[g] ? base[g] + half : base[g];
      left[g] -= half;
      more |= left[g] > 1;
    }
  }
  for (size_t g = 0; g < group; ++g) {
    if (left[g] == 1) seen ^= base[g][0];
    if (g < at.size()) {
      // left[g] is 0 only for an unknown user or an empty list.
      at[g] = left[g] == 0
                  ? 0
                  : static_cast<uint32_t>(base[g] - clicked_[users[g]].data() +
                                          (base[g][0] < items[g] ? 1 : 0));
    }
  }
  return seen;
}

std::span<const uint32_t> ClickLists::Items(uint32_t user) const {
  if (user >= clicked_.size()) return {};
  return clicked_[user];
}

bool ClickLists::BroughtHistory(const state::AppliedEvent& e) const {
  return e.user < history_owner_.size() &&
         history_owner_[e.user] == std::max<uint64_t>(e.seq, 1);
}

void ClickLists::ToCsr(std::vector<int64_t>* offsets,
                       std::vector<int64_t>* items,
                       std::vector<int64_t>* history_owners) const {
  offsets->assign(1, 0);
  items->clear();
  for (const auto& c : clicked_) {
    items->insert(items->end(), c.begin(), c.end());
    offsets->push_back(static_cast<int64_t>(items->size()));
  }
  history_owners->assign(history_owner_.begin(), history_owner_.end());
}

void ClickLists::FromCsr(size_t users, std::span<const int64_t> offsets,
                         std::span<const int64_t> items,
                         std::span<const int64_t> history_owners) {
  clicked_.assign(users, {});
  for (size_t u = 0; u + 1 < offsets.size() && u < users; ++u) {
    for (int64_t k = offsets[u]; k < offsets[u + 1]; ++k) {
      if (k >= 0 && static_cast<size_t>(k) < items.size()) {
        clicked_[u].push_back(static_cast<uint32_t>(items[k]));
      }
    }
  }
  history_owner_.assign(users, 0);
  for (size_t u = 0; u < history_owners.size() && u < users; ++u) {
    history_owner_[u] = static_cast<uint64_t>(history_owners[u]);
  }
}

void ClickLists::AppendCsr(std::vector<uint64_t>* offsets,
                           std::vector<uint32_t>* items) const {
  offsets->reserve(offsets->size() + clicked_.size() + 1);
  if (offsets->empty()) offsets->push_back(0);
  for (const auto& c : clicked_) {
    items->insert(items->end(), c.begin(), c.end());
    offsets->push_back(items->size());
  }
}

}  // namespace cfrec::learner
