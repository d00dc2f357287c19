// The MIND behaviors.tsv format: one impression per line,
//   impression_id \t user_id \t M/D/YYYY h:mm:ss AM \t history \t impressions
// where history is space-separated item ids (may be empty) and impressions is
// space-separated `item-label` pairs with label 1 for a click, 0 otherwise.
// cfrec's own generators write the same format, so every tool reads one.
#ifndef CFREC_SCHEMAS_MIND_H_
#define CFREC_SCHEMAS_MIND_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/schemas/event.h"
#include "cfrec/schemas/status.h"

namespace cfrec {

struct MindRow {
  std::string impression_id;
  std::string user_id;
  int64_t ts_ms = 0;  // the time column, read as UTC
  std::vector<std::string> history;
  std::vector<std::string> items;  // the impression list, in order
  std::vector<uint8_t> clicked;    // clicked[i] is 1 when items[i] was clicked

  friend bool operator==(const MindRow&, const MindRow&) = default;
};

// Parses one line (without the trailing newline; a trailing '\r' is
// tolerated). The error says which column is wrong.
Result<MindRow> ParseMindRow(std::string_view line);

// Formats a row as one line without the newline. ParseMindRow inverts it.
std::string FormatMindRow(const MindRow& row);

// Parses MIND's time column, "11/12/2019 2:14:46 PM", as UTC epoch ms.
Result<int64_t> ParseMindTime(std::string_view text);
std::string FormatMindTime(int64_t ts_ms);

// The impression event of a row (clicks omitted when `with_clicks` is false:
// replay sends them as separate click events).
ImpressionEvent MindRowToImpression(const MindRow& row, bool with_clicks);

// Sorts rows by event time, keeping file order among equal times (MIND's
// files are not in time order; replay needs them to be).
void SortMindRowsByTime(std::vector<MindRow>* rows);

// Reads a whole behaviors.tsv. Lines that fail to parse are reported in
// `errors` ("line 17: ...") and skipped; an unreadable file is an error.
struct MindFile {
  std::vector<MindRow> rows;
  std::vector<std::string> errors;
};
Result<MindFile> ReadMindFile(const std::string& path);

}  // namespace cfrec

#endif  // CFREC_SCHEMAS_MIND_H_
