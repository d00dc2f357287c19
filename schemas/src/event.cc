#include "cfrec/schemas/event.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "time_util.h"

namespace cfrec {
namespace {

using nlohmann::json;

Status FieldError(std::string_view field, std::string_view what) {
  std::string m = "field '";
  m += field;
  m += "': ";
  m += what;
  return Status::InvalidArgument(std::move(m));
}

Status CheckId(std::string_view field, std::string_view id,
               const EventLimits& limits) {
  if (id.empty()) return FieldError(field, "must not be empty");
  if (id.size() > limits.max_id_bytes) {
    return FieldError(field, "is " + std::to_string(id.size()) +
                                 " bytes, longer than the limit of " +
                                 std::to_string(limits.max_id_bytes));
  }
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7f) {
      return FieldError(field, "must not contain control characters");
    }
  }
  return Status::Ok();
}

// The fields of an event as read by the SAX parser below: only the shape
// cfrec needs (a flat object of strings, integers and string arrays), so
// parsing allocates nothing per id beyond the id itself (short ids stay in
// std::string's inline buffer). A DOM parse costs several allocations per
// id and was the largest part of ingest's CPU time.
struct FlatValue {
  enum class Kind { kMissing, kString, kInteger, kUnsigned, kOther, kArray };
  Kind kind = Kind::kMissing;
  std::string str;
  int64_t integer = 0;
  uint64_t unsigned_integer = 0;
  std::vector<std::string> array;  // kArray: its string elements, in order
  size_t array_size = 0;           // kArray: elements seen
  int64_t first_non_string = -1;   // kArray: index of the first non-string
};

enum Field : int {
  kType = 0,
  kImpressionId,
  kUserId,
  kItemId,
  kTs,
  kItems,
  kClicks,
  kHistory,
  kNumFields,
};
constexpr std::string_view kFieldNames[kNumFields] = {
    "type", "impression_id", "user_id", "item_id",
    "ts",   "items",         "clicks",  "history"};

struct FlatEvent {
  FlatValue fields[kNumFields];
  std::string first_unknown_key;  // empty: none
  bool top_is_object = false;
};

class FlatSax {
 public:
  using json_t = nlohmann::json;
  explicit FlatSax(FlatEvent* out, size_t max_array)
      : out_(out), max_array_(max_array) {}

  bool null() { return Scalar(FlatValue::Kind::kOther); }
  bool boolean(bool) { return Scalar(FlatValue::Kind::kOther); }
  bool number_integer(json_t::number_integer_t v) {
    if (FlatValue* f = ScalarTarget()) {
      f->kind = FlatValue::Kind::kInteger;
      f->integer = v;
    } else {
      NoteArrayElement(false);
    }
    return true;
  }
  bool number_unsigned(json_t::number_unsigned_t v) {
    if (FlatValue* f = ScalarTarget()) {
      f->kind = FlatValue::Kind::kUnsigned;
      f->unsigned_integer = v;
    } else {
      NoteArrayElement(false);
    }
    return true;
  }
  bool number_float(json_t::number_float_t, const json_t::string_t&) {
    return Scalar(FlatValue::Kind::kOther);
  }
  bool string(json_t::string_t& v) {
    if (FlatValue* f = ScalarTarget()) {
      f->kind = FlatValue::Kind::kString;
      f->str = std::move(v);
    } else if (array_ != nullptr && depth_ == 2) {
      if (array_->array.size() <= max_array_)
        array_->array.push_back(std::move(v));
      NoteArrayElement(true);
    }
    return true;
  }
  bool binary(json_t::binary_t&) { return Scalar(FlatValue::Kind::kOther); }
  bool start_object(std::size_t) {
    if (depth_ == 0) out_->top_is_object = true;
    if (depth_ == 1 && current_ != nullptr)
      current_->kind = FlatValue::Kind::kOther;
    if (depth_ == 2) NoteArrayElement(false);
    ++depth_;
    return true;
  }
  bool end_object() {
    --depth_;
    return true;
  }
  bool key(json_t::string_t& k) {
    if (depth_ != 1) return true;
    current_ = nullptr;
    for (int i = 0; i < kNumFields; ++i) {
      if (k == kFieldNames[i]) {
        current_ = &out_->fields[i];
        *current_ = FlatValue{};  // a repeated key: the last one wins
        return true;
      }
    }
    if (out_->first_unknown_key.empty() || k < out_->first_unknown_key) {
      out_->first_unknown_key = std::move(k);
    }
    return true;
  }
  bool start_array(std::size_t) {
    if (depth_ == 1 && current_ != nullptr) {
      current_->kind = FlatValue::Kind::kArray;
      array_ = current_;
    } else if (depth_ == 2) {
      NoteArrayElement(false);
    }
    ++depth_;
    return true;
  }
  bool end_array() {
    --depth_;
    if (depth_ == 1) array_ = nullptr;
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception&) {
    return false;
  }

