// The body of a GET /v1/recommendations response, written straight into a
// string: byte for byte what nlohmann::json's dump() gives for
//   {"fallback": "popularity" | "stream_features" | null,
//    "items": [{"item_id": "...", "score": <number> | null}, ...],
//    "model_version": <n>, "user_id": "..."}
// (keys in its sorted order, numbers in its shortest round-trip form,
// invalid UTF-8 replaced) without building the document's tree of maps
// and strings per request.
#ifndef CFREC_SERVER_SRC_RECOMMENDATIONS_JSON_H_
#define CFREC_SERVER_SRC_RECOMMENDATIONS_JSON_H_

#include <string>
#include <string_view>

#include "cfrec/learner/snapshot.h"
#include "cfrec/server/recommend.h"

namespace cfrec::server::internal {

// Replaces *out with the document for `rec`, computed for `user_id` over
// `snapshot` (its ItemId() and version()).
void WriteRecommendationsJson(const learner::ModelSnapshot& snapshot,
                              std::string_view user_id,
                              const Recommendation& rec, std::string* out);

}  // namespace cfrec::server::internal

#endif  // CFREC_SERVER_SRC_RECOMMENDATIONS_JSON_H_
