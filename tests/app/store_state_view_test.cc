// The dashboard's view of a real EventStore: a user's clicks and the dead
// letters, newest first.
#include "store_state_view.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/temp_dir.h"

namespace cfrec::app {
namespace {

class StoreStateViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = state::EventStore::Open(dir_.path(), state::StoreOptions{});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  void Apply(const std::vector<std::string>& payloads) {
    std::vector<state::ConsumedMessage> batch;
    for (const std::string& p : payloads) {
      batch.push_back({"events", 0, next_offset_++, "", p});
    }
    auto applied = store_->ApplyBatch(batch);
    ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  }

  cfrec::testing::TempDir dir_;
  std::unique_ptr<state::EventStore> store_;
  int64_t next_offset_ = 0;
};

TEST_F(StoreStateViewTest, ClicksNewestFirstAcrossImpressions) {
  Apply({SerializeEvent(ImpressionEvent{
             "i1", "alice", 1000, {"a", "b", "c"}, {"a", "c"}, {}}),
         SerializeEvent(
             ImpressionEvent{"i2", "alice", 5000, {"d", "e"}, {"e"}, {}}),
         SerializeEvent(ImpressionEvent{"i3", "bob", 3000, {"a"}, {"a"}, {}})});
  const StoreStateView view(store_.get());
  auto clicks = view.RecentClicks("alice", 10);
  ASSERT_TRUE(clicks.ok()) << clicks.status().ToString();
  ASSERT_EQ(clicks->size(), 3u);
  EXPECT_EQ((*clicks)[0].item_id, "e");
  EXPECT_EQ((*clicks)[0].impression_id, "i2");
  EXPECT_EQ((*clicks)[0].ts_ms, 5000);
  EXPECT_EQ((*clicks)[1].item_id, "c");
  EXPECT_EQ((*clicks)[2].item_id, "a");
  EXPECT_EQ((*clicks)[2].ts_ms, 1000);

  auto two = view.RecentClicks("alice", 2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->size(), 2u);
  EXPECT_TRUE(view.RecentClicks("nobody", 5).status().IsNotFound());
}

// A user with more impressions than the view reads at most: the clicks shown
// are those of the newest impressions, wherever the user log keeps them (the
// open window or closed windows' rows).
TEST(StoreStateViewLongHistory, ClicksOfTheNewestImpressionsOfALongHistory) {
  cfrec::testing::TempDir dir;
  state::StoreOptions options;
  options.user_log_window = 1000;
  auto store = state::EventStore::Open(dir.path(), options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  constexpr int kImpressions =
      static_cast<int>(StoreStateView::kMaxImpressions) + 50;
  int64_t offset = 0;
  std::vector<std::string> payloads;
  for (int i = 0; i < kImpressions; ++i) {
    ImpressionEvent e{
        "i" + std::to_string(i), "alice", 1000 + i, {"a", "b"}, {}, {}};
    // Clicks on the oldest impressions and on the three newest.
    if (i < 5 || i >= kImpressions - 3) e.clicks = {"b"};
    payloads.push_back(SerializeEvent(e));
    if (i % 7 == 0) {
      payloads.push_back(SerializeEvent(ImpressionEvent{
          "o" + std::to_string(i), "bob", 1000 + i, {"a"}, {"a"}, {}}));
    }
    if (payloads.size() >= 500 || i + 1 == kImpressions) {
      std::vector<state::ConsumedMessage> batch;
      for (const std::string& p : payloads) {
        batch.push_back({"events", 0, offset++, "", p});
      }
      auto applied = (*store)->ApplyBatch(batch);
      ASSERT_TRUE(applied.ok()) << applied.status().ToString();
      payloads.clear();
    }
  }
  const StoreStateView view(store->get());
  auto clicks = view.RecentClicks("alice", 4);
  ASSERT_TRUE(clicks.ok()) << clicks.status().ToString();
  ASSERT_EQ(clicks->size(), 3u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ((*clicks)[k].impression_id,
              "i" + std::to_string(kImpressions - 1 - k));
    EXPECT_EQ((*clicks)[k].item_id, "b");
    EXPECT_EQ((*clicks)[k].ts_ms, 1000 + kImpressions - 1 - k);
  }
}

TEST_F(StoreStateViewTest, DeadLettersNewestFirstWithTheirFirstBytes) {
  Apply({"not json at all", std::string(500, '{'),
         SerializeEvent(ImpressionEvent{"i1", "alice", 1000, {"a"}, {}, {}}),
         "[1, 2, 3]"});
  const StoreStateView view(store_.get());
  auto letters = view.RecentDeadLetters(2, 10);
  ASSERT_TRUE(letters.ok()) << letters.status().ToString();
  ASSERT_EQ(letters->size(), 2u);
  EXPECT_EQ((*letters)[0].seq, 3u);
  EXPECT_EQ((*letters)[0].payload_head, "[1, 2, 3]");
  EXPECT_EQ((*letters)[0].offset, 3);
  EXPECT_FALSE((*letters)[0].reason.empty());
  EXPECT_EQ((*letters)[1].seq, 2u);
  EXPECT_EQ((*letters)[1].payload_head, std::string(10, '{'));
  EXPECT_EQ((*letters)[1].payload_bytes, 500u);

  auto all = view.RecentDeadLetters(100, 200);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ(all->back().payload_head, "not json at all");
}

}  // namespace
}  // namespace cfrec::app