 private:
  // The field a scalar at the current position fills, if any.
  FlatValue* ScalarTarget() { return depth_ == 1 ? current_ : nullptr; }
  bool Scalar(FlatValue::Kind kind) {
    if (FlatValue* f = ScalarTarget()) {
      f->kind = kind;
    } else {
      NoteArrayElement(false);
    }
    return true;
  }
  void NoteArrayElement(bool is_string) {
    if (array_ == nullptr || depth_ != 2) return;
    if (!is_string && array_->first_non_string < 0) {
      array_->first_non_string = static_cast<int64_t>(array_->array_size);
    }
    ++array_->array_size;
  }

  FlatEvent* out_;
  size_t max_array_;
  int depth_ = 0;
  FlatValue* current_ = nullptr;  // the field whose value comes next
  FlatValue* array_ = nullptr;    // the field whose array is open
};

Result<std::string> GetId(FlatEvent& doc, Field field,
                          const EventLimits& limits) {
  FlatValue& v = doc.fields[field];
  const std::string_view name = kFieldNames[field];
  if (v.kind == FlatValue::Kind::kMissing)
    return FieldError(name, "is required");
  if (v.kind != FlatValue::Kind::kString)
    return FieldError(name, "must be a string");
  CFREC_RETURN_IF_ERROR(CheckId(name, v.str, limits));
  return std::move(v.str);
}

Result<int64_t> GetTimestamp(const FlatEvent& doc) {
  const FlatValue& v = doc.fields[kTs];
  switch (v.kind) {
    case FlatValue::Kind::kMissing:
      return FieldError("ts", "is required");
    case FlatValue::Kind::kUnsigned:
      if (v.unsigned_integer >
          static_cast<uint64_t>(internal::kMaxTimestampMs)) {
        return FieldError("ts", "epoch milliseconds out of range");
      }
      return static_cast<int64_t>(v.unsigned_integer);
    case FlatValue::Kind::kInteger:
      if (v.integer < 0 || v.integer > internal::kMaxTimestampMs) {
        return FieldError("ts", "epoch milliseconds out of range");
      }
      return v.integer;
    case FlatValue::Kind::kString: {
      auto r = ParseRfc3339Ms(v.str);
      if (!r.ok()) return FieldError("ts", r.status().message());
      return r;
    }
    default:
      return FieldError(
          "ts", "must be an RFC 3339 string or integer epoch milliseconds");
  }
}

Result<std::vector<std::string>> GetIdArray(FlatEvent& doc, Field field,
                                            bool required, size_t max_len,
                                            const EventLimits& limits) {
  FlatValue& v = doc.fields[field];
  const std::string_view name = kFieldNames[field];
  if (v.kind == FlatValue::Kind::kMissing) {
    if (required) return FieldError(name, "is required");
    return std::vector<std::string>{};
  }
  if (v.kind != FlatValue::Kind::kArray) {
    return FieldError(name, "must be an array of strings");
  }
  if (v.array_size > max_len) {
    return FieldError(name, "has " + std::to_string(v.array_size) +
                                " entries, more than the limit of " +
                                std::to_string(max_len));
  }
  const size_t checked = v.first_non_string >= 0
                             ? static_cast<size_t>(v.first_non_string)
                             : v.array.size();
  for (size_t i = 0; i < checked; ++i) {
    const auto& id = v.array[i];
    if (id.empty() || id.size() > limits.max_id_bytes ||
        std::any_of(id.begin(), id.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return u < 0x20 || u == 0x7f;
        })) {
      CFREC_RETURN_IF_ERROR(CheckId(
          std::string(name) + "[" + std::to_string(i) + "]", id, limits));
    }
  }
  if (v.first_non_string >= 0) {
    return FieldError(
        std::string(name) + "[" + std::to_string(v.first_non_string) + "]",
        "must be a string");
  }
  return std::move(v.array);
}

