// Bearer-token authentication of the routes that change state
// (POST /v1/events). The service keeps only the SHA-256 of the token, never
// the token itself, and compares digests in constant time.
//
// Thread-safety: ApiToken is immutable after creation; every function here
// may be called from any thread.
#ifndef CFREC_SERVER_AUTH_H_
#define CFREC_SERVER_AUTH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cfrec/schemas/status.h"

namespace cfrec::server {

using Sha256Digest = std::array<uint8_t, 32>;

// SHA-256 (FIPS 180-4) of `data`.
Sha256Digest Sha256(std::string_view data);

// True if a == b. Reads every byte of both and folds the differences with
// OR; no branch depends on their contents, so the time taken does not say
// where (or whether) they differ.
bool ConstantTimeEquals(const Sha256Digest& a, const Sha256Digest& b);

// The outcome of checking an Authorization header.
enum class AuthCheck {
  kOk,
  kMissing,      // no Authorization header (or an empty one)
  kWrongScheme,  // not "Bearer <token>"
  kWrongToken,   // Bearer, but not the configured token
};

// The API token. Holds only the token's SHA-256.
class ApiToken {
 public:
  // Longest token accepted. Default 1,024 bytes.
  static constexpr size_t kMaxBytes = 1024;

  // InvalidArgument if `token` is empty, longer than kMaxBytes, or has a
  // byte outside visible ASCII (0x21..0x7e: a space or control character
  // cannot be sent in an Authorization header). Messages never quote the
  // token.
  static Result<ApiToken> Create(std::string_view token);

  // True if `presented` is the token: SHA-256 of `presented`, then
  // ConstantTimeEquals with the stored digest. The time depends on
  // presented.size() only, never on the token's length or on where the two
  // differ.
  bool Matches(std::string_view presented) const;

  // Checks an Authorization header value (empty when absent). The scheme
  // is case-insensitive ("Bearer", "bearer"); one or more spaces separate
  // it from the token (RFC 6750 section 2.1).
  AuthCheck Check(std::string_view authorization) const;

 private:
  explicit ApiToken(const Sha256Digest& digest) : digest_(digest) {}

  Sha256Digest digest_;
};

// A token read from a file, and what the reader should warn about.
struct ApiTokenFile {
  ApiToken token;
  // Non-empty when the file's mode lets users other than its owner read it
  // (group or others); names the path and the mode, never the token.
  std::string warning;
};

// Reads the token from `path`: the whole file with leading and trailing
// whitespace (newline included) trimmed. Errors, none of which quotes the
// file's content: IOError if it cannot be opened or read; InvalidArgument
// if it is larger than 4 KiB, empty after trimming, or not a valid token
// (ApiToken::Create). A file readable by others is accepted with a
// warning: secrets mounted by container orchestrators are often mode 0644
// inside a container that runs nothing else.
Result<ApiTokenFile> ReadApiTokenFile(const std::string& path);

}  // namespace cfrec::server

#endif  // CFREC_SERVER_AUTH_H_
