// The trainer's checkpoint decoder on arbitrary blobs, as a damaged store
// would hand them back: the frame (learner/src/checkpoint_frame.h), the
// serving window and the stream model. The learner's own part is a LibTorch
// archive, decoded by LibTorch's reader; it is not fuzzed here (the fuzz
// build has no LibTorch). Besides not crashing, a blob that decodes frames
// back to the same bytes, and a window or stream model that decodes can be
// used (candidates, scores, one more event) and serializes to bytes that
// decode to the same state.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/state/applied_event.h"
#include "cfrec/stream/stream_model.h"
#include "checkpoint_frame.h"
#include "fuzz_check.h"
#include "serving_window.h"

namespace {

constexpr int64_t kWindowMs = int64_t{6} * 3600 * 1000;

void CheckWindow(std::string_view bytes) {
  cfrec::learner::ServingWindow window(kWindowMs);
  if (!window.Deserialize(bytes).ok()) return;
  const std::string saved = window.Serialize();
  cfrec::learner::ServingWindow again(kWindowMs);
  FUZZ_CHECK(again.Deserialize(saved).ok());
  FUZZ_CHECK(again.Serialize() == saved);
  FUZZ_CHECK(window.Popular().size() == window.Candidates().size());
  cfrec::state::AppliedEvent event;
  event.seq = 1;
  event.ts_ms = window.newest_ms() == INT64_MIN ? 0 : window.newest_ms();
  event.items = {0, 1, 2};
  event.clicked = {1};
  window.Observe({&event, 1});
  (void)window.Candidates();
}

void CheckStream(std::string_view bytes) {
  cfrec::stream::StreamModel model;
  if (!model.Deserialize(bytes).ok()) return;
  const std::string saved = model.Serialize();
  cfrec::stream::StreamModel again;
  FUZZ_CHECK(again.Deserialize(saved).ok());
  FUZZ_CHECK(again.Serialize() == saved);
  const auto scorer = model.MakeScorer();
  const std::vector<uint32_t> items = {0, 1, 2, 3};
  std::vector<float> scores(items.size());
  const std::vector<uint32_t> clicked = {1};
  scorer->ScoreItems(items, clicked, {}, scores);
  const std::vector<uint16_t> positions = {2};
  model.OnImpression(7, scorer->now_ms(), items, positions, {}, {});
  model.OnClick(7, scorer->now_ms(), items, 0);
  (void)model.Stats();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view blob(reinterpret_cast<const char*>(data), size);
  auto parts = cfrec::learner::SplitCheckpoint(blob);
  if (!parts.ok()) return 0;
  const std::string stream(parts->stream.value_or(""));
  FUZZ_CHECK(cfrec::learner::FrameCheckpoint(
                 parts->learner, parts->window,
                 parts->stream.has_value() ? &stream : nullptr) == blob);
  CheckWindow(parts->window);
  if (parts->stream.has_value()) CheckStream(*parts->stream);
  return 0;
}
