// The MIND behaviors.tsv row parser (schemas/mind.h) on arbitrary lines,
// as `cfrec replay` and `cfrec eval` read files. Besides not crashing, an
// accepted row formats to a line that parses back to the same row, its
// time formats and parses back to the same instant, and its impression
// event can be built.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cfrec/schemas/mind.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto row = cfrec::ParseMindRow(line);
  if (!row.ok()) return 0;
  FUZZ_CHECK(row->items.size() == row->clicked.size());
  auto again = cfrec::ParseMindRow(cfrec::FormatMindRow(*row));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == *row);
  auto ts = cfrec::ParseMindTime(cfrec::FormatMindTime(row->ts_ms));
  FUZZ_CHECK(ts.ok());
  FUZZ_CHECK(*ts == row->ts_ms);
  const cfrec::ImpressionEvent event =
      cfrec::MindRowToImpression(*row, /*with_clicks=*/true);
  FUZZ_CHECK(event.items.size() == row->items.size());
  return 0;
}
