#include "cfrec/eval/batch_runner.h"

#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace cfrec::eval {
namespace {

using nlohmann::json;

// Bytes that are not UTF-8 (from a request or a file named in it) are
// replaced, so that an error line can always be written.
std::string ErrorLine(const Status& status) {
  return json{{"error", status.ToString()},
              {"code", std::string(StatusCodeName(status.code()))}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

Result<EvalRequest> ParseEvalRequest(std::string_view line) {
  static const std::set<std::string> kKeys = {
      "data",     "ranker", "intervention",    "trainer",
      "protocol", "seed",   "stream_features", "config"};
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("request: ") + e.what());
  }
  if (!j.is_object()) {
    return Status::InvalidArgument("request: expected a JSON object");
  }
  for (const auto& [key, value] : j.items()) {
    if (!kKeys.contains(key)) {
      return Status::InvalidArgument("request: unknown key '" + key + "'");
    }
  }
  EvalRequest r;
  try {
    r.data_path = j.value("data", r.data_path);
    r.ranker = j.value("ranker", r.ranker);
    r.intervention = j.value("intervention", r.intervention);
    r.trainer = j.value("trainer", r.trainer);
    r.protocol = j.value("protocol", r.protocol);
    r.stream_features = j.value("stream_features", r.stream_features);
    r.seed = j.value("seed", r.seed);
    r.config_path = j.value("config", r.config_path);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("request: ") + e.what());
  }
  if (r.data_path.empty()) {
    return Status::InvalidArgument("request: \"data\" is required");
  }
  return r;
}

size_t RunEvaluationBatch(std::istream& in, std::ostream& out,
                          const ModelRegistry& registry) {
  size_t failed = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Result<std::string> answer = Status::Internal("no answer");
    // A run that throws (out of memory, a LibTorch error) answers an error
    // line like any failed run; the next request is still answered.
    try {
      Result<EvalRequest> request = ParseEvalRequest(line);
      answer =
          request.ok() ? RunEvaluation(*request, registry) : request.status();
    } catch (const std::exception& e) {
      answer = Status::Internal(std::string("run failed: ") + e.what());
    } catch (...) {
      answer = Status::Internal("run failed: unknown exception");
    }
    if (answer.ok()) {
      out << *answer << '\n';
    } else {
      ++failed;
      out << ErrorLine(answer.status()) << '\n';
    }
    out.flush();
  }
  return failed;
}

}  // namespace cfrec::eval