Status CheckAllowedFields(const FlatEvent& doc,
                          std::initializer_list<Field> allowed) {
  std::string_view first_disallowed = doc.first_unknown_key;
  for (int i = 0; i < kNumFields; ++i) {
    if (doc.fields[i].kind == FlatValue::Kind::kMissing) continue;
    if (std::find(allowed.begin(), allowed.end(), static_cast<Field>(i)) !=
        allowed.end()) {
      continue;
    }
    if (first_disallowed.empty() || kFieldNames[i] < first_disallowed) {
      first_disallowed = kFieldNames[i];
    }
  }
  if (!first_disallowed.empty()) {
    return FieldError(first_disallowed, "unknown field");
  }
  return Status::Ok();
}

// Checks the list-level invariants (sizes, no repeated item, clicks within
// the list). `ids_checked` skips the per-id checks when the parser already
// made them. A sorted copy of views finds repeats without allocating a node
// per item, which matters at ingest rates.
Status ValidateImpressionLists(const ImpressionEvent& e,
                               const EventLimits& limits, bool ids_checked) {
  if (!ids_checked) {
    CFREC_RETURN_IF_ERROR(CheckId("impression_id", e.impression_id, limits));
    CFREC_RETURN_IF_ERROR(CheckId("user_id", e.user_id, limits));
  }
  if (e.ts_ms < 0 || e.ts_ms > internal::kMaxTimestampMs) {
    return FieldError("ts", "epoch milliseconds out of range");
  }
  if (e.items.empty()) return FieldError("items", "must not be empty");
  if (e.items.size() > limits.max_list_length) {
    return FieldError("items", "has " + std::to_string(e.items.size()) +
                                   " entries, more than the limit of " +
                                   std::to_string(limits.max_list_length));
  }
  if (e.clicks.size() > e.items.size()) {
    return FieldError("clicks", "has more entries than items");
  }
  if (e.history.size() > limits.max_history_length) {
    return FieldError("history", "has " + std::to_string(e.history.size()) +
                                     " entries, more than the limit of " +
                                     std::to_string(limits.max_history_length));
  }
  if (!ids_checked) {
    for (size_t i = 0; i < e.items.size(); ++i) {
      CFREC_RETURN_IF_ERROR(
          CheckId("items[" + std::to_string(i) + "]", e.items[i], limits));
    }
    for (size_t i = 0; i < e.clicks.size(); ++i) {
      CFREC_RETURN_IF_ERROR(
          CheckId("clicks[" + std::to_string(i) + "]", e.clicks[i], limits));
    }
    for (size_t i = 0; i < e.history.size(); ++i) {
      CFREC_RETURN_IF_ERROR(
          CheckId("history[" + std::to_string(i) + "]", e.history[i], limits));
    }
  }
  std::vector<std::string_view> shown(e.items.begin(), e.items.end());
  std::sort(shown.begin(), shown.end());
  if (auto dup = std::adjacent_find(shown.begin(), shown.end());
      dup != shown.end()) {
    const size_t second =
        std::find(std::find(e.items.begin(), e.items.end(), *dup) + 1,
                  e.items.end(), *dup) -
        e.items.begin();
    return FieldError("items[" + std::to_string(second) + "]",
                      "'" + std::string(*dup) + "' appears twice in the list");
  }
  for (size_t i = 0; i < e.clicks.size(); ++i) {
    const std::string name = "clicks[" + std::to_string(i) + "]";
    if (!std::binary_search(shown.begin(), shown.end(),
                            std::string_view(e.clicks[i]))) {
      return FieldError(name, "'" + e.clicks[i] + "' is not in items");
    }
    for (size_t j = 0; j < i; ++j) {
      if (e.clicks[j] == e.clicks[i]) {
        return FieldError(name, "'" + e.clicks[i] + "' appears twice");
      }
    }
  }
  return Status::Ok();
}

Status ValidateImpression(const ImpressionEvent& e, const EventLimits& limits) {
  return ValidateImpressionLists(e, limits, /*ids_checked=*/false);
}

