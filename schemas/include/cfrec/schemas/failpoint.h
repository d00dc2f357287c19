// Fail points: named places in the code where a test can stop the whole
// process at an exact moment (to kill it there, as a crash would).
//
// The environment variable CFREC_FAILPOINTS, read once, lists the points to
// stop at: "NAME@N[,NAME@N...]" stops the N-th time the process passes
// point NAME (counting from 1). There, the process writes one line to
// stderr,
//   failpoint NAME hit N: DETAIL (pid P)
// and stops itself with SIGSTOP. A test that is its parent sees the stop
// with waitpid(WUNTRACED) and then kills it (SIGKILL) or lets it go on
// (SIGCONT). Without the variable (always, outside tests) a pass costs one
// load of a flag.
//
// Points: "checkpoint.put" (the learner checkpoint is serialised, not yet
// written), "checkpoint.written" (written, its bookkeeping not yet done),
// "snapshot.build" (a model version is taken, its snapshot not yet built),
// "ingest.applied" (a batch is durable, not yet handed to the learner).
//
// Thread-safe.
#ifndef CFREC_SCHEMAS_FAILPOINT_H_
#define CFREC_SCHEMAS_FAILPOINT_H_

#include <string_view>

namespace cfrec {

// Whether CFREC_FAILPOINTS names any point; callers that build a detail
// string check it first.
bool FailPointsEnabled();

// Passes point `name`; stops the process if this pass is the one asked for.
void FailPoint(std::string_view name, std::string_view detail = {});

}  // namespace cfrec

#endif  // CFREC_SCHEMAS_FAILPOINT_H_
