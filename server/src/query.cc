#include "cfrec/server/query.h"

#include <charconv>

namespace cfrec::server {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<std::string> PercentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) {
        return Status::InvalidArgument("truncated percent-escape");
      }
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) {
        return Status::InvalidArgument("bad percent-escape");
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

Result<ParsedTarget> ParseTarget(std::string_view target) {
  if (target.empty() || target[0] != '/') {
    return Status::InvalidArgument("request target must start with '/'");
  }
  ParsedTarget parsed;
  const size_t q = target.find('?');
  std::string_view query;
  if (q == std::string_view::npos) {
    parsed.path = std::string(target);
  } else {
    parsed.path = std::string(target.substr(0, q));
    query = target.substr(q + 1);
  }
  // A fragment is never sent by conforming clients; refuse it rather than
  // guess.
  if (query.find('#') != std::string_view::npos ||
      parsed.path.find('#') != std::string::npos) {
    return Status::InvalidArgument("fragment in request target");
  }
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view()
                                          : query.substr(amp + 1);
    if (pair.empty()) continue;  // "a=1&&b=2"
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      return Status::InvalidArgument("query parameter without '=': '" +
                                     std::string(pair.substr(0, 64)) + "'");
    }
    Result<std::string> name = PercentDecode(pair.substr(0, eq), true);
    if (!name.ok()) return name.status().WithContext("query parameter name");
    Result<std::string> value = PercentDecode(pair.substr(eq + 1), true);
    if (!value.ok()) {
      return value.status().WithContext("query parameter '" + *name + "'");
    }
    parsed.params.emplace_back(std::move(*name), std::move(*value));
  }
  return parsed;
}

Result<uint64_t> ParseUint(std::string_view text, uint64_t min, uint64_t max,
                           std::string_view field) {
  auto fail = [&] {
    return Status::InvalidArgument(
        "'" + std::string(field) + "' must be an integer in [" +
        std::to_string(min) + ", " + std::to_string(max) + "]");
  };
  if (text.empty() || text.size() > 20) return fail();
  for (const char c : text) {
    if (c < '0' || c > '9') return fail();
  }
  uint64_t v = 0;
  const auto [ptr, ec] =
      std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return fail();
  if (v < min || v > max) return fail();
  return v;
}

bool JsonDepthWithin(std::string_view s, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : s) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) return false;
        break;
      case ']':
      case '}':
        --depth;
        break;
      default:
        break;
    }
  }
  return true;
}

std::string MediaType(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) {
    t.remove_prefix(1);
  }
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) {
    t.remove_suffix(1);
  }
  std::string out(t);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace cfrec::server
