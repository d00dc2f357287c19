#include "snapshot_impl.h"

#include <charconv>

#include "cfrec/state/event_store.h"

namespace cfrec::learner {
namespace {

// Without a dictionary, external ids are the decimal dense indices.
std::optional<uint32_t> ParseIndex(std::string_view id) {
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
  if (ec != std::errc() || end != id.data() + id.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<uint32_t> ModelSnapshotImpl::FindUser(
    std::string_view user_id) const {
  if (d_.ids != nullptr) return d_.ids->FindUser(user_id);
  return ParseIndex(user_id);
}

std::optional<uint32_t> ModelSnapshotImpl::FindItem(
    std::string_view item_id) const {
  if (d_.ids != nullptr) return d_.ids->FindItem(item_id);
  return ParseIndex(item_id);
}

std::string ModelSnapshotImpl::ItemId(uint32_t item) const {
  if (d_.ids != nullptr) return d_.ids->ItemId(item);
  return std::to_string(item);
}

std::span<const float> ModelSnapshotImpl::UserVector(uint32_t user) const {
  if (user >= d_.num_users) return {};
  const auto& v = d_.user_vectors.empty() ? d_.ranker.user : d_.user_vectors;
  return {v.data() + size_t{user} * d_.dim, static_cast<size_t>(d_.dim)};
}

std::span<const float> ModelSnapshotImpl::ItemVector(uint32_t item) const {
  if (item >= d_.num_items) return {};
  const auto& v = d_.item_vectors.empty() ? d_.ranker.item : d_.item_vectors;
  return {v.data() + size_t{item} * d_.dim, static_cast<size_t>(d_.dim)};
}

std::span<const uint32_t> ModelSnapshotImpl::ClickedItems(uint32_t user) const {
  if (user + 1 >= d_.clicked_offsets.size()) return {};
  return {d_.clicked_items.data() + d_.clicked_offsets[user],
          d_.clicked_items.data() + d_.clicked_offsets[user + 1]};
}

}  // namespace cfrec::learner
