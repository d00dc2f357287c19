// RocksDB's info LOG for the store, written so that a full or read-only
// disk cannot stop the process.
//
// With the store's own Env, RocksDB writes its LOG through a file writer
// that, in Debian's build (assertions on), aborts the process on the line
// after one that failed -- and a failed write on a full disk is the next
// thing RocksDB logs. This logger appends with stdio and drops a line it
// cannot write.
#ifndef CFREC_STATE_SRC_INFO_LOG_H_
#define CFREC_STATE_SRC_INFO_LOG_H_

#include <rocksdb/env.h>

#include <memory>
#include <string>

namespace cfrec::state {

// A logger appending to `dir`/LOG (the previous one is kept as LOG.old);
// null when the file cannot be opened (RocksDB then logs nothing).
std::shared_ptr<rocksdb::Logger> NewStoreInfoLog(const std::string& dir);

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_INFO_LOG_H_
