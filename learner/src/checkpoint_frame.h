// The trainer's checkpoint blob, which holds the learner's LibTorch archive
// beside the LibTorch-free parts (serving window, stream model):
//
//   [u64 learner size][learner blob], then either
//   [serving window]                                 (no stream features), or
//   kStreamMark [u64 window size][serving window][stream model]
//
// Sizes are little-endian as the host writes them (the blob never leaves the
// machine's own store). The learner and the stream parts are written
// together so that both resume from the same applied seq.
//
// Kept apart from the trainer (and from LibTorch) so that the decoder can be
// fuzzed on its own (fuzz/checkpoint_fuzz.cc).
#ifndef CFREC_LEARNER_SRC_CHECKPOINT_FRAME_H_
#define CFREC_LEARNER_SRC_CHECKPOINT_FRAME_H_

#include <optional>
#include <string>
#include <string_view>

#include "cfrec/schemas/status.h"

namespace cfrec::learner {

// Views into a framed blob; valid while the blob lives.
struct CheckpointParts {
  std::string_view learner;
  std::string_view window;
  // The stream model's part; nullopt when written without stream features.
  std::optional<std::string_view> stream;
};

// `stream` null: a checkpoint without stream features.
std::string FrameCheckpoint(std::string_view learner, std::string_view window,
                            const std::string* stream);

// Splits a framed blob; Corruption when a size runs past the end.
Result<CheckpointParts> SplitCheckpoint(std::string_view blob);

// What the store holds: kSealMark, the CRC-32 of the frame (u32), then the
// frame. The decoders of the parts do not catch every damage (a flipped
// byte inside the learner's LibTorch archive restored without complaint);
// the checksum does.
std::string SealCheckpoint(std::string_view frame);
// The frame of a sealed blob; Corruption when the checksum does not match.
// A blob without the seal (written before seals) is returned whole.
Result<std::string_view> UnsealCheckpoint(std::string_view blob);

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_CHECKPOINT_FRAME_H_