Status ValidateClick(const ClickEvent& e, const EventLimits& limits) {
  CFREC_RETURN_IF_ERROR(CheckId("impression_id", e.impression_id, limits));
  CFREC_RETURN_IF_ERROR(CheckId("user_id", e.user_id, limits));
  CFREC_RETURN_IF_ERROR(CheckId("item_id", e.item_id, limits));
  if (e.ts_ms < 0 || e.ts_ms > internal::kMaxTimestampMs) {
    return FieldError("ts", "epoch milliseconds out of range");
  }
  return Status::Ok();
}

bool ParseDigits(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// The fast path of ParseEventView: one pass over the bytes for the layout
// producers actually send (a flat object, ASCII strings without escapes,
// integer or RFC 3339 ts, each known key once), validating while it reads and
// keeping views into the message instead of copies. It returns false for
// anything else and for anything invalid; the caller then runs the general
// parser, which gives the exact error. So it accepts only documents the
// general parser accepts, with the same result.
class FastParser {
 public:
  FastParser(std::string_view text, const EventLimits& limits, EventView* out)
      : p_(text.data()),
        end_(text.data() + text.size()),
        limits_(limits),
        out_(out) {}

  bool Parse() {
    out_->items.clear();
    out_->clicks.clear();
    out_->history.clear();
    out_->item_id = {};
    std::string_view type;
    unsigned seen = 0;
    if (!Consume('{')) return false;
    SkipWs();
    if (p_ < end_ && *p_ == '}') return false;  // empty: the general path
    do {
      std::string_view key;
      if (!String(&key) || !Consume(':')) return false;
      const int field = FieldOf(key);
      if (field < 0 || (seen & (1u << field))) return false;
      seen |= 1u << field;
      switch (field) {
        case kType:
          if (!String(&type)) return false;
          break;
        case kImpressionId:
          if (!Id(&out_->impression_id)) return false;
          break;
        case kUserId:
          if (!Id(&out_->user_id)) return false;
          break;
        case kItemId:
          if (!Id(&out_->item_id)) return false;
          break;
        case kTs:
          if (!Timestamp(&out_->ts_ms)) return false;
          break;
        case kItems:
          if (!IdArray(&out_->items, limits_.max_list_length)) return false;
          break;
        case kClicks:
          if (!IdArray(&out_->clicks, limits_.max_list_length)) return false;
          break;
        case kHistory:
          if (!IdArray(&out_->history, limits_.max_history_length)) {
            return false;
          }
          break;
        default:
          return false;
      }
    } while (Consume(','));
    if (!Consume('}')) return false;
    SkipWs();
    if (p_ != end_) return false;

    constexpr unsigned kCommon =
        (1u << kType) | (1u << kImpressionId) | (1u << kUserId) | (1u << kTs);
    if (type == "impression") {
      if ((seen & (kCommon | (1u << kItems))) != (kCommon | (1u << kItems)) ||
          (seen & (1u << kItemId))) {
        return false;
      }
      out_->kind = EventView::Kind::kImpression;
      return ImpressionListsValid();
    }
    if (type == "click") {
      if (seen != (kCommon | (1u << kItemId))) return false;
      out_->kind = EventView::Kind::kClick;
      return true;
    }
    return false;
  }

 private:
  static int FieldOf(std::string_view key) {
    for (int i = 0; i < kNumFields; ++i) {
      if (key == kFieldNames[i]) return i;
    }
    return -1;
  }
  void SkipWs() {
    while (p_ < end_ &&
           (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) {
      ++p_;
    }
  }
  bool Consume(char c) {
    SkipWs();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  // A string of printable ASCII without escapes. Control characters, DEL,
  // escapes and non-ASCII bytes all go to the general parser (which decodes
  // escapes, validates UTF-8 and names the field of a bad id).
  bool String(std::string_view* out) {
    SkipWs();
    if (p_ >= end_ || *p_ != '"') return false;
    const char* start = ++p_;
    while (p_ < end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *out = std::string_view(start, static_cast<size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c < 0x20 || c >= 0x7f || c == '\\') return false;
      ++p_;
    }
    return false;
  }
  bool Id(std::string_view* out) {
    return String(out) && !out->empty() && out->size() <= limits_.max_id_bytes;
  }
  bool IdArray(std::vector<std::string_view>* out, size_t max_len) {
    if (!Consume('[')) return false;
    SkipWs();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    do {
      std::string_view id;
      if (!Id(&id) || out->size() >= max_len) return false;
      out->push_back(id);
    } while (Consume(','));
    return Consume(']');
  }
  bool Timestamp(int64_t* out) {
    SkipWs();
    if (p_ >= end_) return false;
    if (*p_ == '"') {
      std::string_view text;
      if (!String(&text)) return false;
      auto ms = ParseRfc3339Ms(text);
      if (!ms.ok()) return false;
      *out = *ms;
      return true;
    }
    // A non-negative integer in JSON's grammar (no leading zeros), short
    // enough not to overflow; fractions and exponents go the general way.
    const char* start = p_;
    int64_t v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9' && p_ - start < 16) {
      v = v * 10 + (*p_ - '0');
      ++p_;
    }
    const size_t digits = static_cast<size_t>(p_ - start);
    if (digits == 0 || (digits > 1 && *start == '0')) return false;
    if (p_ < end_ && ((*p_ >= '0' && *p_ <= '9') || *p_ == '.' || *p_ == 'e' ||
                      *p_ == 'E')) {
      return false;
    }
    if (v > internal::kMaxTimestampMs) return false;
    *out = v;
    return true;
  }
  // ValidateImpressionLists' checks (the per-id ones were made while
  // reading), without building its error messages. Repeats are found with a
  // flat hash table of positions in out_->scratch (sorting the list cost
  // more than the rest of the parse); clicks are looked up in it.
  bool ImpressionListsValid() {
    const auto& items = out_->items;
    const auto& clicks = out_->clicks;
    if (items.empty() || clicks.size() > items.size()) return false;
    size_t size = 16;
    while (size < 2 * items.size()) size *= 2;
    const size_t mask = size - 1;
    auto& slots = out_->scratch;  // item position + 1, 0 = empty
    slots.assign(size, 0);
    // Lists made to collide take the general path, which sorts.
    size_t probes_left = 8 * (items.size() + clicks.size());
    for (size_t i = 0; i < items.size(); ++i) {
      size_t pos = IdHash(items[i]) & mask;
      for (; slots[pos] != 0; pos = (pos + 1) & mask) {
        if (items[slots[pos] - 1] == items[i] || probes_left-- == 0) {
          return false;
        }
      }
      slots[pos] = static_cast<uint32_t>(i + 1);
    }
    for (size_t i = 0; i < clicks.size(); ++i) {
      size_t pos = IdHash(clicks[i]) & mask;
      for (;; pos = (pos + 1) & mask) {
        if (slots[pos] == 0 || probes_left-- == 0) return false;
        if (items[slots[pos] - 1] == clicks[i]) break;
      }
      for (size_t j = 0; j < i; ++j) {
        if (clicks[j] == clicks[i]) return false;
      }
    }
    return true;
  }
  // A hash of a short id: its bytes in 8-byte words, multiplied and folded.
  // Any hash is correct here (equal ids are compared byte by byte); this one
  // keeps the probes short for ids that differ in a few digits.
  static uint64_t IdHash(std::string_view id) {
    constexpr uint64_t kMul = 0x9e3779b97f4a7c15ull;
    uint64_t h = id.size() * kMul;
    size_t i = 0;
    for (; i + 8 <= id.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, id.data() + i, 8);
      h = (h ^ w) * kMul;
      h ^= h >> 29;
    }
    if (i < id.size()) {
      uint64_t w = 0;
      std::memcpy(&w, id.data() + i, id.size() - i);
      h = (h ^ w) * kMul;
      h ^= h >> 29;
    }
    h *= kMul;
    return h ^ (h >> 32);
  }

  const char* p_;
  const char* end_;
  const EventLimits& limits_;
  EventView* out_;
};

void ViewOf(const Event& event, EventView* out) {
  out->items.clear();
  out->clicks.clear();
  out->history.clear();
  if (const auto* imp = std::get_if<ImpressionEvent>(&event)) {
    out->kind = EventView::Kind::kImpression;
    out->impression_id = imp->impression_id;
    out->user_id = imp->user_id;
    out->item_id = {};
    out->ts_ms = imp->ts_ms;
    out->items.assign(imp->items.begin(), imp->items.end());
    out->clicks.assign(imp->clicks.begin(), imp->clicks.end());
    out->history.assign(imp->history.begin(), imp->history.end());
  } else {
    const auto& c = std::get<ClickEvent>(event);
    out->kind = EventView::Kind::kClick;
    out->impression_id = c.impression_id;
    out->user_id = c.user_id;
    out->item_id = c.item_id;
    out->ts_ms = c.ts_ms;
  }
}

Status MessageSizeError(size_t size, const EventLimits& limits) {
  return Status::InvalidArgument("message of " + std::to_string(size) +
                                 " bytes exceeds the limit of " +
                                 std::to_string(limits.max_message_bytes));
}

}  // namespace

