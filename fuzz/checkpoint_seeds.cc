// Writes the seed corpus of checkpoint_fuzz: framed checkpoint blobs as the
// trainer writes them, with and without stream features, over a small made-up
// stream. The learner's part is a placeholder (the fuzz target does not
// decode it). Usage: checkpoint_seeds DIR
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "cfrec/state/applied_event.h"
#include "cfrec/stream/stream_model.h"
#include "checkpoint_frame.h"
#include "serving_window.h"

namespace {

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  constexpr int64_t kMinute = 60'000;
  cfrec::learner::ServingWindow window(30 * kMinute);
  cfrec::stream::StreamModel stream;
  const std::string learner = "learner-archive-placeholder";
  int64_t t = 1'700'000'000'000;
  for (uint32_t n : {0u, 3u, 40u}) {
    for (uint32_t i = 0; i < n; ++i, t += kMinute / 3) {
      cfrec::state::AppliedEvent e;
      e.seq = i + 1;
      e.user = i % 7;
      e.ts_ms = t;
      e.items = {i % 11, (i + 3) % 11, (i + 5) % 11};
      e.clicked = {static_cast<uint16_t>(i % 3)};
      e.history = {(i + 1) % 11};
      window.Observe({&e, 1});
      stream.OnImpression(e.user, e.ts_ms, e.items, e.clicked, e.history, {});
    }
    const std::string suffix = std::to_string(n);
    const std::string stream_part = stream.Serialize();
    Write(dir + "/with_stream_" + suffix,
          cfrec::learner::FrameCheckpoint(learner, window.Serialize(),
                                          &stream_part));
    Write(
        dir + "/window_only_" + suffix,
        cfrec::learner::FrameCheckpoint(learner, window.Serialize(), nullptr));
  }
  return 0;
}
