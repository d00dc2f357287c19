// Request-target parsing for the handlers: path and query parameters with
// percent-decoding, plus the small input checks every handler shares.
// Pure functions; thread-safe.
#ifndef CFREC_SERVER_QUERY_H_
#define CFREC_SERVER_QUERY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cfrec/schemas/status.h"
#include "cfrec/schemas/utf8.h"

namespace cfrec::server {

struct ParsedTarget {
  std::string path;  // raw path, not decoded ("/v1/model")
  // Decoded name/value pairs in order of appearance ("+" is a space).
  std::vector<std::pair<std::string, std::string>> params;
};

// Splits an origin-form target. InvalidArgument on a target that does not
// start with '/', a bad %-escape, or a parameter without '='.
Result<ParsedTarget> ParseTarget(std::string_view target);

// Decodes %XX escapes and '+' (as space when `plus_is_space`).
Result<std::string> PercentDecode(std::string_view in, bool plus_is_space);

// A decimal integer in [min, max], digits only (no sign, spaces, or
// exponent); InvalidArgument naming `field` otherwise.
Result<uint64_t> ParseUint(std::string_view text, uint64_t min, uint64_t max,
                           std::string_view field);

// Well-formed UTF-8 (cfrec/schemas/utf8.h), for the handlers' input checks.
using ::cfrec::IsValidUtf8;

// True when no object/array nesting in the JSON text `s` is deeper than
// `max_depth` (brackets inside strings ignored). Lets handlers refuse
// pathological documents before a parser sees them.
bool JsonDepthWithin(std::string_view s, int max_depth);

// The media type of a Content-Type value, lower-cased, without parameters
// ("Application/JSON; charset=utf-8" -> "application/json").
std::string MediaType(std::string_view content_type);

}  // namespace cfrec::server

#endif  // CFREC_SERVER_QUERY_H_