const std::string& EventUserId(const Event& event) {
  return std::visit(
      [](const auto& e) -> const std::string& { return e.user_id; }, event);
}

Result<int64_t> ParseRfc3339Ms(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
  const auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(
        "'" + std::string(s.substr(0, 64)) +
        "' is not an RFC 3339 timestamp: " + std::string(why));
  };
  int64_t y, mo, d, h, mi, sec;
  if (s.size() < 19 || !ParseDigits(s, 0, 4, &y) || s[4] != '-' ||
      !ParseDigits(s, 5, 2, &mo) || s[7] != '-' || !ParseDigits(s, 8, 2, &d) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !ParseDigits(s, 11, 2, &h) || s[13] != ':' ||
      !ParseDigits(s, 14, 2, &mi) || s[16] != ':' ||
      !ParseDigits(s, 17, 2, &sec)) {
    return bad("expected YYYY-MM-DDTHH:MM:SS");
  }
  if (y < 1970) return bad("year before 1970");
  if (mo < 1 || mo > 12) return bad("month out of range");
  if (d < 1 || d > internal::DaysInMonth(y, static_cast<unsigned>(mo))) {
    return bad("day out of range");
  }
  if (h > 23 || mi > 59 || sec > 60) return bad("time of day out of range");
  if (sec == 60) sec = 59;  // leap second: clamp
  size_t pos = 19;
  int64_t ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) ms = ms * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return bad("empty fraction");
    for (size_t k = digits; k < 3; ++k) ms *= 10;
  }
  int64_t offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int64_t oh, om;
    if (!ParseDigits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() ||
        s[pos + 3] != ':' || !ParseDigits(s, pos + 4, 2, &om) || oh > 23 ||
        om > 59) {
      return bad("bad zone offset");
    }
    offset_min = (oh * 60 + om) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return bad("missing zone (Z or +hh:mm)");
  }
  if (pos != s.size()) return bad("trailing characters");
  const int64_t days = internal::DaysFromCivil(y, static_cast<unsigned>(mo),
                                               static_cast<unsigned>(d));
  const int64_t t =
      ((days * 24 + h) * 60 + mi - offset_min) * 60000 + sec * 1000 + ms;
  if (t < 0 || t > internal::kMaxTimestampMs) return bad("out of range");
  return t;
}

