// UTF-8 well-formedness, shared by the event writer and the HTTP input
// checks. Pure; thread-safe.
#ifndef CFREC_SCHEMAS_UTF8_H_
#define CFREC_SCHEMAS_UTF8_H_

#include <string_view>

namespace cfrec {

// True when `s` is well-formed UTF-8 (no overlongs, surrogates, truncated
// sequences or code points past U+10FFFF); what nlohmann's dump() accepts.
bool IsValidUtf8(std::string_view s);

}  // namespace cfrec

#endif  // CFREC_SCHEMAS_UTF8_H_
