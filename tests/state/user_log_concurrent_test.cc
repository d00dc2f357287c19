// The impression indexes (state/src/impression_index.h) read while the store
// is written.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cfrec/state/event_store.h"
#include "common/temp_dir.h"

namespace cfrec::state {
namespace {

std::vector<ConsumedMessage> Messages(const std::vector<std::string>& payloads,
                                      int64_t* offset) {
  std::vector<ConsumedMessage> out;
  for (const auto& p : payloads) {
    out.push_back({"events", 0, (*offset)++, "", p});
  }
  return out;
}

// Readers on another thread while batches close windows: every answer (by
// user, and of all users) is in order, names each impression once, and holds
// at least what was published before the read began (a window closed during the
// read is seen in memory or in its rows, never in neither).
TEST(UserLogConcurrent, ReadersSeeEveryPublishedImpressionOnce) {
  cfrec::testing::TempDir dir;
  StoreOptions options;
  options.user_log_window = 3;
  auto store = EventStore::Open(dir.path(), options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EventStore& s = **store;
  std::vector<std::vector<std::string>> kept;
  // All impressions of one user, so that every read covers every window.
  std::atomic<size_t> published{0};
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!done.load()) {
      const size_t before = published.load();
      const auto user = s.FindUser("u");
      if (!user.has_value()) continue;
      auto got = s.UserImpressions(*user, 0, 1 << 30, 1 << 20);
      if (!got.ok()) {
        ++bad;
        continue;
      }
      auto all = s.ImpressionsInWindow(0, 1 << 30, 1 << 20);
      if (!all.ok()) {
        ++bad;
        continue;
      }
      std::vector<std::string> ids, all_ids;
      for (const auto& imp : *got) ids.push_back(imp.impression_id);
      for (const auto& imp : *all) all_ids.push_back(imp.impression_id);
      for (const auto* list : {&ids, &all_ids}) {
        std::vector<std::string> sorted = *list;
        std::sort(sorted.begin(), sorted.end());
        if (list->size() < before || *list != sorted ||
            std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
          ++bad;
        }
      }
    }
  });
  int64_t offset = 0;
  for (int batch = 0; batch < 300; ++batch) {
    std::vector<std::string> payloads;
    for (int k = 0; k < 2; ++k) {
      ImpressionEvent e;
      // Fixed width, so that id order is arrival order (all at one ts).
      char id[16];
      std::snprintf(id, sizeof(id), "i%06d", batch * 2 + k);
      e.impression_id = id;
      e.user_id = "u";
      e.ts_ms = 5;
      e.items = {"a"};
      payloads.push_back(SerializeEvent(e));
    }
    kept.push_back(std::move(payloads));
    ASSERT_TRUE(s.ApplyBatch(Messages(kept.back(), &offset)).ok());
    published.store(static_cast<size_t>(batch + 1) * 2);
  }
  done.store(true);
  reader.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace cfrec::state
