// Many evaluation runs in one process (`cfrec eval --batch`): requests are
// read one JSON object a line, and each is answered by one line, as
// `cfrec eval` would print it. A study of many short runs then pays the
// process start-up (loading LibTorch takes most of a second) once per
// worker instead of once per run. Every run builds its model, data and
// generators from its own request, as a process of its own would; nothing
// is carried from one run to the next.
//
// Request line (keys as `cfrec eval`'s flags; all but "data" optional):
//   {"data": "behaviors.tsv", "ranker": "bpr", "intervention": "none",
//    "trainer": "default", "protocol": "loo", "stream_features": true,
//    "seed": 1, "config": "config.json"}
// Answer line: RunEvaluation's JSON, or {"error": message, "code": name}
// for a request that failed (a malformed line included).
#ifndef CFREC_EVAL_BATCH_RUNNER_H_
#define CFREC_EVAL_BATCH_RUNNER_H_

#include <cstddef>
#include <istream>
#include <ostream>
#include <string_view>

#include "cfrec/eval/model.h"
#include "cfrec/eval/runner.h"
#include "cfrec/schemas/status.h"

namespace cfrec::eval {

// One request line; rejects unknown keys and values of the wrong type.
Result<EvalRequest> ParseEvalRequest(std::string_view line);

// Answers every line of `in` (blank lines skipped) on `out`, flushing after
// each answer, until `in` ends. Returns the number of failed requests.
size_t RunEvaluationBatch(std::istream& in, std::ostream& out,
                          const ModelRegistry& registry);

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_BATCH_RUNNER_H_
