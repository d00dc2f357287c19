#include "handler_util.h"

#include <algorithm>
#include <chrono>

namespace cfrec::server::internal {

using nlohmann::json;

int64_t NowMs(const std::function<int64_t()>& clock) {
  if (clock) return clock();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HttpResponse JsonResponse(int status, const json& doc) {
  HttpResponse response;
  response.status = status;
  // Ids come from validated events, but a replacement character is better
  // than an exception if one ever is not UTF-8.
  response.body = doc.dump(-1, ' ', false, json::error_handler_t::replace);
  return response;
}

HttpResponse BadRequest(std::string_view message) {
  return ErrorResponse(400, "invalid_argument", message);
}

HttpResponse NotReady(std::string_view message) {
  return ErrorResponse(503, "not_ready", message);
}

std::shared_ptr<const learner::ModelSnapshot> Latest(
    const ServiceContext& context) {
  if (context.snapshots == nullptr) return nullptr;
  return context.snapshots->Get();
}

Status CheckId(std::string_view id, std::string_view field,
               const ServingOptions& options) {
  if (id.empty()) {
    return Status::InvalidArgument("'" + std::string(field) +
                                   "' must not be empty");
  }
  if (id.size() > options.event_limits.max_id_bytes) {
    return Status::InvalidArgument(
        "'" + std::string(field) + "' is longer than " +
        std::to_string(options.event_limits.max_id_bytes) + " bytes");
  }
  if (!IsValidUtf8(id)) {
    return Status::InvalidArgument("'" + std::string(field) +
                                   "' is not valid UTF-8");
  }
  return Status::Ok();
}

Result<std::string> RequiredId(const std::optional<std::string>& param,
                               std::string_view field,
                               const ServingOptions& options) {
  if (!param.has_value()) {
    return Status::InvalidArgument("query parameter '" + std::string(field) +
                                   "' is required");
  }
  CFREC_RETURN_IF_ERROR(CheckId(*param, field, options));
  return *param;
}

Status TakeParams(const ParsedTarget& target,
                  std::initializer_list<std::string_view> allowed,
                  std::vector<std::optional<std::string>>* values) {
  values->assign(allowed.size(), std::nullopt);
  for (const auto& [name, value] : target.params) {
    const auto it = std::find(allowed.begin(), allowed.end(), name);
    if (it == allowed.end()) {
      return Status::InvalidArgument("unknown query parameter '" +
                                     name.substr(0, 64) + "'");
    }
    auto& slot = (*values)[it - allowed.begin()];
    if (slot.has_value()) {
      return Status::InvalidArgument("query parameter '" + name +
                                     "' given more than once");
    }
    slot = value;
  }
  return Status::Ok();
}

Result<uint64_t> CountParam(const std::optional<std::string>& param,
                            uint64_t fallback, uint64_t max,
                            std::string_view field) {
  if (!param.has_value()) return fallback;
  return ParseUint(*param, 1, max, field);
}

}  // namespace cfrec::server::internal
