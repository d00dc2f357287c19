#include "cfrec/stream/user_exposure.h"

#include <algorithm>

#include "coding.h"

namespace cfrec::stream {
namespace {

// User ids are the store's dense ids; one past this is taken as corrupt
// (the table is a vector indexed by id).
constexpr uint32_t kMaxUsers = uint32_t{1} << 28;

}  // namespace

UserExposure::Seen UserExposure::Lookup(const Record* r, uint32_t item) {
  if (r == nullptr) return {};
  auto it =
      std::lower_bound(r->entries.begin(), r->entries.end(), item,
                       [](const Entry& e, uint32_t i) { return e.item < i; });
  if (it == r->entries.end() || it->item != item) return {};
  return {it->count};
}

UserExposure::Seen UserExposure::Snapshot::Find(uint32_t user,
                                                uint32_t item) const {
  return user < users_.size() ? Lookup(users_[user].get(), item) : Seen{};
}

UserExposure::Seen UserExposure::Find(uint32_t user, uint32_t item) const {
  return user < users_.size() ? Lookup(users_[user].get(), item) : Seen{};
}

void UserExposure::AddList(uint32_t user, std::span<const uint32_t> items) {
  if (user >= kMaxUsers || items.empty() || max_items_ == 0) return;
  if (user >= users_.size()) users_.resize(size_t{user} + 1);
  // Copy on write: snapshots keep the record they saw.
  auto next = users_[user] != nullptr ? std::make_shared<Record>(*users_[user])
                                      : std::make_shared<Record>();
  const uint64_t list = ++next->lists;
  std::vector<Entry>& e = next->entries;
  for (uint32_t item : items) {
    auto it =
        std::lower_bound(e.begin(), e.end(), item,
                         [](const Entry& x, uint32_t i) { return x.item < i; });
    if (it != e.end() && it->item == item) {
      if (it->last_list != list) {
        ++it->count;
        it->last_list = list;
      }
    } else {
      e.insert(it, Entry{item, 1, list});
    }
  }
  if (e.size() > max_items_ + max_items_ / 4) {
    // Keep the most recently shown; among equals, the smaller item ids.
    std::vector<Entry> keep = e;
    std::nth_element(keep.begin(), keep.begin() + max_items_, keep.end(),
                     [](const Entry& a, const Entry& b) {
                       return a.last_list > b.last_list ||
                              (a.last_list == b.last_list && a.item < b.item);
                     });
    keep.resize(max_items_);
    std::sort(keep.begin(), keep.end(),
              [](const Entry& a, const Entry& b) { return a.item < b.item; });
    e = std::move(keep);
  }
  users_[user] = std::move(next);
}

void UserExposure::Erase(uint32_t user) {
  if (user < users_.size()) users_[user].reset();
}

size_t UserExposure::num_users() const {
  return static_cast<size_t>(
      std::count_if(users_.begin(), users_.end(),
                    [](const auto& r) { return r != nullptr; }));
}

std::shared_ptr<const UserExposure::Snapshot> UserExposure::MakeSnapshot()
    const {
  return std::make_shared<const Snapshot>(users_);
}

void UserExposure::AppendTo(std::string* out) const {
  coding::Put(out, static_cast<uint64_t>(num_users()));
  for (size_t u = 0; u < users_.size(); ++u) {
    const Record* r = users_[u].get();
    if (r == nullptr) continue;
    coding::Put(out, static_cast<uint32_t>(u));
    coding::Put(out, r->lists);
    coding::Put(out, static_cast<uint32_t>(r->entries.size()));
    for (const Entry& e : r->entries) {
      coding::Put(out, e.item);
      coding::Put(out, e.count);
      coding::Put(out, e.last_list);
    }
  }
}

Status UserExposure::ReadFrom(std::string_view* in) {
  constexpr size_t kEntryBytes = 2 * sizeof(uint32_t) + sizeof(uint64_t);
  uint64_t n = 0;
  if (!coding::Get(in, &n) || n > in->size()) {
    return Status::Corruption("user exposure: truncated");
  }
  std::vector<std::shared_ptr<const Record>> users;
  for (uint64_t k = 0; k < n; ++k) {
    uint32_t user = 0, size = 0;
    auto r = std::make_shared<Record>();
    if (!coding::Get(in, &user) || !coding::Get(in, &r->lists) ||
        !coding::Get(in, &size) || user >= kMaxUsers ||
        size > in->size() / kEntryBytes) {
      return Status::Corruption("user exposure: truncated user");
    }
    r->entries.resize(size);
    for (Entry& e : r->entries) {
      coding::Get(in, &e.item);
      coding::Get(in, &e.count);
      coding::Get(in, &e.last_list);
    }
    if (!std::is_sorted(
            r->entries.begin(), r->entries.end(),
            [](const Entry& a, const Entry& b) { return a.item < b.item; })) {
      return Status::Corruption("user exposure: entries out of order");
    }
    if (user >= users.size()) users.resize(size_t{user} + 1);
    users[user] = std::move(r);
  }
  users_ = std::move(users);
  return Status::Ok();
}

}  // namespace cfrec::stream
