#include "pipelined_rounds.h"

#include <c10/util/Exception.h>

#include <exception>
#include <string>
#include <utility>

namespace cfrec::learner {

Triples& PipelinedRounds::NextBuffer() {
  Triples& buffer = buffers_[next_];
  next_ ^= 1;
  return buffer;
}

Status PipelinedRounds::Submit(std::function<void()> train) {
  Keep(pipeline_.Submit(std::move(train)));
  return std::exchange(failed_, Status::Ok());
}

void PipelinedRounds::Settle() {
  try {
    pipeline_.Wait();
  } catch (...) {
    Keep(std::current_exception());
  }
}

void PipelinedRounds::Keep(std::exception_ptr error) {
  if (!error || !failed_.ok()) return;
  try {
    std::rethrow_exception(error);
  } catch (const c10::Error& e) {
    failed_ = Status::Internal(std::string("LibTorch: ") +
                               e.what_without_backtrace());
  } catch (const std::exception& e) {
    failed_ = Status::Internal(std::string("training failed: ") + e.what());
  } catch (...) {
    failed_ = Status::Internal("training failed: unknown error");
  }
}

}  // namespace cfrec::learner
