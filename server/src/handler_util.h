// Helpers shared by the route handlers (service.cc, dashboard.cc). Private to
// cfrec::server. Pure functions; thread-safe.
#ifndef CFREC_SERVER_SRC_HANDLER_UTIL_H_
#define CFREC_SERVER_SRC_HANDLER_UTIL_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/learner/snapshot.h"
#include "cfrec/server/http_types.h"
#include "cfrec/server/query.h"
#include "cfrec/server/service.h"

namespace cfrec::server::internal {

// `clock()` or, when null, the system clock in ms since the Unix epoch.
int64_t NowMs(const std::function<int64_t()>& clock);

// A JSON document as the response body (invalid UTF-8 replaced).
HttpResponse JsonResponse(int status, const nlohmann::json& doc);

HttpResponse BadRequest(std::string_view message);
HttpResponse NotReady(std::string_view message);

// The latest snapshot, or null when none is published (or no holder).
std::shared_ptr<const learner::ModelSnapshot> Latest(
    const ServiceContext& context);

// Checks an id given by a client: non-empty, within the id limit, UTF-8.
Status CheckId(std::string_view id, std::string_view field,
               const ServingOptions& options);

// A required id parameter (`field`), checked as CheckId does.
Result<std::string> RequiredId(const std::optional<std::string>& param,
                               std::string_view field,
                               const ServingOptions& options);

// Collects the query parameters named in `allowed`, each at most once;
// anything else is an error.
Status TakeParams(const ParsedTarget& target,
                  std::initializer_list<std::string_view> allowed,
                  std::vector<std::optional<std::string>>* values);

// `param` parsed as an integer in [1, max], or `fallback` when absent.
Result<uint64_t> CountParam(const std::optional<std::string>& param,
                            uint64_t fallback, uint64_t max,
                            std::string_view field);

}  // namespace cfrec::server::internal

#endif  // CFREC_SERVER_SRC_HANDLER_UTIL_H_
