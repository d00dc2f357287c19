// The stream model's checkpoint part, damaged: found by
// fuzz/checkpoint_fuzz.cc.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cfrec/stream/stream_model.h"

namespace cfrec::stream {
namespace {

constexpr int64_t kStartMs = 1'700'000'000'000;

StreamModel Trained() {
  StreamModel m;
  int64_t t = kStartMs;
  for (uint32_t i = 0; i < 50; ++i, t += 20'000) {
    const std::vector<uint32_t> items = {i % 7, (i + 2) % 7, (i + 4) % 7};
    const std::vector<uint16_t> clicked = {static_cast<uint16_t>(i % 3)};
    m.OnImpression(i % 5, t, items, clicked, {}, {});
  }
  return m;
}

// Serialize() begins with a u32 format, then the item counters: the clock
// (i64 ms), then the global counts, whose first field is their time.
std::string WithTimeAt(std::string blob, size_t offset, int64_t ms) {
  std::memcpy(blob.data() + offset, &ms, sizeof(ms));
  return blob;
}

// A time near INT64_MIN in the counters made the first decay after the
// restore compute `now - updated` with signed overflow (undefined
// behaviour; UBSan aborts). Such a blob is now Corruption, and the model
// keeps its state.
TEST(StreamRestoreTest, TimesOutsideEventTimeAreCorruption) {
  const StreamModel trained = Trained();
  const std::string blob = trained.Serialize();
  constexpr size_t kClock = sizeof(uint32_t);
  constexpr size_t kGlobalTime = kClock + sizeof(int64_t);
  for (const auto& [offset, ms] : std::vector<std::pair<size_t, int64_t>>{
           {kClock, std::numeric_limits<int64_t>::min() + 271'875'000'000},
           {kClock, std::numeric_limits<int64_t>::max()},
           {kGlobalTime, -2},
           {kGlobalTime, std::numeric_limits<int64_t>::min()}}) {
    StreamModel m = Trained();
    const Status s = m.Deserialize(WithTimeAt(blob, offset, ms));
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << offset << " " << ms;
    EXPECT_EQ(m.Serialize(), blob);
    const std::vector<uint32_t> items = {1, 2};
    m.OnImpression(1, kStartMs + 3'600'000, items, {}, {}, {});
  }
  // An intact blob restores the same state.
  StreamModel m;
  ASSERT_TRUE(m.Deserialize(blob).ok());
  EXPECT_EQ(m.Serialize(), blob);
}

}  // namespace
}  // namespace cfrec::stream
