#include "recommendations_json.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

namespace cfrec::server::internal {
namespace {

// A JSON string as dump() writes it. Ids are plain ASCII in practice: those
// are copied; anything else (quotes, backslashes, control characters,
// non-ASCII, invalid UTF-8) goes through nlohmann's own escaping.
void AppendString(std::string_view s, std::string* out) {
  bool plain = true;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (plain) {
    out->push_back('"');
    out->append(s);
    out->push_back('"');
    return;
  }
  out->append(
      nlohmann::json(std::string(s))
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// A float as dump() writes it: stored as a double, shortest round-trip
// digits (nlohmann's own conversion), null when not finite.
void AppendScore(float score, std::string* out) {
  const double x = score;
  if (!std::isfinite(x)) {
    out->append("null");
    return;
  }
  char buffer[64];
  char* end = nlohmann::detail::to_chars(buffer, buffer + sizeof(buffer), x);
  out->append(buffer, end);
}

}  // namespace

void WriteRecommendationsJson(const learner::ModelSnapshot& snapshot,
                              std::string_view user_id,
                              const Recommendation& rec, std::string* out) {
  out->clear();
  out->reserve(96 + 48 * rec.items.size() + user_id.size());
  out->append("{\"fallback\":");
  out->append(rec.popularity_fallback ? "\"popularity\""
              : rec.no_user_term      ? "\"stream_features\""
                                      : "null");
  out->append(",\"items\":[");
  for (size_t i = 0; i < rec.items.size(); ++i) {
    const ScoredItem& item = rec.items[i];
    if (i > 0) out->push_back(',');
    out->append("{\"item_id\":");
    AppendString(snapshot.ItemId(item.item), out);
    out->append(",\"score\":");
    if (item.score.has_value()) {
      AppendScore(*item.score, out);
    } else {
      out->append("null");
    }
    out->push_back('}');
  }
  out->append("],\"model_version\":");
  char number[24];
  const auto [end, ec] =
      std::to_chars(number, number + sizeof(number), snapshot.version());
  out->append(number, end);
  out->append(",\"user_id\":");
  AppendString(user_id, out);
  out->push_back('}');
}

}  // namespace cfrec::server::internal
