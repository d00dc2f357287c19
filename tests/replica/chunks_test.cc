// Chunk framing: an image comes back only when every chunk of it arrived
// in order and undamaged; truncated, corrupt, missing, repeated and
// out-of-order chunks are rejected and never make an image.
#include "cfrec/replica/chunks.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "cfrec/replica/crc32c.h"

namespace cfrec::replica {
namespace {

// A delta image header (the chunker reads kind and versions from it)
// followed by `size` pseudo-random bytes.
std::string FakeImage(size_t size, uint64_t version, bool full = false) {
  std::string image;
  auto put = [&](auto v) {
    image.append(reinterpret_cast<const char*>(&v), sizeof(v));
  };
  put(uint32_t{0x4d524643});
  put(uint16_t{1});
  put(uint8_t{full ? uint8_t{1} : uint8_t{2}});
  put(uint8_t{0});
  put(version);
  put(full ? uint64_t{0} : version - 1);
  put(int64_t{0});
  put(int64_t{0});
  put(uint64_t{0});
  put(uint64_t{0});
  put(int32_t{0});
  std::mt19937 rng(static_cast<unsigned>(version));
  while (image.size() < size) image.push_back(static_cast<char>(rng()));
  return image;
}

std::vector<Assembler::Image> Feed(Assembler& a,
                                   const std::vector<ChunkMessage>& chunks) {
  std::vector<Assembler::Image> out;
  for (const auto& c : chunks) {
    if (auto image = a.Add(c.key, c.value)) out.push_back(std::move(*image));
  }
  return out;
}

TEST(Crc32cTest, KnownValues) {
  // RFC 3720 B.4 test vectors.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62a8ab43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(Crc32c(ascending), 0x46dd794eu);
  EXPECT_EQ(Crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(Crc32c("56789", Crc32c("1234")), 0xe3069283u);
}

TEST(ChunksTest, RoundTripUnderTheLimit) {
  const std::string image = FakeImage(10'000, 5, true);
  const auto chunks = MakeChunks(image, 1, 0, 1'000);
  ASSERT_EQ(chunks.size(), 10u);
  EXPECT_EQ(chunks[0].key, "full/1/0");
  EXPECT_EQ(chunks[9].key, "full/1/9");
  for (const auto& c : chunks) EXPECT_LE(c.value.size(), 1'000u + 64);
  Assembler a;
  const auto images = Feed(a, chunks);
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].bytes, image);
  EXPECT_EQ(images[0].header.version, 5u);
  EXPECT_EQ(images[0].header.kind, ImageKind::kFull);
  EXPECT_EQ(a.stats().rejected_chunks, 0u);
  const auto delta = MakeChunks(FakeImage(2'500, 6), 1, 3, 1'000);
  EXPECT_EQ(delta[2].key, "delta/1/3/2");
}

TEST(ChunksTest, TruncatedChunkIsRejected) {
  const std::string image = FakeImage(5'000, 9);
  auto chunks = MakeChunks(image, 0, 1, 1'000);
  chunks[2].value.pop_back();
  Assembler a;
  EXPECT_TRUE(Feed(a, chunks).empty());
  EXPECT_GE(a.stats().rejected_chunks, 1u);
  EXPECT_EQ(a.stats().dropped_images, 1u);
}

TEST(ChunksTest, CorruptByteIsRejected) {
  const std::string image = FakeImage(5'000, 9);
  for (size_t where : {size_t{0}, size_t{7}, size_t{40}, size_t{500}}) {
    auto chunks = MakeChunks(image, 0, 1, 1'000);
    chunks[1].value[where] ^= 0x10;
    Assembler a;
    EXPECT_TRUE(Feed(a, chunks).empty()) << "byte " << where;
    EXPECT_GE(a.stats().rejected_chunks, 1u);
  }
}

TEST(ChunksTest, OutOfOrderMissingAndRepeatedChunks) {
  const std::string image = FakeImage(5'000, 9);
  const auto chunks = MakeChunks(image, 0, 1, 1'000);
  {
    auto swapped = chunks;
    std::swap(swapped[1], swapped[2]);
    Assembler a;
    EXPECT_TRUE(Feed(a, swapped).empty());
    EXPECT_GE(a.stats().rejected_chunks, 1u);
  }
  {
    auto missing = chunks;
    missing.erase(missing.begin() + 3);
    Assembler a;
    EXPECT_TRUE(Feed(a, missing).empty());
  }
  {
    auto last_missing = chunks;
    last_missing.pop_back();
    Assembler a;
    EXPECT_TRUE(Feed(a, last_missing).empty());
  }
  {
    // A producer's retry repeats the chunk just sent: ignored.
    auto repeated = chunks;
    repeated.insert(repeated.begin() + 2, chunks[1]);
    Assembler a;
    const auto images = Feed(a, repeated);
    ASSERT_EQ(images.size(), 1u);
    EXPECT_EQ(images[0].bytes, image);
  }
  {
    // An older chunk again is out of sequence.
    auto old = chunks;
    old.insert(old.begin() + 3, chunks[0]);
    Assembler a;
    EXPECT_TRUE(Feed(a, old).empty());
  }
}

TEST(ChunksTest, AnImageInterruptedByAnotherIsDropped) {
  // A trainer that died after writing part of version 9, then version 10.
  const auto first = MakeChunks(FakeImage(5'000, 9), 0, 1, 1'000);
  const auto second = MakeChunks(FakeImage(3'000, 10), 1, 1, 1'000);
  std::vector<ChunkMessage> log(first.begin(), first.begin() + 3);
  log.insert(log.end(), second.begin(), second.end());
  Assembler a;
  const auto images = Feed(a, log);
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].header.version, 10u);
  EXPECT_EQ(a.stats().dropped_images, 1u);
}

TEST(ChunksTest, WholeImageChecksumIsChecked) {
  // Chunks that are each intact but belong to two images with the same
  // version and size (a corrupt publisher): the whole image's CRC32C fails.
  const auto a_chunks = MakeChunks(FakeImage(3'000, 9), 0, 1, 1'000);
  std::string other = FakeImage(3'000, 9);
  other[2'500] ^= 1;
  const auto b_chunks = MakeChunks(other, 0, 1, 1'000);
  // Forge chunk 2 of `b` with `a`'s total CRC and a valid chunk CRC.
  ChunkMessage forged = b_chunks[2];
  std::string& v = forged.value;
  const size_t total_crc_at = 4 + 4 + 8 + 8 + 4 + 4 + 8;
  std::memcpy(v.data() + total_crc_at, a_chunks[0].value.data() + total_crc_at,
              4);
  const uint32_t crc = Crc32c(std::string_view(v).substr(0, v.size() - 4));
  std::memcpy(v.data() + v.size() - 4, &crc, 4);
  Assembler a;
  EXPECT_TRUE(Feed(a, {a_chunks[0], a_chunks[1], forged}).empty());
  EXPECT_EQ(a.stats().dropped_images, 1u);
}

TEST(ChunksTest, KeyMustMatchTheHeader) {
  auto chunks = MakeChunks(FakeImage(500, 9), 0, 1, 1'000);
  Assembler a;
  EXPECT_FALSE(a.Add("full/0/0", chunks[0].value).has_value());
  EXPECT_FALSE(a.Add("delta/1/1/0", chunks[0].value).has_value());
  EXPECT_EQ(a.stats().rejected_chunks, 2u);
  EXPECT_TRUE(a.Add(chunks[0].key, chunks[0].value).has_value());
}

TEST(ChunksTest, RandomDamageNeverMakesAnImage) {
  const std::string image = FakeImage(4'000, 11);
  std::mt19937 rng(5);
  for (int round = 0; round < 500; ++round) {
    auto chunks = MakeChunks(image, 1, 2, 700);
    auto& victim = chunks[rng() % chunks.size()].value;
    if (round % 3 == 0) {
      victim.resize(rng() % victim.size());
    } else {
      victim[rng() % victim.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    Assembler a;
    EXPECT_TRUE(Feed(a, chunks).empty()) << "round " << round;
  }
}

}  // namespace
}  // namespace cfrec::replica
