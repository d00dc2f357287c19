#include "cfrec/replica/chunks.h"

#include <algorithm>

#include "cfrec/replica/crc32c.h"
#include "wire.h"

namespace cfrec::replica {
namespace {

constexpr uint32_t kChunkMagic = 0x434d4643;  // "CFMC"
constexpr uint8_t kChunkFormat = 1;
// magic, format, kind, slot, reserved, version, base, index, count, total
// bytes, total crc, payload length; the payload; then the chunk's CRC32C.
constexpr size_t kHeaderBytes = 4 + 4 + 8 + 8 + 4 + 4 + 8 + 4 + 4;
// Images larger than this are refused (a damaged size field).
constexpr uint64_t kMaxImageBytes = uint64_t{1} << 34;

std::string KeyOf(const ChunkHeader& h, uint32_t delta_number) {
  std::string key = h.kind == ImageKind::kFull ? "full/" : "delta/";
  key += std::to_string(h.slot);
  if (h.kind == ImageKind::kDelta) key += "/" + std::to_string(delta_number);
  key += "/" + std::to_string(h.index);
  return key;
}

}  // namespace

std::vector<ChunkMessage> MakeChunks(std::string_view image, uint8_t slot,
                                     uint32_t delta_number,
                                     size_t chunk_bytes) {
  std::vector<ChunkMessage> out;
  auto header = ReadImageHeader(image);
  ChunkHeader h;
  if (header.ok()) {
    h.kind = header->kind;
    h.version = header->version;
    h.base_version = header->base_version;
  }
  h.slot = slot;
  chunk_bytes = std::max<size_t>(chunk_bytes, 1);
  h.count = static_cast<uint32_t>(
      std::max<size_t>(1, (image.size() + chunk_bytes - 1) / chunk_bytes));
  h.total_bytes = image.size();
  h.total_crc = Crc32c(image);
  for (uint32_t i = 0; i < h.count; ++i) {
    h.index = i;
    const std::string_view payload =
        image.substr(size_t{i} * chunk_bytes, chunk_bytes);
    ChunkMessage m;
    m.key = KeyOf(h, delta_number);
    std::string& v = m.value;
    v.reserve(kHeaderBytes + payload.size() + 4);
    wire::Put(&v, kChunkMagic);
    wire::Put(&v, kChunkFormat);
    wire::Put(&v, static_cast<uint8_t>(h.kind));
    wire::Put(&v, h.slot);
    wire::Put(&v, uint8_t{0});
    wire::Put(&v, h.version);
    wire::Put(&v, h.base_version);
    wire::Put(&v, h.index);
    wire::Put(&v, h.count);
    wire::Put(&v, h.total_bytes);
    wire::Put(&v, h.total_crc);
    wire::Put(&v, static_cast<uint32_t>(payload.size()));
    v.append(payload);
    wire::Put(&v, Crc32c(v));
    out.push_back(std::move(m));
  }
  return out;
}

Result<ChunkHeader> ParseChunk(std::string_view key, std::string_view value,
                               std::string_view* payload) {
  if (value.size() < kHeaderBytes + 4) {
    return Status::Corruption("chunk: truncated");
  }
  uint32_t crc = 0;
  std::memcpy(&crc, value.data() + value.size() - 4, 4);
  if (Crc32c(value.substr(0, value.size() - 4)) != crc) {
    return Status::Corruption("chunk: checksum mismatch");
  }
  wire::Reader in(value.substr(0, value.size() - 4));
  ChunkHeader h;
  uint32_t magic = 0, length = 0;
  uint8_t format = 0, kind = 0, reserved = 0;
  in.Get(&magic);
  in.Get(&format);
  in.Get(&kind);
  in.Get(&h.slot);
  in.Get(&reserved);
  in.Get(&h.version);
  in.Get(&h.base_version);
  in.Get(&h.index);
  in.Get(&h.count);
  in.Get(&h.total_bytes);
  in.Get(&h.total_crc);
  in.Get(&length);
  if (magic != kChunkMagic || format != kChunkFormat) {
    return Status::Corruption("chunk: not a model chunk");
  }
  if ((kind != 1 && kind != 2) || h.slot > 1 || h.count == 0 ||
      h.index >= h.count || h.total_bytes > kMaxImageBytes ||
      length != in.left()) {
    return Status::Corruption("chunk: bad header");
  }
  h.kind = static_cast<ImageKind>(kind);
  in.GetBytes(length, payload);
  // The key is the publisher's; a message under another key (or a key
  // pointing at another slot) is not one of ours.
  const std::string prefix = std::string(kind == 1 ? "full/" : "delta/") +
                             std::to_string(h.slot) + "/";
  const std::string suffix = "/" + std::to_string(h.index);
  if (key.substr(0, prefix.size()) != prefix || key.size() < suffix.size() ||
      key.substr(key.size() - suffix.size()) != suffix) {
    return Status::Corruption("chunk: key '" + std::string(key) +
                              "' does not match its header");
  }
  return h;
}

void Assembler::Drop(const std::string& why) {
  if (current_.has_value()) ++stats_.dropped_images;
  current_.reset();
  bytes_.clear();
  bytes_.shrink_to_fit();
  next_index_ = 0;
  last_error_ = why;
}

std::optional<Assembler::Image> Assembler::Add(std::string_view key,
                                               std::string_view value) {
  std::string_view payload;
  auto parsed = ParseChunk(key, value, &payload);
  if (!parsed.ok()) {
    ++stats_.rejected_chunks;
    Drop(parsed.status().ToString());
    return std::nullopt;
  }
  const ChunkHeader& h = *parsed;
  if (current_.has_value() && h.index + 1 == next_index_ && h.index > 0 &&
      current_->kind == h.kind && current_->version == h.version &&
      current_->total_crc == h.total_crc) {
    return std::nullopt;  // the previous chunk again (a producer's retry)
  }
  if (h.index == 0) {
    if (current_.has_value()) Drop("an image started before one completed");
    current_ = h;
    bytes_.clear();
    bytes_.reserve(std::min<uint64_t>(h.total_bytes, 64 << 20));
    next_index_ = 0;
  } else if (!current_.has_value() || current_->kind != h.kind ||
             current_->version != h.version || current_->count != h.count ||
             current_->total_crc != h.total_crc || h.index != next_index_) {
    ++stats_.rejected_chunks;
    Drop("chunk " + std::to_string(h.index) + "/" + std::to_string(h.count) +
         " of version " + std::to_string(h.version) + " out of sequence");
    return std::nullopt;
  }
  if (bytes_.size() + payload.size() > h.total_bytes) {
    ++stats_.rejected_chunks;
    Drop("chunks longer than their image");
    return std::nullopt;
  }
  bytes_.append(payload);
  ++stats_.chunks;
  next_index_ = h.index + 1;
  if (next_index_ < h.count) return std::nullopt;
  if (bytes_.size() != h.total_bytes || Crc32c(bytes_) != h.total_crc) {
    Drop("image of version " + std::to_string(h.version) +
         " fails its checksum");
    return std::nullopt;
  }
  Image image{*current_, std::move(bytes_)};
  current_.reset();
  bytes_ = std::string();
  next_index_ = 0;
  ++stats_.images;
  return image;
}

}  // namespace cfrec::replica
