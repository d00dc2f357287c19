// The service's own quality measurement: lists scored by the served
// snapshot on arrival, judged once their clicks are in.
#include "online_quality.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cfrec::learner {
namespace {

using state::AppliedEvent;

constexpr int64_t kMinute = 60 * 1000;

// A served model whose ranker prefers lower item ids; no stream features.
class LowIdsFirst final : public ModelSnapshot {
 public:
  uint64_t version() const override { return 1; }
  int64_t created_unix_ms() const override { return 0; }
  const TrainingStats& stats() const override { return stats_; }
  std::optional<uint32_t> FindUser(std::string_view) const override {
    return std::nullopt;
  }
  std::optional<uint32_t> FindItem(std::string_view) const override {
    return std::nullopt;
  }
  std::string ItemId(uint32_t item) const override {
    return std::to_string(item);
  }
  size_t num_users() const override { return 1000; }
  size_t num_items() const override { return 100; }
  int dim() const override { return 0; }
  std::span<const float> UserVector(uint32_t) const override { return {}; }
  std::span<const float> ItemVector(uint32_t) const override { return {}; }
  std::span<const uint32_t> CandidateItems() const override { return {}; }
  std::span<const uint32_t> PopularItems() const override { return {}; }
  std::span<const uint32_t> ClickedItems(uint32_t) const override { return {}; }
  void Score(uint32_t, std::span<const uint32_t> items,
             std::span<float> scores) const override {
    for (size_t k = 0; k < items.size(); ++k) scores[k] = -float(items[k]);
  }

 private:
  TrainingStats stats_;
};

AppliedEvent Impression(int64_t ts, std::vector<uint32_t> items,
                        std::vector<uint16_t> clicked = {}, uint32_t user = 1) {
  AppliedEvent e;
  e.kind = AppliedEvent::Kind::kImpression;
  e.user = user;
  e.ts_ms = ts;
  e.items = std::move(items);
  e.clicked = std::move(clicked);
  return e;
}

AppliedEvent Click(int64_t ts, std::vector<uint32_t> items, uint16_t pos) {
  AppliedEvent e;
  e.kind = AppliedEvent::Kind::kClick;
  e.user = 1;
  e.ts_ms = ts;
  e.items = std::move(items);
  e.clicked = {pos};
  return e;
}

TEST(OnlineQuality, JudgesListsWithTheirLateClicksAfterTheLabelWindow) {
  OnlineQuality q;
  LowIdsFirst served;
  const std::vector<uint32_t> list = {3, 1, 2};
  std::vector<AppliedEvent> events = {Impression(0, list),
                                      Click(5000, list, 1)};
  q.Observe(events, &served);
  TrainingStats stats;
  q.Fill(&stats);
  EXPECT_EQ(stats.online_lists, 0u);  // still inside its label window
  // Event time moves on: the list is judged with the click that came late.
  std::vector<AppliedEvent> later = {Impression(11 * kMinute, {7, 8})};
  q.Observe(later, &served);
  q.Fill(&stats);
  EXPECT_EQ(stats.online_lists, 1u);
  EXPECT_DOUBLE_EQ(stats.online_auc, 1.0);  // item 1 ranked first
  // The baseline had no counts yet: every item tied.
  EXPECT_DOUBLE_EQ(stats.online_baseline_auc, 0.5);
}

TEST(OnlineQuality, ScoresBeforeLearningSoTheBaselineSeesOnlyThePast) {
  OnlineQuality q;
  LowIdsFirst served;
  // Item 9 is clicked in every list: the served ranker puts it last, the
  // decayed-CTR baseline learns it from the earlier lists.
  std::vector<AppliedEvent> events;
  for (int i = 0; i < 50; ++i) {
    events.push_back(
        Impression(i * kMinute, {1, 2, 9}, {2}, static_cast<uint32_t>(i)));
  }
  events.push_back(Impression(200 * kMinute, {4, 5}));
  q.Observe(events, &served);
  TrainingStats stats;
  q.Fill(&stats);
  EXPECT_EQ(stats.online_lists, 50u);
  EXPECT_DOUBLE_EQ(stats.online_auc, 0.0);
  EXPECT_GT(stats.online_baseline_auc, 0.95);  // all but the first list
}

TEST(OnlineQuality, NothingIsScoredWithoutASnapshot) {
  OnlineQuality q;
  std::vector<AppliedEvent> events = {Impression(0, {1, 2}, {0}),
                                      Impression(60 * kMinute, {1, 2}, {0})};
  q.Observe(events, nullptr);
  TrainingStats stats;
  q.Fill(&stats);
  EXPECT_EQ(stats.online_lists, 0u);
}

}  // namespace
}  // namespace cfrec::learner
