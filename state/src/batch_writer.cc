#include "batch_writer.h"

#include <rocksdb/perf_level.h>

#include <chrono>

namespace cfrec::state {

void BatchWriter::Start(rocksdb::WriteBatch* wb,
                        const rocksdb::WriteOptions& options) {
  {
    std::lock_guard lock(mu_);
    job_ = wb;
    options_ = options;
    done_ = false;
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  cv_.notify_all();
}

rocksdb::Status BatchWriter::Wait(double* write_seconds) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return done_; });
  *write_seconds = seconds_;
  return result_;
}

void BatchWriter::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BatchWriter::Run() {
  // Nothing reads this thread's perf context: no counting in the memtable
  // inserts.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  std::unique_lock lock(mu_);
  while (true) {
    // A job handed over before Stop() is still written.
    cv_.wait(lock, [this] { return job_ != nullptr || stop_; });
    if (job_ == nullptr) return;
    rocksdb::WriteBatch* wb = job_;
    const rocksdb::WriteOptions options = options_;
    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    rocksdb::Status s = db_->Write(options, wb);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    lock.lock();
    job_ = nullptr;
    result_ = std::move(s);
    seconds_ = seconds;
    done_ = true;
    cv_.notify_all();
  }
}

}  // namespace cfrec::state
