// Little-endian fixed-width encodings for the stream state's checkpoint part.
#ifndef CFREC_STREAM_SRC_CODING_H_
#define CFREC_STREAM_SRC_CODING_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace cfrec::stream::coding {

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}

template <typename T>
bool Get(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace cfrec::stream::coding

#endif  // CFREC_STREAM_SRC_CODING_H_
