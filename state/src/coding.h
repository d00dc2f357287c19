// Byte encodings for keys and values. Keys use big-endian fixed-width
// integers so that RocksDB's bytewise order is numeric order; values use
// LEB128 varints to stay small.
#ifndef CFREC_STATE_SRC_CODING_H_
#define CFREC_STATE_SRC_CODING_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace cfrec::state::coding {

inline void EncodeBE32(char* b, uint32_t v) {
  b[0] = static_cast<char>(v >> 24);
  b[1] = static_cast<char>(v >> 16);
  b[2] = static_cast<char>(v >> 8);
  b[3] = static_cast<char>(v);
}

inline void PutBE32(std::string* out, uint32_t v) {
  char b[4];
  EncodeBE32(b, v);
  out->append(b, 4);
}

inline void PutBE64(std::string* out, uint64_t v) {
  PutBE32(out, static_cast<uint32_t>(v >> 32));
  PutBE32(out, static_cast<uint32_t>(v));
}

inline uint32_t GetBE32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) |
         (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

inline uint64_t GetBE64(const char* p) {
  return (uint64_t{GetBE32(p)} << 32) | GetBE32(p + 4);
}

// Writes the varint of `v` at `p` (at most 10 bytes); returns its end.
inline char* EncodeVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

inline void PutVarint(std::string* out, uint64_t v) {
  char b[10];
  out->append(b, EncodeVarint(b, v));
}

// Appends the list's length, then each value, as varints: the same bytes
// as PutVarint on each, with one resize of `out` for the whole list instead
// of a capacity check per byte.
template <typename T>
void PutVarintList(std::string* out, std::span<const T> list) {
  // A negative value would sign-extend to 10 bytes, past kMaxBytes.
  static_assert(std::is_unsigned_v<T>);
  constexpr size_t kMaxBytes = (sizeof(T) * 8 + 6) / 7;
  const size_t old = out->size();
  out->resize(old + 10 + kMaxBytes * list.size());
  char* p = EncodeVarint(out->data() + old, list.size());
  for (const T v : list) p = EncodeVarint(p, v);
  out->resize(static_cast<size_t>(p - out->data()));
}

inline void PutFixed64(std::string* out, uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);  // little-endian hosts only (x86-64, aarch64)
  out->append(b, 8);
}

inline uint64_t GetFixed64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline void PutLengthPrefixed(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

// Reads from a string_view, tracking failure instead of throwing.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (in_.empty()) return Fail();
      const auto byte = static_cast<unsigned char>(in_.front());
      in_.remove_prefix(1);
      result |= uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) {
        *v = result;
        return true;
      }
    }
    return Fail();
  }
  template <typename T>
  bool VarintAs(T* v) {
    uint64_t x;
    if (!Varint(&x)) return false;
    *v = static_cast<T>(x);
    return static_cast<uint64_t>(*v) == x || Fail();
  }
  bool LengthPrefixed(std::string_view* s) {
    uint64_t n;
    if (!Varint(&n) || n > in_.size()) return Fail();
    *s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }
  bool ok() const { return ok_; }

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace cfrec::state::coding

#endif  // CFREC_STATE_SRC_CODING_H_
