#include "checkpoint_frame.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

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

constexpr std::string_view kSealMark = "cfrec.sealed.crc32.1";

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32).
uint32_t Crc32(std::string_view data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8);
  }
  return crc ^ 0xFFFFFFFFu;
}

}  // namespace

std::string SealCheckpoint(std::string_view frame) {
  std::string out(kSealMark);
  const uint32_t crc = Crc32(frame);
  char b[sizeof(crc)];
  std::memcpy(b, &crc, sizeof(crc));
  out.append(b, sizeof(crc));
  out += frame;
  return out;
}

Result<std::string_view> UnsealCheckpoint(std::string_view blob) {
  if (!blob.starts_with(kSealMark)) return blob;
  blob.remove_prefix(kSealMark.size());
  uint32_t crc = 0;
  if (blob.size() < sizeof(crc)) {
    return Status::Corruption("checkpoint seal truncated");
  }
  std::memcpy(&crc, blob.data(), sizeof(crc));
  blob.remove_prefix(sizeof(crc));
  if (Crc32(blob) != crc) {
    return Status::Corruption("checkpoint checksum mismatch (" +
                              std::to_string(blob.size()) + " bytes)");
  }
  return blob;
}

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
