// Writing an event's JSON: the bytes nlohmann's dump() of the event's DOM
// would give, written directly (SerializeEvent), and the DOM itself as the
// reference and the fallback for strings that are not UTF-8.
#include "cfrec/schemas/event.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "cfrec/schemas/utf8.h"

namespace cfrec {

namespace {

// Appends `s` as a JSON string, escaped exactly as nlohmann's dump() does
// (short escapes for \b \t \n \f \r, \u00xx for other control characters,
// UTF-8 kept as is).
void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  size_t plain = 0;  // start of the run not yet copied
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\r':
        out->append("\\r");
        break;
      default: {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        out->append(buf);
      }
    }
  }
  out->append(s.data() + plain, s.size() - plain);
  out->push_back('"');
}

void AppendJsonArray(std::string* out, const std::vector<std::string>& v) {
  out->push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(out, v[i]);
  }
  out->push_back(']');
}

bool AllUtf8(const Event& event) {
  if (const auto* imp = std::get_if<ImpressionEvent>(&event)) {
    const auto ok = [](const std::vector<std::string>& v) {
      return std::all_of(v.begin(), v.end(), IsValidUtf8);
    };
    return IsValidUtf8(imp->impression_id) && IsValidUtf8(imp->user_id) &&
           ok(imp->items) && ok(imp->clicks) && ok(imp->history);
  }
  const auto& c = std::get<ClickEvent>(event);
  return IsValidUtf8(c.impression_id) && IsValidUtf8(c.user_id) &&
         IsValidUtf8(c.item_id);
}

}  // namespace

// The DOM serialiser: the reference for the layout below, and the path for
// strings that are not UTF-8 (nlohmann throws type_error 316 on those).
std::string internal::SerializeEventDom(const Event& event) {
  nlohmann::json j;
  if (const auto* imp = std::get_if<ImpressionEvent>(&event)) {
    j["type"] = "impression";
    j["impression_id"] = imp->impression_id;
    j["user_id"] = imp->user_id;
    j["ts"] = imp->ts_ms;
    j["items"] = imp->items;
    if (!imp->clicks.empty()) j["clicks"] = imp->clicks;
    if (!imp->history.empty()) j["history"] = imp->history;
  } else {
    const auto& c = std::get<ClickEvent>(event);
    j["type"] = "click";
    j["impression_id"] = c.impression_id;
    j["user_id"] = c.user_id;
    j["item_id"] = c.item_id;
    j["ts"] = c.ts_ms;
  }
  return j.dump();
}

// Writes the bytes nlohmann's dump() of the DOM would (keys in sorted order,
// no spaces) without building the DOM: the replay producer serialises every
// event, and the DOM cost more than the rest of producing.
std::string SerializeEvent(const Event& event) {
  if (!AllUtf8(event)) return internal::SerializeEventDom(event);
  std::string out;
  if (const auto* imp = std::get_if<ImpressionEvent>(&event)) {
    size_t bytes = 128 + imp->impression_id.size() + imp->user_id.size();
    for (const auto* v : {&imp->items, &imp->clicks, &imp->history}) {
      for (const auto& id : *v) bytes += id.size() + 3;
    }
    out.reserve(bytes);
    out.push_back('{');
    if (!imp->clicks.empty()) {
      out.append("\"clicks\":");
      AppendJsonArray(&out, imp->clicks);
      out.push_back(',');
    }
    if (!imp->history.empty()) {
      out.append("\"history\":");
      AppendJsonArray(&out, imp->history);
      out.push_back(',');
    }
    out.append("\"impression_id\":");
    AppendJsonString(&out, imp->impression_id);
    out.append(",\"items\":");
    AppendJsonArray(&out, imp->items);
    out.append(",\"ts\":");
    out.append(std::to_string(imp->ts_ms));
    out.append(",\"type\":\"impression\",\"user_id\":");
    AppendJsonString(&out, imp->user_id);
    out.push_back('}');
    return out;
  }
  const auto& c = std::get<ClickEvent>(event);
  out.reserve(96 + c.impression_id.size() + c.user_id.size() +
              c.item_id.size());
  out.append("{\"impression_id\":");
  AppendJsonString(&out, c.impression_id);
  out.append(",\"item_id\":");
  AppendJsonString(&out, c.item_id);
  out.append(",\"ts\":");
  out.append(std::to_string(c.ts_ms));
  out.append(",\"type\":\"click\",\"user_id\":");
  AppendJsonString(&out, c.user_id);
  out.push_back('}');
  return out;
}

}  // namespace cfrec
