#include "info_log.h"

#include <sys/time.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>

namespace cfrec::state {
namespace {

class StdioLogger final : public rocksdb::Logger {
 public:
  explicit StdioLogger(std::FILE* file) : file_(file) {}
  ~StdioLogger() override { CloseFile(); }

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    timeval now;
    gettimeofday(&now, nullptr);
    std::tm t;
    localtime_r(&now.tv_sec, &t);
    std::lock_guard lock(mu_);
    if (file_ == nullptr) return;
    // Write errors (ENOSPC, EROFS) are ignored: the line is lost, nothing
    // else.
    std::fprintf(file_, "%04d/%02d/%02d-%02d:%02d:%02d.%06ld ",
                 t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                 t.tm_sec, static_cast<long>(now.tv_usec));
    std::vfprintf(file_, format, ap);
    std::fputc('\n', file_);
    std::fflush(file_);
    std::clearerr(file_);
  }

 protected:
  rocksdb::Status CloseImpl() override {
    CloseFile();
    return rocksdb::Status::OK();
  }

 private:
  void CloseFile() {
    std::lock_guard lock(mu_);
    if (file_ != nullptr) std::fclose(file_);
    file_ = nullptr;
  }

  std::mutex mu_;
  std::FILE* file_;
};

}  // namespace

std::shared_ptr<rocksdb::Logger> NewStoreInfoLog(const std::string& dir) {
  const std::string path = dir + "/LOG";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::filesystem::rename(path, path + ".old", ec);
  }
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr) return nullptr;
  return std::make_shared<StdioLogger>(file);
}

}  // namespace cfrec::state
