#include "layout.h"

#include <rocksdb/options.h>

#include <utility>

#include "coding.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kFormatKey = "format";
// 2: the applied log in segments, clicks naming their impression; joined
// clicks in the impression's row instead of the clicks family.
// 3: user_log rows per user and window and time_index rows written per
// window, the open window in tail rows (impression_index.h); format 2's
// user_log rows are still read.
constexpr std::string_view kFormatVersion = "cfrec-state-3";
constexpr std::string_view kFormat2 = "cfrec-state-2";

}  // namespace

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string m(what);
  m += ": ";
  m += s.ToString();
  if (s.IsNotFound()) return Status::NotFound(std::move(m));
  if (s.IsCorruption()) return Status::Corruption(std::move(m));
  if (s.IsInvalidArgument()) return Status::InvalidArgument(std::move(m));
  return Status::IOError(std::move(m));
}

std::string SeqKey(uint64_t seq) {
  std::string k;
  coding::PutBE64(&k, seq);
  return k;
}

Status CheckFormat(DbRef db, std::string* note) {
  note->clear();
  std::string value;
  auto s = db->Get(rocksdb::ReadOptions(), db.cf(kMeta),
                   std::string(kFormatKey), &value);
  if (s.IsNotFound()) {
    CFREC_RETURN_IF_ERROR(
        FromRocks(db->Put(rocksdb::WriteOptions(), db.cf(kMeta),
                          std::string(kFormatKey), std::string(kFormatVersion)),
                  "writing format version"));
  } else if (!s.ok()) {
    return FromRocks(s, "reading format version");
  } else if (value == kFormat2) {
    // Nothing to convert: format 3 reads format 2's user_log rows, and
    // writes its own next to them from now on.
    CFREC_RETURN_IF_ERROR(
        FromRocks(db->Put(rocksdb::WriteOptions(), db.cf(kMeta),
                          std::string(kFormatKey), std::string(kFormatVersion)),
                  "writing format version"));
    *note = "data directory upgraded from format '" + value + "' to '" +
            std::string(kFormatVersion) +
            "' in place (its user_log rows are read as they are); builds "
            "that read only '" +
            value + "' no longer open it (docs/STATE.md)";
  } else if (value != kFormatVersion) {
    std::string m = "data directory has format '" + value +
                    "', this build reads '" + std::string(kFormatVersion) + "'";
    if (value == "cfrec-state-1") {
      // Format 1 cannot be converted: its applied log does not say which
      // impression an event belongs to, which format 2's clicks name.
      m += " and does not convert format 1 (its applied log does not name "
           "the impression of an event); ingest the events again into a new "
           "data directory, or run the build that wrote it (docs/STATE.md)";
    }
    return Status::FailedPrecondition(std::move(m));
  }
  return Status::Ok();
}

}  // namespace cfrec::state
