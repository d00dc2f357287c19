// The trainer's checkpoint frame and the serving window's checkpoint part,
// on intact and on damaged blobs.
#include "checkpoint_frame.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "serving_window.h"

namespace cfrec::learner {
namespace {

std::string U64(uint64_t v) {
  std::string out(sizeof(v), '\0');
  std::memcpy(out.data(), &v, sizeof(v));
  return out;
}

TEST(CheckpointFrameTest, SplitsWhatItFramed) {
  const std::string stream = "stream-part";
  const std::string with = FrameCheckpoint("learner", "window", &stream);
  auto parts = SplitCheckpoint(with);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ(parts->learner, "learner");
  EXPECT_EQ(parts->window, "window");
  ASSERT_TRUE(parts->stream.has_value());
  EXPECT_EQ(*parts->stream, stream);

  const std::string without = FrameCheckpoint("learner", "window", nullptr);
  parts = SplitCheckpoint(without);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->learner, "learner");
  EXPECT_EQ(parts->window, "window");
  EXPECT_FALSE(parts->stream.has_value());
}

TEST(CheckpointFrameTest, EveryTruncationIsCorruptionOrAShorterPart) {
  const std::string stream = "stream-part";
  const std::string blob = FrameCheckpoint("learner", "window", &stream);
  for (size_t n = 0; n < blob.size(); ++n) {
    auto parts = SplitCheckpoint(std::string_view(blob).substr(0, n));
    if (!parts.ok()) {
      EXPECT_EQ(parts.status().code(), StatusCode::kCorruption) << n;
      continue;
    }
    // Cut inside the last part: the frame cannot tell, the part's own
    // decoder does.
    EXPECT_EQ(parts->learner, "learner") << n;
  }
  // A size that runs past the end.
  EXPECT_TRUE(SplitCheckpoint(U64(uint64_t{1} << 63) + "x").status().code() ==
              StatusCode::kCorruption);
  EXPECT_TRUE(SplitCheckpoint("").status().code() == StatusCode::kCorruption);
}

// Found by fuzz/checkpoint_fuzz.cc: a damaged window part whose newest
// time is near INT64_MIN made `newest - window` overflow (undefined
// behaviour; UBSan aborts) when the window was restored.
TEST(ServingWindowTest, RestoresExtremeTimesWithoutOverflow) {
  constexpr int64_t kWindowMs = 3'600'000;
  for (const int64_t newest : {std::numeric_limits<int64_t>::min() + 1,
                               std::numeric_limits<int64_t>::max()}) {
    std::string bytes = U64(static_cast<uint64_t>(kWindowMs)) +
                        U64(static_cast<uint64_t>(newest)) + U64(1) +
                        U64(static_cast<uint64_t>(newest)) + U64(1) +
                        U64(static_cast<uint64_t>(newest));
    const uint32_t item = 0;
    bytes.append(reinterpret_cast<const char*>(&item), sizeof(item));
    ServingWindow window(kWindowMs);
    ASSERT_TRUE(window.Deserialize(bytes).ok());
    EXPECT_EQ(window.newest_ms(), newest);
    EXPECT_EQ(window.Candidates(), std::vector<uint32_t>{0});
    EXPECT_EQ(window.Popular(), std::vector<uint32_t>{0});
  }
}

// The seal's checksum catches any single flipped byte and any cut; a blob
// written before seals passes through whole.
TEST(CheckpointFrameTest, SealCatchesEveryFlippedByteAndCut) {
  const std::string stream = "stream";
  const std::string frame = FrameCheckpoint("learner part", "window", &stream);
  const std::string sealed = SealCheckpoint(frame);
  auto unsealed = UnsealCheckpoint(sealed);
  ASSERT_TRUE(unsealed.ok());
  EXPECT_EQ(*unsealed, frame);
  auto old = UnsealCheckpoint(frame);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(*old, frame);
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string damaged = sealed;
    damaged[i] ^= 0x01;
    auto u = UnsealCheckpoint(damaged);
    // A flip inside the mark makes the blob an unsealed frame, which the
    // frame decoder then rejects.
    if (u.ok()) {
      EXPECT_LT(i, 20u);
      EXPECT_FALSE(SplitCheckpoint(*u).ok()) << i;
    }
  }
  for (size_t n = 0; n < sealed.size(); ++n) {
    auto u = UnsealCheckpoint(std::string_view(sealed).substr(0, n));
    if (u.ok()) {
      EXPECT_FALSE(SplitCheckpoint(*u).ok()) << n;
    }
  }
}

}  // namespace
}  // namespace cfrec::learner
