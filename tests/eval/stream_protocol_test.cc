#include "cfrec/eval/stream_protocol.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "cfrec/schemas/mind.h"

namespace cfrec::eval {
namespace {

// A news-like log: every hour two new items are born; an item's click
// probability peaks in its first hours and fades; one item in ten is a hit.
// Lists mix fresh and old items; most users appear once.
Dataset NewsLog(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<MindRow> rows;
  const int64_t hour = 3600 * 1000;
  for (int n = 0; n < 1500; ++n) {
    const int64_t ts = int64_t{1700000000000} + n * (hour / 30);
    const int now_hour = static_cast<int>((ts - 1700000000000) / hour);
    MindRow row;
    row.impression_id = std::to_string(n);
    row.user_id = "U" + std::to_string(rng() % 1000);
    row.ts_ms = ts;
    for (int k = 0; k < 8; ++k) {
      const int born = std::max(0, now_hour - static_cast<int>(rng() % 6));
      const int item = born * 2 + static_cast<int>(rng() % 2);
      const std::string id = "N" + std::to_string(item);
      if (std::find(row.items.begin(), row.items.end(), id) !=
          row.items.end()) {
        continue;
      }
      const double age =
          double(ts - int64_t{1700000000000} - born * hour) / hour;
      const double appeal = item % 10 == 0 ? 0.6 : 0.15;
      row.items.push_back(id);
      row.clicked.push_back(u(rng) < appeal * std::exp(-age / 2) ? 1 : 0);
    }
    rows.push_back(std::move(row));
  }
  return std::move(Dataset::FromRows(rows)).value();
}

TEST(StreamProtocol, StreamFeaturesBeatRandomAndMatchTheCounters) {
  const Dataset data = NewsLog(1);
  StreamProtocolOptions options;
  Result<StreamResult> r = RunStream(nullptr, data, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const double model = r->model.auc.value();
  EXPECT_GT(r->model.auc.count(), 300u);
  EXPECT_GT(model, r->baselines.at("random").auc.value() + 0.1);
  // The learned combination is at least about as good as the best single
  // decayed counter it is built from.
  EXPECT_GT(model, r->baselines.at(r->best_baseline).auc.value() - 0.02);
  EXPECT_FALSE(r->curve.empty());
  EXPECT_GT(r->refreshes, 1u);
}

TEST(StreamProtocol, DeterministicForASeed) {
  const Dataset data = NewsLog(2);
  StreamProtocolOptions options;
  options.seed = 7;
  Result<StreamResult> a = RunStream(nullptr, data, options);
  Result<StreamResult> b = RunStream(nullptr, data, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->model.auc.value(), b->model.auc.value());
  EXPECT_EQ(a->baselines.at("random").auc.value(),
            b->baselines.at("random").auc.value());
  EXPECT_EQ(a->weights, b->weights);
}

TEST(StreamProtocol, OffWithoutARankerIsAnError) {
  const Dataset data = NewsLog(3);
  StreamProtocolOptions options;
  options.stream_features = false;
  EXPECT_FALSE(RunStream(nullptr, data, options).ok());
}

}  // namespace
}  // namespace cfrec::eval
