#include "layout.h"

#include <rocksdb/options.h>

#include <utility>

#include "coding.h"

namespace cfrec::state {
namespace {

constexpr std::string_view kFormatKey = "format";
constexpr std::string_view kFormatVersion = "cfrec-state-1";

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

Status CheckFormat(DbRef db) {
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
  } else if (value != kFormatVersion) {
    return Status::FailedPrecondition("data directory has format '" + value +
                                      "', this build reads '" +
                                      std::string(kFormatVersion) + "'");
  }
  return Status::Ok();
}

}  // namespace cfrec::state
