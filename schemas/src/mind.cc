#include "cfrec/schemas/mind.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

#include "time_util.h"

namespace cfrec {
namespace {

// Splits on single spaces, skipping empty pieces (MIND has none, but a
// hand-edited file may have doubled spaces).
std::vector<std::string_view> SplitSpaces(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(' ', pos);
    if (end == std::string_view::npos) end = s.size();
    if (end > pos) out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

bool ParseUnsigned(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 9) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

Status ColumnError(std::string_view column, std::string_view what) {
  return Status::InvalidArgument("column '" + std::string(column) +
                                 "': " + std::string(what));
}

}  // namespace

Result<int64_t> ParseMindTime(std::string_view s) {
  // M/D/YYYY h:mm:ss AM
  const auto bad = [&] {
    return Status::InvalidArgument(
        "'" + std::string(s.substr(0, 64)) +
        "' is not a time like 11/12/2019 2:14:46 PM");
  };
  const size_t s1 = s.find('/');
  const size_t s2 = s1 == std::string_view::npos ? s1 : s.find('/', s1 + 1);
  const size_t sp = s2 == std::string_view::npos ? s2 : s.find(' ', s2 + 1);
  if (sp == std::string_view::npos) return bad();
  const size_t c1 = s.find(':', sp + 1);
  const size_t c2 = c1 == std::string_view::npos ? c1 : s.find(':', c1 + 1);
  const size_t sp2 = c2 == std::string_view::npos ? c2 : s.find(' ', c2 + 1);
  if (sp2 == std::string_view::npos) return bad();
  int64_t mo, d, y, h, mi, sec;
  if (!ParseUnsigned(s.substr(0, s1), &mo) ||
      !ParseUnsigned(s.substr(s1 + 1, s2 - s1 - 1), &d) ||
      !ParseUnsigned(s.substr(s2 + 1, sp - s2 - 1), &y) ||
      !ParseUnsigned(s.substr(sp + 1, c1 - sp - 1), &h) ||
      !ParseUnsigned(s.substr(c1 + 1, c2 - c1 - 1), &mi) ||
      !ParseUnsigned(s.substr(c2 + 1, sp2 - c2 - 1), &sec)) {
    return bad();
  }
  const std::string_view ampm = s.substr(sp2 + 1);
  if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 ||
      d > internal::DaysInMonth(y, static_cast<unsigned>(mo)) || h < 1 ||
      h > 12 || mi > 59 || sec > 59) {
    return bad();
  }
  if (ampm == "AM") {
    if (h == 12) h = 0;
  } else if (ampm == "PM") {
    if (h != 12) h += 12;
  } else {
    return bad();
  }
  const int64_t days = internal::DaysFromCivil(y, static_cast<unsigned>(mo),
                                               static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000;
}

std::string FormatMindTime(int64_t ts_ms) {
  const int64_t secs = ts_ms / 1000;
  const int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  const auto date = internal::CivilFromDays(days);
  int64_t h = rem / 3600;
  rem %= 3600;
  const char* ampm = h >= 12 ? "PM" : "AM";
  h %= 12;
  if (h == 0) h = 12;
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%u/%u/%lld %lld:%02lld:%02lld %s",
                date.month, date.day, static_cast<long long>(date.year),
                static_cast<long long>(h), static_cast<long long>(rem / 60),
                static_cast<long long>(rem % 60), ampm);
  return buf;
}

Result<MindRow> ParseMindRow(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string_view cols[5];
  size_t pos = 0;
  for (int c = 0; c < 5; ++c) {
    const size_t tab = line.find('\t', pos);
    if (c < 4 && tab == std::string_view::npos) {
      return Status::InvalidArgument("expected 5 tab-separated columns, got " +
                                     std::to_string(c + 1));
    }
    if (c == 4 && tab != std::string_view::npos) {
      return Status::InvalidArgument("more than 5 tab-separated columns");
    }
    const size_t end = c == 4 ? line.size() : tab;
    cols[c] = line.substr(pos, end - pos);
    pos = end + 1;
  }
  MindRow row;
  if (cols[0].empty()) return ColumnError("impression_id", "is empty");
  if (cols[1].empty()) return ColumnError("user_id", "is empty");
  row.impression_id = cols[0];
  row.user_id = cols[1];
  auto ts = ParseMindTime(cols[2]);
  if (!ts.ok()) return ColumnError("time", ts.status().message());
  row.ts_ms = *ts;
  for (auto h : SplitSpaces(cols[3])) row.history.emplace_back(h);
  const auto pairs = SplitSpaces(cols[4]);
  if (pairs.empty()) return ColumnError("impressions", "is empty");
  row.items.reserve(pairs.size());
  row.clicked.reserve(pairs.size());
  for (auto p : pairs) {
    const size_t dash = p.rfind('-');
    if (dash == std::string_view::npos || dash == 0 || dash + 2 != p.size() ||
        (p[dash + 1] != '0' && p[dash + 1] != '1')) {
      return ColumnError("impressions", "'" + std::string(p.substr(0, 64)) +
                                            "' is not item-0 or item-1");
    }
    row.items.emplace_back(p.substr(0, dash));
    row.clicked.push_back(p[dash + 1] == '1' ? 1 : 0);
  }
  return row;
}

std::string FormatMindRow(const MindRow& row) {
  std::string out;
  out.reserve(64 + 12 * (row.history.size() + row.items.size()));
  out += row.impression_id;
  out += '\t';
  out += row.user_id;
  out += '\t';
  out += FormatMindTime(row.ts_ms);
  out += '\t';
  for (size_t i = 0; i < row.history.size(); ++i) {
    if (i) out += ' ';
    out += row.history[i];
  }
  out += '\t';
  for (size_t i = 0; i < row.items.size(); ++i) {
    if (i) out += ' ';
    out += row.items[i];
    out += row.clicked[i] ? "-1" : "-0";
  }
  return out;
}

ImpressionEvent MindRowToImpression(const MindRow& row, bool with_clicks) {
  ImpressionEvent e;
  e.impression_id = row.impression_id;
  e.user_id = row.user_id;
  e.ts_ms = row.ts_ms;
  e.items = row.items;
  e.history = row.history;
  if (with_clicks) {
    for (size_t i = 0; i < row.items.size(); ++i) {
      if (row.clicked[i]) e.clicks.push_back(row.items[i]);
    }
  }
  return e;
}

void SortMindRowsByTime(std::vector<MindRow>* rows) {
  std::stable_sort(
      rows->begin(), rows->end(),
      [](const MindRow& a, const MindRow& b) { return a.ts_ms < b.ts_ms; });
}

Result<MindFile> ReadMindFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open '" + path + "'");
  MindFile file;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    auto row = ParseMindRow(line);
    if (!row.ok()) {
      file.errors.push_back("line " + std::to_string(line_no) + ": " +
                            row.status().message());
      continue;
    }
    file.rows.push_back(std::move(row).value());
  }
  if (in.bad()) return Status::IOError("error reading '" + path + "'");
  return file;
}

}  // namespace cfrec