std::string FormatRfc3339Ms(int64_t ts_ms) {
  const int64_t days =
      ts_ms >= 0 ? ts_ms / 86400000 : (ts_ms - 86399999) / 86400000;
  int64_t rem = ts_ms - days * 86400000;
  const auto date = internal::CivilFromDays(days);
  const int64_t h = rem / 3600000;
  rem %= 3600000;
  const int64_t mi = rem / 60000;
  rem %= 60000;
  char buf[64];
  std::snprintf(
      buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
      static_cast<long long>(date.year), date.month, date.day,
      static_cast<long long>(h), static_cast<long long>(mi),
      static_cast<long long>(rem / 1000), static_cast<long long>(rem % 1000));
  return buf;
}

Status ValidateEvent(const Event& event, const EventLimits& limits) {
  if (const auto* imp = std::get_if<ImpressionEvent>(&event)) {
    return ValidateImpression(*imp, limits);
  }
  return ValidateClick(std::get<ClickEvent>(event), limits);
}

Status ParseEventView(std::string_view text, const EventLimits& limits,
                      EventView* out) {
  if (text.size() > limits.max_message_bytes) {
    return MessageSizeError(text.size(), limits);
  }
  if (FastParser(text, limits, out).Parse()) return Status::Ok();
  auto event = internal::ParseEventGeneral(text, limits);
  if (!event.ok()) return event.status();
  out->owned = std::make_unique<Event>(std::move(event).value());
  ViewOf(*out->owned, out);
  return Status::Ok();
}

