// BatchWriter: a thread that writes one RocksDB WriteBatch at a time, so that
// the apply thread can build the next batch while the previous one goes to
// the WAL and the memtables (the pipelined apply, see event_store.h).
//
// Start() hands over a WriteBatch; Wait() returns the result of its write.
// At most one write is in progress: Start() may only follow a Wait() (or
// come first). The WriteBatch must not be touched between the two.
//
// Thread-safety: Start and Wait from one thread (the apply thread); the
// write runs on the writer's own thread.
#ifndef CFREC_STATE_SRC_BATCH_WRITER_H_
#define CFREC_STATE_SRC_BATCH_WRITER_H_

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace cfrec::state {

class BatchWriter {
 public:
  // `db` is not owned and must outlive this object (or Stop() must run
  // before it closes).
  explicit BatchWriter(rocksdb::DB* db) : db_(db) {}
  ~BatchWriter() { Stop(); }
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  // Starts writing `wb` (not owned) with `options`. The thread starts with
  // the first write.
  void Start(rocksdb::WriteBatch* wb, const rocksdb::WriteOptions& options);
  // Waits for the write started last and returns its status; its duration
  // goes to `*write_seconds`.
  rocksdb::Status Wait(double* write_seconds);
  // Finishes a write in progress and ends the thread.
  void Stop();

 private:
  void Run();

  rocksdb::DB* const db_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_.
  rocksdb::WriteBatch* job_ = nullptr;
  rocksdb::WriteOptions options_;
  bool done_ = false;
  bool stop_ = false;
  rocksdb::Status result_;
  double seconds_ = 0;
};

}  // namespace cfrec::state

#endif  // CFREC_STATE_SRC_BATCH_WRITER_H_
