#include "checkpoint_frame.h"

#include <cstdint>
#include <cstring>

namespace cfrec::learner {
namespace {

constexpr std::string_view kStreamMark = "cfrec.stream.1";

void PutSize(std::string* out, uint64_t size) {
  char b[sizeof(size)];
  std::memcpy(b, &size, sizeof(size));
  out->append(b, sizeof(size));
}

bool GetSize(std::string_view* in, uint64_t* size) {
  if (in->size() < sizeof(*size)) return false;
  std::memcpy(size, in->data(), sizeof(*size));
  in->remove_prefix(sizeof(*size));
  return true;
}

}  // namespace

std::string FrameCheckpoint(std::string_view learner, std::string_view window,
                            const std::string* stream) {
  std::string out;
  PutSize(&out, learner.size());
  out += learner;
  if (stream == nullptr) {
    out += window;
    return out;
  }
  out += kStreamMark;
  PutSize(&out, window.size());
  out += window;
  out += *stream;
  return out;
}

Result<CheckpointParts> SplitCheckpoint(std::string_view rest) {
  CheckpointParts parts;
  uint64_t size = 0;
  if (!GetSize(&rest, &size)) return Status::Corruption("checkpoint frame");
  if (rest.size() < size) {
    return Status::Corruption("checkpoint frame truncated");
  }
  parts.learner = rest.substr(0, size);
  rest.remove_prefix(size);
  if (!rest.starts_with(kStreamMark)) {
    parts.window = rest;  // written without stream features
    return parts;
  }
  rest.remove_prefix(kStreamMark.size());
  uint64_t window_size = 0;
  if (!GetSize(&rest, &window_size)) {
    return Status::Corruption("checkpoint frame: stream part truncated");
  }
  if (rest.size() < window_size) {
    return Status::Corruption("checkpoint frame: window truncated");
  }
  parts.window = rest.substr(0, window_size);
  parts.stream = rest.substr(window_size);
  return parts;
}

}  // namespace cfrec::learner