Event ToEvent(const EventView& v) {
  if (v.kind == EventView::Kind::kClick) {
    return ClickEvent{std::string(v.impression_id), std::string(v.user_id),
                      std::string(v.item_id), v.ts_ms};
  }
  ImpressionEvent e;
  e.impression_id = v.impression_id;
  e.user_id = v.user_id;
  e.ts_ms = v.ts_ms;
  e.items.assign(v.items.begin(), v.items.end());
  e.clicks.assign(v.clicks.begin(), v.clicks.end());
  e.history.assign(v.history.begin(), v.history.end());
  return e;
}

Result<Event> ParseEvent(std::string_view text, const EventLimits& limits) {
  if (text.size() > limits.max_message_bytes) {
    return MessageSizeError(text.size(), limits);
  }
  EventView view;
  if (FastParser(text, limits, &view).Parse()) return ToEvent(view);
  return internal::ParseEventGeneral(text, limits);
}

Result<Event> internal::ParseEventGeneral(std::string_view text,
                                          const EventLimits& limits) {
  FlatEvent doc;
  FlatSax sax(&doc,
              std::max(limits.max_list_length, limits.max_history_length));
  if (!json::sax_parse(text.begin(), text.end(), &sax,
                       nlohmann::detail::input_format_t::json,
                       /*strict=*/true)) {
    return Status::InvalidArgument("invalid JSON");
  }
  if (!doc.top_is_object) {
    return Status::InvalidArgument("an event must be a JSON object");
  }
  const FlatValue& type_value = doc.fields[kType];
  if (type_value.kind == FlatValue::Kind::kMissing) {
    return FieldError("type", "is required");
  }
  if (type_value.kind != FlatValue::Kind::kString) {
    return FieldError("type", "must be a string");
  }
  const std::string& type = type_value.str;

  if (type == "impression") {
    CFREC_RETURN_IF_ERROR(CheckAllowedFields(
        doc, {kType, kImpressionId, kUserId, kTs, kItems, kClicks, kHistory}));
    ImpressionEvent e;
    auto imp = GetId(doc, kImpressionId, limits);
    if (!imp.ok()) return imp.status();
    e.impression_id = std::move(imp).value();
    auto user = GetId(doc, kUserId, limits);
    if (!user.ok()) return user.status();
    e.user_id = std::move(user).value();
    auto ts = GetTimestamp(doc);
    if (!ts.ok()) return ts.status();
    e.ts_ms = *ts;
    auto items = GetIdArray(doc, kItems, true, limits.max_list_length, limits);
    if (!items.ok()) return items.status();
    e.items = std::move(items).value();
    auto clicks =
        GetIdArray(doc, kClicks, false, limits.max_list_length, limits);
    if (!clicks.ok()) return clicks.status();
    e.clicks = std::move(clicks).value();
    auto history =
        GetIdArray(doc, kHistory, false, limits.max_history_length, limits);
    if (!history.ok()) return history.status();
    e.history = std::move(history).value();
    CFREC_RETURN_IF_ERROR(
        ValidateImpressionLists(e, limits, /*ids_checked=*/true));
    return Event(std::move(e));
  }
  if (type == "click") {
    CFREC_RETURN_IF_ERROR(
        CheckAllowedFields(doc, {kType, kImpressionId, kUserId, kItemId, kTs}));
    ClickEvent e;
    auto imp = GetId(doc, kImpressionId, limits);
    if (!imp.ok()) return imp.status();
    e.impression_id = std::move(imp).value();
    auto user = GetId(doc, kUserId, limits);
    if (!user.ok()) return user.status();
    e.user_id = std::move(user).value();
    auto item = GetId(doc, kItemId, limits);
    if (!item.ok()) return item.status();
    e.item_id = std::move(item).value();
    auto ts = GetTimestamp(doc);
    if (!ts.ok()) return ts.status();
    e.ts_ms = *ts;
    return Event(std::move(e));
  }
  return FieldError("type", "unknown event type '" + type.substr(0, 64) +
                                "' (expected \"impression\" or \"click\")");
}

}  // namespace cfrec
