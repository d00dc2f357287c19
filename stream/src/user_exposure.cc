#include "cfrec/stream/user_exposure.h"

#include <algorithm>

#include "coding.h"

namespace cfrec::stream {
namespace {

using Record = UserExposure::Record;

template <typename PageMap>
const Record* UserIn(const PageMap& pages, uint32_t user) {
  auto it = pages.find(user >> UserExposure::kPageBits);
  if (it == pages.end()) return nullptr;
  return (*it->second)[user & (UserExposure::kPageSize - 1)].get();
}

}  // namespace

UserExposure::Seen UserExposure::Lookup(const Record* r, uint32_t item) {
  if (r == nullptr) return {};
  auto it =
      std::lower_bound(r->entries.begin(), r->entries.end(), item,
                       [](const Entry& e, uint32_t i) { return e.item < i; });
  if (it == r->entries.end() || it->item != item) return {};
  return {it->count};
}

const Record* UserExposure::Snapshot::User(uint32_t user) const {
  return UserIn(pages_, user);
}

UserExposure::Seen UserExposure::Snapshot::Find(uint32_t user,
                                                uint32_t item) const {
  return Lookup(User(user), item);
}

const Record* UserExposure::User(uint32_t user) const {
  return UserIn(pages_, user);
}

UserExposure::Seen UserExposure::Find(uint32_t user, uint32_t item) const {
  return Lookup(User(user), item);
}

void UserExposure::Set(uint32_t user, std::shared_ptr<const Record> record) {
  const uint32_t id = user >> kPageBits;
  auto it = pages_.find(id);
  if (it == pages_.end()) {
    if (record == nullptr) return;
    it = pages_.emplace(id, std::make_shared<Page>()).first;
  } else if (it->second.use_count() > 1) {
    it->second = std::make_shared<Page>(*it->second);  // a snapshot has it
  }
  std::shared_ptr<const Record>& slot = (*it->second)[user & (kPageSize - 1)];
  num_users_ += (record != nullptr) - (slot != nullptr);
  slot = std::move(record);
  if (slot == nullptr &&
      std::all_of(it->second->begin(), it->second->end(),
                  [](const auto& r) { return r == nullptr; })) {
    pages_.erase(it);
  }
}

void UserExposure::AddList(uint32_t user, std::span<const uint32_t> items) {
  if (items.empty() || max_items_ == 0) return;
  // A record no snapshot can see (its page and itself held once) changes in
  // place; otherwise copy on write, so snapshots keep the record they saw.
  auto page = pages_.find(user >> kPageBits);
  if (page != pages_.end() && page->second.use_count() == 1) {
    const auto& slot = (*page->second)[user & (kPageSize - 1)];
    if (slot != nullptr && slot.use_count() == 1) {
      Count(const_cast<Record&>(*slot), items);  // made non-const by us
      return;
    }
  }
  const Record* old = User(user);
  auto next = old != nullptr ? std::make_shared<Record>(*old)
                             : std::make_shared<Record>();
  Count(*next, items);
  Set(user, std::move(next));
}

void UserExposure::Count(Record& r, std::span<const uint32_t> items) const {
  const uint64_t list = ++r.lists;
  std::vector<Entry>& e = r.entries;
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
}

void UserExposure::Erase(uint32_t user) { Set(user, nullptr); }

std::shared_ptr<const UserExposure::Snapshot> UserExposure::MakeSnapshot()
    const {
  Pages pages;
  pages.reserve(pages_.size());
  for (const auto& [id, page] : pages_) pages.emplace(id, page);
  return std::make_shared<const Snapshot>(std::move(pages));
}

void UserExposure::AppendTo(std::string* out) const {
  std::vector<uint32_t> ids;
  ids.reserve(pages_.size());
  for (const auto& kv : pages_) ids.push_back(kv.first);
  std::sort(ids.begin(), ids.end());  // the same state, the same bytes
  coding::Put(out, static_cast<uint64_t>(num_users_));
  for (uint32_t id : ids) {
    const Page& page = *pages_.at(id);
    for (uint32_t slot = 0; slot < kPageSize; ++slot) {
      const Record* r = page[slot].get();
      if (r == nullptr) continue;
      coding::Put(out, (id << kPageBits) | slot);
      coding::Put(out, r->lists);
      coding::Put(out, static_cast<uint32_t>(r->entries.size()));
      for (const Entry& e : r->entries) {
        coding::Put(out, e.item);
        coding::Put(out, e.count);
        coding::Put(out, e.last_list);
      }
    }
  }
}

Status UserExposure::ReadFrom(std::string_view* in) {
  constexpr size_t kEntryBytes = 2 * sizeof(uint32_t) + sizeof(uint64_t);
  constexpr size_t kUserBytes = sizeof(uint32_t) * 2 + sizeof(uint64_t);
  uint64_t n = 0;
  if (!coding::Get(in, &n) || n > in->size() / kUserBytes) {
    return Status::Corruption("user exposure: truncated");
  }
  UserExposure read(max_items_);
  for (uint64_t k = 0; k < n; ++k) {
    uint32_t user = 0, size = 0;
    auto r = std::make_shared<Record>();
    if (!coding::Get(in, &user) || !coding::Get(in, &r->lists) ||
        !coding::Get(in, &size) || size > in->size() / kEntryBytes) {
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
    if (read.User(user) != nullptr) {
      return Status::Corruption("user exposure: a user twice");
    }
    read.Set(user, std::move(r));
  }
  *this = std::move(read);
  return Status::Ok();
}

}  // namespace cfrec::stream
