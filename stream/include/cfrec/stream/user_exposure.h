// UserExposure: which items each user was shown, and how often, in recent
// lists. In a feed the same user is shown the same item again and again;
// an item passed over once is much less likely to be clicked the next time
// (on a week of a live news feed, 10.7% of first showings were clicked,
// 5.5% of second, 3.2% of third, 1.5% of later ones), so the count is a
// (user, item) feature of the stream model.
//
// Each user's record is immutable once published: an update replaces it
// (copy on write). Users live in pages of 64 ids, and a snapshot copies the
// map of page pointers; a page shared with a snapshot is copied (1 KiB)
// before it changes again. So a snapshot costs one pointer per 64 ids,
// serving reads it while the trainer goes on, and memory follows the ids in
// use, not the largest id. Bounded: a user's record is
// cut back to the `max_items_per_user` most recently shown items when it
// holds a quarter more than that (so the cut is paid once in many lists),
// and users are forgotten with the stream model's users.
//
// Thread-safety: none for the table (one owner, the trainer); snapshots are
// immutable and may be read from any thread.
#ifndef CFREC_STREAM_USER_EXPOSURE_H_
#define CFREC_STREAM_USER_EXPOSURE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cfrec/schemas/status.h"

namespace cfrec::stream {

class UserExposure {
 public:
  struct Entry {
    uint32_t item;
    uint32_t count;      // lists the item was shown in
    uint64_t last_list;  // the user's list counter when last shown
  };
  // What one (user, item) pair was shown: in `count` earlier lists.
  struct Seen {
    uint32_t count = 0;
  };
  // One user's entries, ascending by item.
  struct Record {
    std::vector<Entry> entries;
    uint64_t lists = 0;  // lists shown to the user so far
  };

  static constexpr uint32_t kPageBits = 6;
  static constexpr uint32_t kPageSize = uint32_t{1} << kPageBits;
  using Page = std::array<std::shared_ptr<const Record>, kPageSize>;
  using Pages = std::unordered_map<uint32_t, std::shared_ptr<const Page>>;

  // An immutable view of every user's record at one moment.
  class Snapshot {
   public:
    Snapshot() = default;
    explicit Snapshot(Pages pages) : pages_(std::move(pages)) {}
    // What earlier lists showed of `item` to `user`; none if unknown.
    Seen Find(uint32_t user, uint32_t item) const;
    // The user's record (null if unknown), for many lookups with Lookup.
    const Record* User(uint32_t user) const;
    // Every page (for the replicas' deltas: a page or record pointer that
    // did not change between two snapshots holds the same records).
    const Pages& pages() const { return pages_; }

   private:
    Pages pages_;
  };

  explicit UserExposure(size_t max_items_per_user = 256)
      : max_items_(max_items_per_user) {}

  // Counts one list shown to `user` (an item named twice counts once).
  void AddList(uint32_t user, std::span<const uint32_t> items);
  Seen Find(uint32_t user, uint32_t item) const;
  // Forgets the user.
  void Erase(uint32_t user);
  size_t num_users() const { return num_users_; }

  std::shared_ptr<const Snapshot> MakeSnapshot() const;

  // What `record` (null: none) says of `item`.
  static Seen Lookup(const Record* record, uint32_t item);

  // Checkpoint part.
  void AppendTo(std::string* out) const;
  Status ReadFrom(std::string_view* in);

 private:
  const Record* User(uint32_t user) const;
  // Counts one list into `r` and cuts it back to the bound.
  void Count(Record& r, std::span<const uint32_t> items) const;
  // Replaces the user's record (null: erase), copying the page first when
  // a snapshot shares it.
  void Set(uint32_t user, std::shared_ptr<const Record> record);

  size_t max_items_;
  // By user id >> kPageBits. A page whose use count is 1 is not in any
  // snapshot and may change in place.
  std::unordered_map<uint32_t, std::shared_ptr<Page>> pages_;
  size_t num_users_ = 0;
};

}  // namespace cfrec::stream

#endif  // CFREC_STREAM_USER_EXPOSURE_H_
