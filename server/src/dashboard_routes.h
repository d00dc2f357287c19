// The handlers of the dashboard's JSON routes (see dashboard.h), for the
// route table in service.cc. Private to cfrec::server.
#ifndef CFREC_SERVER_SRC_DASHBOARD_ROUTES_H_
#define CFREC_SERVER_SRC_DASHBOARD_ROUTES_H_

#include <optional>

#include "cfrec/server/http_types.h"
#include "cfrec/server/query.h"
#include "cfrec/server/service.h"

namespace cfrec::server::internal {

HttpResponse GetMetricsJson(const ServiceContext& context,
                            const HttpRequest& request,
                            const ParsedTarget& target);
HttpResponse GetExplain(const ServiceContext& context,
                        const HttpRequest& request, const ParsedTarget& target);
HttpResponse GetTrending(const ServiceContext& context,
                         const HttpRequest& request,
                         const ParsedTarget& target);
HttpResponse GetDeadLetters(const ServiceContext& context,
                            const HttpRequest& request,
                            const ParsedTarget& target);

// The static file at `request`'s path (GET only; 405 otherwise), or nullopt
// when no asset has that path.
std::optional<HttpResponse> ServeAsset(const ServiceContext& context,
                                       const HttpRequest& request,
                                       const ParsedTarget& target);

}  // namespace cfrec::server::internal

#endif  // CFREC_SERVER_SRC_DASHBOARD_ROUTES_H_
