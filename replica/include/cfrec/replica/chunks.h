// Chunks: a model image cut into Kafka messages under the broker's message
// limit, each with its sequence number and CRC32C, and the whole image's
// size and CRC32C in every chunk.
//
// Keys (the models topic is compacted, so each key keeps only its latest
// message): a full image goes to one of two slots, alternately, so the
// newest complete full image is never overwritten while its successor is
// being written; a delta's key names the slot of the full image it follows
// and its place after it:
//   full/<slot>/<chunk>            e.g. full/0/3
//   delta/<slot>/<n>/<chunk>       n = 1, 2, ... after that slot's full
// After compaction the topic holds, in log order, at most two full images
// and the deltas written after each; a replica that reads it from the start
// rebuilds the newest full image followed by its deltas. Stale messages
// that compaction keeps (a higher chunk or delta number from an earlier
// round of the same slot) carry other versions and are ignored.
#ifndef CFREC_REPLICA_CHUNKS_H_
#define CFREC_REPLICA_CHUNKS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/replica/model_codec.h"
#include "cfrec/schemas/status.h"

namespace cfrec::replica {

// Default chunk payload: well under Kafka's default message limit (1 MB).
inline constexpr size_t kDefaultChunkBytes = 512 * 1024;

struct ChunkHeader {
  ImageKind kind = ImageKind::kFull;
  uint8_t slot = 0;
  uint64_t version = 0;
  uint64_t base_version = 0;  // deltas
  uint32_t index = 0;         // 0 .. count-1
  uint32_t count = 0;
  uint64_t total_bytes = 0;  // of the whole image
  uint32_t total_crc = 0;    // CRC32C of the whole image
};

struct ChunkMessage {
  std::string key;
  std::string value;
};

// Cuts `image` (an EncodeModel result) into messages. `delta_number` is
// the delta's place after its slot's full image (ignored for full images).
std::vector<ChunkMessage> MakeChunks(std::string_view image, uint8_t slot,
                                     uint32_t delta_number,
                                     size_t chunk_bytes = kDefaultChunkBytes);

// Parses and checks one message: its own CRC32C, sizes, and that the key
// agrees with the header. `payload` views into `value`.
Result<ChunkHeader> ParseChunk(std::string_view key, std::string_view value,
                               std::string_view* payload);

// Reassembles images from chunks in log order. An image is complete when
// chunks 0..count-1 of one (kind, version) arrived in order and the whole
// image's size and CRC32C match; anything else (a missing, repeated or
// out-of-order chunk, a damaged one, another image starting before one is
// complete) drops the image being assembled and is counted. Not
// thread-safe.
class Assembler {
 public:
  struct Image {
    ChunkHeader header;
    std::string bytes;
  };
  struct Stats {
    uint64_t chunks = 0;           // accepted into an image
    uint64_t images = 0;           // completed
    uint64_t rejected_chunks = 0;  // damaged, or out of sequence
    uint64_t dropped_images = 0;   // started and never completed
  };

  // Adds one message; returns an image when this chunk completed one.
  std::optional<Image> Add(std::string_view key, std::string_view value);
  const Stats& stats() const { return stats_; }
  const std::string& last_error() const { return last_error_; }

 private:
  void Drop(const std::string& why);

  std::optional<ChunkHeader> current_;  // the image being assembled
  std::string bytes_;
  uint32_t next_index_ = 0;
  Stats stats_;
  std::string last_error_;
};

}  // namespace cfrec::replica

#endif  // CFREC_REPLICA_CHUNKS_H_
