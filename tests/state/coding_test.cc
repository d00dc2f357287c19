// The store's byte encodings: PutVarintList writes exactly the bytes of
// PutVarint on the length and on each value, for every varint width.
#include "coding.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace cfrec::state::coding {
namespace {

template <typename T>
std::string OneByOne(const std::string& prefix, const std::vector<T>& list) {
  std::string out = prefix;
  PutVarint(&out, list.size());
  for (const T v : list) PutVarint(&out, v);
  return out;
}

template <typename T>
std::string AsList(const std::string& prefix, const std::vector<T>& list) {
  std::string out = prefix;
  PutVarintList(&out, std::span<const T>(list));
  return out;
}

TEST(Coding, VarintListHasTheBytesOfOneVarintPerValue) {
  const std::string prefix = "key\x01";
  const std::vector<uint16_t> u16 = {
      0, 1, 127, 128, 16383, 16384, std::numeric_limits<uint16_t>::max()};
  const std::vector<uint32_t> u32 = {
      0,        127,
      128,      (1u << 14) - 1,
      1u << 14, (1u << 21) - 1,
      1u << 21, (1u << 28) - 1,
      1u << 28, std::numeric_limits<uint32_t>::max()};
  const std::vector<uint64_t> u64 = {0, 1ull << 35, 1ull << 56, 1ull << 63,
                                     std::numeric_limits<uint64_t>::max()};
  EXPECT_EQ(AsList(prefix, u16), OneByOne(prefix, u16));
  EXPECT_EQ(AsList(prefix, u32), OneByOne(prefix, u32));
  EXPECT_EQ(AsList(prefix, u64), OneByOne(prefix, u64));
  // The widest values take their full width: 3, 5 and 10 bytes.
  EXPECT_EQ(AsList(std::string(), std::vector<uint16_t>{65535}).size(),
            1u + 3u);
  EXPECT_EQ(AsList(std::string(), std::vector<uint32_t>{~0u}).size(), 1u + 5u);
  EXPECT_EQ(AsList(std::string(), std::vector<uint64_t>{~0ull}).size(),
            1u + 10u);
}

TEST(Coding, EmptyAndLongListsKeepThePrefix) {
  EXPECT_EQ(AsList(std::string("ab"), std::vector<uint32_t>{}),
            std::string("ab") + '\0');
  std::vector<uint32_t> list(300);
  for (uint32_t i = 0; i < list.size(); ++i) list[i] = i * 7919u;
  const std::string got = AsList(std::string("p"), list);
  EXPECT_EQ(got, OneByOne(std::string("p"), list));
  // The length 300 is a two-byte varint.
  EXPECT_EQ(static_cast<uint8_t>(got[1]), 0x80 | (300 & 0x7f));
  EXPECT_EQ(static_cast<uint8_t>(got[2]), 300 >> 7);
}

}  // namespace
}  // namespace cfrec::state::coding
